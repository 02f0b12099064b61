"""What the shim survives: a full disk under its logs, a host-pid container's stragglers,
its own SIGKILL (the restart count is not forgotten)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import uuid

from runtime.shim import restore, statedir
from tests.integration.test_shim_support import (
    ShimEnv,
    pid_alive,
    shim_env,
    shim_events,
    wait_until,
    zombie_children,
)

__all__ = ["shim_env"]


def _events(c: object) -> list[str]:
    return [e["event"] for e in shim_events(c)]  # type: ignore[arg-type]


def test_a_full_disk_under_the_logs_does_not_stop_the_container(shim_env: ShimEnv) -> None:
    logs_dir = shim_env.roots.base / f"logs-{uuid.uuid4().hex[:8]}"
    logs_dir.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(logs_dir)], check=True)
    try:
        text = "x" * 100
        c = shim_env.container(
            [
                "sh",
                "-c",
                f"i=0; while [ $i -lt 2000 ]; do echo $i-{text}; i=$((i+1)); done; "
                "while [ ! -e /tmp/go ]; do sleep 0.01; done; "
                "while true; do echo after-recovery; sleep 0.05; done",
            ],
            log_dir=logs_dir,
        )
        info = c.spawn()
        wait_until(lambda: "log_write_failed" in _events(c), what="the shim to notice ENOSPC")
        assert c.client().state()["status"] == "running"
        assert pid_alive(info.init_pid) or c.client().state()["pid"]
        (shim_env.rootfs / "tmp" / "go").touch()

        def recovered() -> bool:
            if any(r["log"] == "after-recovery\n" for r in c.logs()):
                return True
            os.truncate(c.log_path, 0)  # an operator frees the space (again: the
            return False  # output still in the pipes may fill it up first)

        wait_until(recovered, what="lines written after the space came back")
        assert "log_write_recovered" in _events(c)
        failed = next(e for e in shim_events(c) if e["event"] == "log_write_failed")
        assert "space" in failed["error"].lower()
        for line in c.log_path.read_bytes().splitlines():
            json.loads(line)  # no record cut in half by the full disk
        state = c.client().stop(signal="SIGKILL", timeout=1)
        assert state["final"] is True and state["exit_code"] == 128 + signal.SIGKILL
        c.wait_shim_gone()
    finally:
        (shim_env.rootfs / "tmp" / "go").unlink(missing_ok=True)
        shim_env.cleanup()  # the shim holds the log open: it goes first
        subprocess.run(["umount", str(logs_dir)], check=False)


def test_a_host_pid_container_leaves_no_process_behind(shim_env: ShimEnv) -> None:
    c = shim_env.container(["sh", "-c", "sleep 1000 & sleep 1000 & exec sleep 1000"], host_pid=True)
    info = c.spawn()

    def children() -> list[int]:
        path = f"/proc/{info.init_pid}/task/{info.init_pid}/children"
        with open(path) as f:
            return [int(p) for p in f.read().split()]

    kids = wait_until(lambda: len(children()) == 2 and children(), what="two background sleeps")
    state = c.client().stop(timeout=5)  # SIGTERM to the init only; the rest by kill --all
    assert state["final"] is True
    wait_until(
        lambda: not any(pid_alive(p) for p in (info.init_pid, *kids)),
        what="the init and both sleeps to be gone",
    )
    c.wait_shim_gone()
    assert "container_kill_all_failed" not in _events(c)


def test_a_lost_shim_keeps_its_restart_count(shim_env: ShimEnv) -> None:
    c = shim_env.container(["sh", "-c", "exit 1"])
    info = c.spawn(restart_policy="always", restart_count=5)
    wait_until(
        lambda: int(c.client().state()["restart_count"]) >= 7,  # type: ignore[call-overload]
        what="two restarts on top of the five of earlier shims",
    )
    run = statedir.read_json(str(c.bundle / statedir.RUN))
    assert run is not None and int(run["restart_count"]) >= 7  # type: ignore[call-overload]
    os.kill(info.pid, signal.SIGKILL)
    wait_until(lambda: not pid_alive(info.pid), what="the shim to die")
    status = restore.probe(str(c.bundle))
    assert status.kind == "lost" and status.exit_code == 137
    assert int(status.record["restart_count"]) >= 7  # type: ignore[call-overload]
    assert not zombie_children(info.pid)
