"""OCI hooks against the real runtime: which hook runs where and when, the
state each one reads on stdin, timeouts, and the failure semantics
(create-time hooks fail the create and leave nothing; poststart/poststop
failures are warnings)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from runtime import errors
from runtime.oci import lifecycle
from tests.integration import test_oci_support as support

KINDS = ("prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop")


@pytest.fixture
def oci(roots: Any, busybox_dir: Path) -> Iterator[support.Env]:
    with support.environment(roots.base, busybox_dir, roots.cgroup_parent) as env:
        yield env


def _recorder(log: Path, kind: str, where: str = "") -> dict[str, Any]:
    """A hook that appends "<kind> <mount ns> <root ino> <state json>" to ``log``."""
    script = (
        f'printf "%s %s %s " {kind} "$(readlink /proc/self/ns/mnt)" "$(stat -c %i /)" >> {log};'
        f"cat >> {log}; echo >> {log}"
    )
    return {"path": f"{where}/bin/sh", "args": ["sh", "-c", script], "env": ["A=1"]}


def test_every_hook_runs_once_in_order_where_the_spec_says(oci: support.Env) -> None:
    log = oci.base / "hooks.log"
    inside = "/hooks.log"  # startContainer runs in the container: its own file there

    def configure(doc: dict[str, Any]) -> None:
        doc["root"]["readonly"] = False
        doc["hooks"] = {kind: [_recorder(log, kind)] for kind in KINDS}
        doc["hooks"]["startContainer"] = [_recorder(Path(inside), "startContainer")]
        doc["annotations"] = {"org.example/k": "v"}

    pid = oci.create("hk", ["sh", "-c", f"cat {inside}"], configure)
    lines = log.read_text().splitlines()
    assert [line.split()[0] for line in lines] == ["prestart", "createRuntime", "createContainer"]
    host_ns = os.readlink("/proc/self/ns/mnt")
    container_ns = os.readlink(f"/proc/{pid}/ns/mnt")
    assert lines[0].split()[1] == lines[1].split()[1] == host_ns  # the runtime's namespace
    assert lines[2].split()[1] == container_ns  # createContainer: the container's, before pivot
    assert lines[2].split()[2] == str(os.stat("/").st_ino)
    for line in lines:
        st = json.loads(line.split(" ", 3)[3])
        assert (st["id"], st["pid"], st["status"]) == ("hk", pid, "creating")
        assert st["bundle"] == str(oci.base / "bundle-hk")
        assert st["annotations"] == {"org.example/k": "v"}
    assert lifecycle.start(oci.root, "hk") == []
    assert support.wait(pid) == 0
    inner = oci.output("hk")[0].split(" ", 3)
    assert inner[0] == "startContainer" and inner[1] == container_ns
    assert inner[2] == str(os.stat(oci.rootfs).st_ino)  # after pivot: the container's /
    assert json.loads(inner[3])["status"] == "created"
    assert lifecycle.delete(oci.root, "hk") == []
    kinds = [line.split()[0] for line in log.read_text().splitlines()]
    assert kinds == ["prestart", "createRuntime", "createContainer", "poststart", "poststop"]
    last = json.loads(log.read_text().splitlines()[-1].split(" ", 3)[3])
    assert last["status"] == "stopped"


@pytest.mark.parametrize("kind", ["createRuntime", "createContainer"])
def test_a_failing_create_hook_fails_create_and_runs_poststop(oci: support.Env, kind: str) -> None:
    marker = oci.base / "poststop.ran"

    def configure(doc: dict[str, Any]) -> None:
        doc["hooks"] = {
            kind: [{"path": "/bin/sh", "args": ["sh", "-c", "echo broken >&2; exit 3"]}],
            "poststop": [{"path": "/bin/sh", "args": ["sh", "-c", f"touch {marker}"]}],
        }

    with pytest.raises(errors.FailedPrecondition, match=rf"{kind} hook #0 .* status 3: broken"):
        oci.create("bad", ["true"], configure)
    assert marker.exists()
    assert lifecycle.list_containers(oci.root) == []
    assert not any(
        os.path.exists(os.path.join(d, "bad")) for d in support.cgroup_dirs_of(oci.cgroup_parent)
    )


def test_a_hook_that_hangs_is_killed_at_its_timeout(oci: support.Env) -> None:
    def configure(doc: dict[str, Any]) -> None:
        doc["hooks"] = {
            "createRuntime": [{"path": "/bin/sleep", "args": ["sleep", "600"], "timeout": 1}]
        }

    with pytest.raises(errors.FailedPrecondition, match="timed out after 1s"):
        oci.create("slow", ["true"], configure)
    assert lifecycle.list_containers(oci.root) == []


def test_poststart_and_poststop_failures_are_warnings(oci: support.Env) -> None:
    ran = oci.base / "second-poststart.ran"

    def configure(doc: dict[str, Any]) -> None:
        doc["hooks"] = {
            "poststart": [
                {"path": "/bin/false"},
                {"path": "/bin/touch", "args": ["touch", str(ran)]},
            ],
            "poststop": [{"path": "/no/such/hook"}],
        }

    pid = oci.create("warn", ["true"], configure)
    [warning] = lifecycle.start(oci.root, "warn")
    assert "poststart hook #0 (/bin/false) exited with status 1" in warning
    assert ran.exists()  # the hooks after a failed one still run
    assert support.wait(pid) == 0
    [warning] = lifecycle.delete(oci.root, "warn")
    assert "cannot execute /no/such/hook" in warning
    assert lifecycle.list_containers(oci.root) == []


def test_a_failing_start_container_hook_stops_the_process(oci: support.Env) -> None:
    def configure(doc: dict[str, Any]) -> None:
        doc["hooks"] = {"startContainer": [{"path": "/bin/false"}]}

    pid = oci.create("sc", ["sh", "-c", "echo should-not-run"], configure)
    lifecycle.start(oci.root, "sc")
    assert support.wait(pid) == 127
    out, err = oci.output("sc")
    assert out == "" and "startContainer hook #0 (/bin/false) exited with status 1" in err
    lifecycle.delete(oci.root, "sc")
