"""pyreconcile killed mid-apply: the containers live on, and their exits are not lost.

Five containers run; ``apply`` blocks on a sixth that waits for one of them to
complete; the apply process is SIGKILLed. While no pyreconcile process runs,
one container exits 3 and another (restart: always) crashes. When pyreconcile
comes back: the first shows exit 3 and when, the second was restarted by its
shim (restart count 1, last exit 1), nothing is duplicated, ``diff`` names
exactly what changed, and a new ``apply`` converges.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from tests.conftest import Roots
from tests.integration.test_lifecycle_support import (
    cli,
    container_doc,
    in_container,
    ps_by_object,
    run_record,
    shim_pids,
    spawn_cli,
    wait_until,
    write_stack,
    zombies_under,
)

WAIT_FOR = "while [ ! -e /tmp/{flag} ]; do sleep 0.02; done"
FIVE = (
    container_doc("a", "exec sleep 1000")
    + container_doc("b", "exec sleep 1000", restart="always")
    + container_doc("c", "exec sleep 1000", restart="unless-stopped")
    + container_doc("exiter", WAIT_FOR.format(flag="exit-now") + "; rm /tmp/exit-now; exit 3")
    + container_doc(
        "crasher",
        WAIT_FOR.format(flag="crash-now") + "; rm /tmp/crash-now; echo crashing; exit 1",
        restart="always",
    )
)
BLOCKED = container_doc("after", "exec sleep 1000", dependsOn="[{name: a, condition: completed}]")


def test_a_killed_apply_loses_nothing(roots: Roots, busybox_tar: Path) -> None:
    stack = write_stack(roots.base / "outage", busybox_tar, FIVE + BLOCKED)
    apply = spawn_cli(roots, "apply", "-f", str(stack))
    try:
        before = wait_until(
            lambda: (seen := _running(roots)) and len(seen) == 5 and seen,
            what="five containers running while apply waits for 'after'",
        )
        assert apply.poll() is None, "apply should still be waiting for 'a' to complete"
        os.kill(apply.pid, signal.SIGKILL)
        apply.wait(10)
        killed_at = time.time()

        # the outage: no pyreconcile process runs; the containers do their thing
        os.kill(before["a"]["pid"], 0)
        (in_container(before["exiter"]["pid"], "/tmp/exit-now")).touch()
        (in_container(before["crasher"]["pid"], "/tmp/crash-now")).touch()
        exiter_bundle = roots.run_root / "containers" / before["exiter"]["id"]
        wait_until(lambda: (exiter_bundle / "exit").exists(), what="exiter's exit file")
        wait_until(
            lambda: run_record(roots, before["crasher"]["id"]).get("restart_count") == 1,
            what="the crasher's shim to restart it",
        )
        shims = shim_pids(roots)
        assert sorted(len(p) for p in shims.values()) == [1, 1, 1, 1]  # exiter's is gone
        assert not zombies_under([p for pids in shims.values() for p in pids])

        # pyreconcile is back
        after = ps_by_object(roots)
        assert set(after) <= {"a", "b", "c", "exiter", "crasher", "after"}
        for name in ("a", "b", "c"):
            assert after[name]["id"] == before[name]["id"]
            assert after[name]["status"] == "running" and after[name]["pid"] == before[name]["pid"]
        exiter = after["exiter"]
        assert exiter["id"] == before["exiter"]["id"]
        assert exiter["status"] == "exited" and exiter["exitCode"] == 3
        assert killed_at <= exiter["finishedAt"] <= time.time()
        assert exiter["lastExit"]["exitCode"] == 3
        crasher = after["crasher"]
        assert crasher["id"] == before["crasher"]["id"]
        assert crasher["status"] == "running" and crasher["pid"] != before["crasher"]["pid"]
        assert crasher["restartCount"] == 1
        assert crasher["lastExit"]["exitCode"] == 1
        assert killed_at <= crasher["lastExit"]["finishedAt"] <= time.time()
        logs = cli(roots, "logs", "outage/crasher").stdout
        assert logs == "crashing\n"  # the crashed run's output, kept across the restart

        # diff tells exactly what changed while it was away
        write_stack(stack, busybox_tar, FIVE)  # without the blocked container
        diff = cli(roots, "diff", "-f", str(stack), check=False)
        assert diff.returncode == 2, diff.stdout + diff.stderr
        assert "container/exiter" in diff.stdout and "code 3" in diff.stdout
        for name in ("a", "b", "c", "crasher"):
            assert f"container/{name}" not in diff.stdout, diff.stdout
        cli(roots, "apply", "-f", str(stack))
        assert cli(roots, "diff", "-f", str(stack), check=False).returncode == 0
        final = ps_by_object(roots)
        assert {n: final[n]["id"] for n in ("a", "b", "c", "exiter", "crasher")} == {
            n: before[n]["id"] for n in ("a", "b", "c", "exiter", "crasher")
        }
        assert final["exiter"]["status"] == "running"
        assert sorted(len(p) for p in shim_pids(roots).values()) == [1] * 5
    finally:
        if apply.poll() is None:
            apply.kill()
            apply.wait()
        for stream in (apply.stdout, apply.stderr):
            if stream is not None:
                stream.close()
        cli(roots, "delete", "--stack", "outage", check=False)
    assert shim_pids(roots) == {}


def _running(roots: Roots) -> dict[str, dict[str, object]] | None:
    seen = {k: v for k, v in ps_by_object(roots).items() if v["status"] == "running"}
    return seen or None
