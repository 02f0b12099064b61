"""Restart policies applied by the shim itself, with backoff, in both runtime modes."""

from __future__ import annotations

import os

import pytest

from runtime import errors
from runtime.shim import logs
from tests.integration.test_shim_support import ShimEnv, shim_env, shim_events, wait_until

__all__ = ["shim_env"]

CRASHER = ["sh", "-c", "echo run; exit 1"]
SERVER = ["sh", "-c", "echo run; while :; do sleep 1; done"]


def _count(state: dict[str, object]) -> int:
    count = state["restart_count"]
    assert isinstance(count, int)
    return count


def _zombie_children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except FileNotFoundError:
                continue
            if fields[0] == "Z" and int(fields[1]) == pid:
                found.append(int(entry))
    return found


def _starts(c: object) -> list[float]:
    """When each run printed its first line (seconds, from the log's timestamps)."""
    entries = c.logs()  # type: ignore[attr-defined]
    return [logs.parse_time(e["time"]) / 1e9 for e in entries if e["log"] == "run\n"]


def test_on_failure_2_restarts_exactly_twice_with_backoff(shim_env: ShimEnv) -> None:
    c = shim_env.container(CRASHER)
    c.spawn(restart_policy="on-failure:2")
    record = c.wait_exit_file(timeout=30)
    assert record["exit_code"] == 1
    assert record["restart_count"] == 2
    starts = _starts(c)
    assert len(starts) == 3
    # 100 ms before the first restart, 200 ms before the second (plus create+start)
    assert starts[1] - starts[0] >= 0.09
    assert starts[2] - starts[1] >= 0.19
    delays = [e["delay"] for e in shim_events(c) if e["event"] == "container_restart_scheduled"]
    assert delays == [0.1, 0.2]
    c.wait_shim_gone()


def test_on_failure_does_not_restart_a_clean_exit(shim_env: ShimEnv) -> None:
    c = shim_env.container(["sh", "-c", "echo run; exit 0"])
    c.spawn(restart_policy="on-failure")
    record = c.wait_exit_file()
    assert record["exit_code"] == 0 and record["restart_count"] == 0
    assert len(_starts(c)) == 1


@pytest.mark.parametrize("policy", ["always", "unless-stopped"])
def test_always_restarts_after_a_crash_but_not_after_stop(shim_env: ShimEnv, policy: str) -> None:
    c = shim_env.container(SERVER)
    first = c.spawn(restart_policy=policy)
    client = c.client()
    wait_until(lambda: len(_starts(c)) == 1, what="the first run")
    client.kill("SIGKILL")  # a crash
    state = wait_until(
        lambda: (s := client.state())["restart_count"] == 1 and s["status"] == "running" and s,
        what="the restart",
    )
    assert state["pid"] != first.init_pid
    assert state["exit_code"] == 137  # the last exit stays visible
    assert state["restart_policy"] == policy
    wait_until(lambda: len(_starts(c)) == 2, what="the second run")
    result = client.stop(signal="SIGKILL", timeout=5)
    assert result["exit_code"] == 137 and result["restart_count"] == 1
    assert result["final"] is True
    record = c.wait_exit_file()
    assert record["restart_count"] == 1
    c.wait_shim_gone()
    assert len(_starts(c)) == 2


def test_always_with_a_crash_loop_backs_off_and_stop_ends_it(shim_env: ShimEnv) -> None:
    c = shim_env.container(CRASHER)
    c.spawn(restart_policy="always")
    client = c.client()

    def restarted_thrice() -> dict[str, object] | None:
        state = client.state()
        return state if _count(state) >= 3 else None

    state = wait_until(restarted_thrice, what="three restarts")
    # every child is reaped: the runtime's processes and each run's init
    shim_pid = state["shim_pid"]
    assert isinstance(shim_pid, int)
    # (a run that just exited is a zombie until the shim's next turn: none may pile up)
    wait_until(lambda: _zombie_children(shim_pid) == [], what="no zombie children")
    result = client.stop(timeout=5)
    count = result["restart_count"]
    assert isinstance(count, int) and count >= 3
    record = c.wait_exit_file()
    assert record["restart_count"] == count
    c.wait_shim_gone()
    delays = [e["delay"] for e in shim_events(c) if e["event"] == "container_restart_scheduled"]
    assert delays[:3] == [0.1, 0.2, 0.4]


def test_shutdown_cancels_a_pending_restart(shim_env: ShimEnv) -> None:
    c = shim_env.container(CRASHER)
    c.spawn(restart_policy="always")
    client = c.client()
    # wait for a backoff long enough to catch it in the restarting state
    wait_until(lambda: _count(client.state()) >= 4, what="a long backoff")

    def restarting() -> bool:
        try:
            if client.state()["status"] == "restarting":
                client.shutdown()
                return True
        except errors.FailedPrecondition:
            pass  # it was running again between state and shutdown
        return False

    wait_until(restarting, what="the restarting state")
    record = c.wait_exit_file()
    assert record["exit_code"] == 1
    c.wait_shim_gone()
