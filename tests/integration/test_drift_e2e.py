"""A CI-style run: apply, change the host behind pyreconcile's back in every
way the drift taxonomy names, check `diff` reports each in its category with
exit 2 and ignores what it does not manage, then `apply` brings `diff` to 0."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

from runtime import client
from tests.conftest import Roots
from tests.integration.test_apply_e2e import ps, run, wait_until, write_stack

STACK = """\
---
apiVersion: pyreconcile/v1
kind: Network
metadata: {name: quiet}
spec: {driver: none}
---
apiVersion: pyreconcile/v1
kind: Container
metadata: {name: killed}
spec: {image: bb, command: [sleep, "1000"], stopGracePeriod: 1s}
---
apiVersion: pyreconcile/v1
kind: Container
metadata: {name: tampered}
spec: {image: bb, command: [sleep, "1000"], stopGracePeriod: 1s, networks: [quiet]}
---
apiVersion: pyreconcile/v1
kind: Container
metadata: {name: removed}
spec: {image: bb, command: [sleep, "1000"], stopGracePeriod: 1s}
"""


def test_out_of_band_changes_are_reported_by_category_and_repaired(
    roots: Roots, busybox_tar: Path
) -> None:
    stack = write_stack(roots.base / "ci", busybox_tar, STACK)
    run(roots, "apply", "-f", str(stack))
    rt = client.open_local(str(roots.root), str(roots.run_root), roots.cgroup_parent)
    try:
        assert run(roots, "diff", "-f", str(stack)).returncode == 0
        # runtime drift: the process dies
        os.kill(ps(roots)["killed"]["pid"], signal.SIGKILL)
        wait_until(lambda: ps(roots)["killed"]["status"] == "exited", what="killed exits")
        # spec drift: a change through the runtime, not through the manifests
        rt.update_container("ci_tampered", client.ContainerUpdate(restart_policy="always"))
        # missing: a managed container removed by hand
        rt.remove_container("ci_removed", force=True)
        # not ours: never reported, never touched
        rt.create_container(
            client.ContainerConfig(
                name="bystander", image="localhost/pyreconcile/bb:latest", command=("true",)
            )
        )

        diff = run(roots, "diff", "-f", str(stack), "-o", "json", check=False)
        assert diff.returncode == 2
        changes = {c["resource"]: c for c in json.loads(diff.stdout)["changes"]}
        assert set(changes) == {"container/killed", "container/tampered", "container/removed"}
        assert changes["container/killed"]["category"] == "runtime"
        assert changes["container/killed"]["action"] == "start"
        assert changes["container/tampered"]["category"] == "spec"
        assert changes["container/tampered"]["action"] == "recreate"
        assert changes["container/removed"]["category"] == "missing"

        run(roots, "apply", "-f", str(stack))
        assert run(roots, "diff", "-f", str(stack)).returncode == 0
        states = ps(roots)
        assert {states[n]["status"] for n in ("killed", "tampered", "removed")} == {"running"}
        assert states["bystander"]["status"] == "created"  # untouched
    finally:
        for c in rt.list_containers():
            if c.name == "bystander":
                rt.remove_container(c.name, force=True)
        rt.close()
        run(roots, "delete", "-f", str(stack))
