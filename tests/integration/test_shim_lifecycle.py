"""The shim with real containers: exit status, logs, detaching, stop, control socket, errors.

Each test runs with the runc binary and with the builtin runtime library
(``shim_env`` is parametrized), as root, with its own throw-away roots.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from runtime import errors
from runtime.shim import statedir
from tests.integration.test_shim_support import (
    ShimEnv,
    pid_alive,
    ppid_of,
    shim_env,
    shim_events,
    wait_until,
)
from tests.support import leaks

__all__ = ["shim_env"]

REPO = str(Path(__file__).resolve().parents[2])
SLEEPER = ["sh", "-c", "echo up; while :; do sleep 1; done"]


def test_exit_code_and_logs_of_a_short_container(shim_env: ShimEnv) -> None:
    c = shim_env.container(["sh", "-c", "echo out; echo err >&2; exit 3"])
    info = c.spawn()
    assert info.pid > 0 and info.init_pid > 0 and info.socket_path == c.socket_path

    record = c.wait_exit_file()
    assert record["exit_code"] == 3
    assert record["signal"] is None
    assert record["restart_count"] == 0
    assert record["oom_killed"] is False
    assert isinstance(record["started_at"], float) and isinstance(record["finished_at"], float)
    assert record["finished_at"] >= record["started_at"]
    entries = c.logs()
    assert sorted((e["stream"], e["log"]) for e in entries) == [
        ("stderr", "err\n"),
        ("stdout", "out\n"),
    ]
    for e in entries:
        assert e["time"].endswith("Z") and len(e["time"]) == len("2026-11-28T06:50:35.405656262Z")
    # the shim exits by itself and removes its socket
    c.wait_shim_gone()
    assert statedir.SOCKET not in os.listdir(c.bundle)


def test_the_shim_is_detached_and_survives_its_launcher(shim_env: ShimEnv) -> None:
    c = shim_env.container(SLEEPER)
    options = json.dumps(c.options().__dict__)
    code = (
        "import json, sys, time\n"
        "from runtime.shim import launch\n"
        f"info = launch.spawn_shim(launch.ShimOptions(**json.loads({options!r})))\n"
        "print(json.dumps(info.__dict__), flush=True)\n"
        "time.sleep(600)\n"
    )
    launcher = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, cwd=REPO
    )
    try:
        assert launcher.stdout is not None
        info = json.loads(launcher.stdout.readline())
    finally:
        launcher.kill()  # by its pid: the process we started
        launcher.wait()
    shim_pid, init_pid = info["pid"], info["init_pid"]
    assert pid_alive(shim_pid) and pid_alive(init_pid)
    assert ppid_of(shim_pid) == 1
    assert ppid_of(init_pid) == shim_pid  # the shim is the init's (sub)reaper
    assert os.getsid(shim_pid) == shim_pid  # its own session
    assert os.getsid(shim_pid) != os.getsid(0)
    for fd in (0, 1, 2):
        assert os.readlink(f"/proc/{shim_pid}/fd/{fd}") == "/dev/null"
    state = c.client().state()
    assert state["status"] == "running" and state["pid"] == init_pid
    assert state["shim_pid"] == shim_pid
    c.info = None
    result = c.client().stop(signal="SIGKILL", timeout=5)
    assert result["exit_code"] == 137 and result["signal"] == 9


def test_the_container_init_has_default_signal_dispositions(shim_env: ShimEnv) -> None:
    c = shim_env.container(["sleep", "1000"])
    info = c.spawn()
    # spawn returns once the runtime started the init; it execs a moment later
    wait_until(lambda: Path(f"/proc/{info.init_pid}/comm").read_text() == "sleep\n")
    with open(f"/proc/{info.init_pid}/status") as f:
        fields = dict(line.split(":\t", 1) for line in f if ":\t" in line)
    assert int(fields["SigIgn"], 16) == 0, "the init inherited ignored signals from the shim"
    assert int(fields["SigBlk"], 16) == 0
    c.client().stop(signal="KILL")


def test_stop_escalates_to_sigkill_when_sigterm_is_ignored(shim_env: ShimEnv) -> None:
    c = shim_env.container(["sh", "-c", "trap '' TERM; echo up; while :; do sleep 1; done"])
    c.spawn(stop_timeout=30)
    wait_until(lambda: any(e["log"] == "up\n" for e in c.logs()), what="the trap to be set")
    started = time.monotonic()
    result = c.client().stop(signal="SIGTERM", timeout=1.0)
    elapsed = time.monotonic() - started
    assert 1.0 <= elapsed < 5.0
    assert result["exit_code"] == 137 and result["signal"] == signal.SIGKILL
    assert result["status"] == "stopped" and result["final"] is True
    assert result["stop_requested"] is True
    assert c.wait_exit_file()["exit_code"] == 137
    c.wait_shim_gone()
    assert "container_stop_escalated" in [e["event"] for e in shim_events(c)]


def test_stop_with_a_signal_the_container_handles(shim_env: ShimEnv) -> None:
    c = shim_env.container(["sh", "-c", "trap 'exit 7' TERM; echo up; while :; do sleep 0.1; done"])
    c.spawn()
    wait_until(lambda: any(e["log"] == "up\n" for e in c.logs()), what="the trap to be set")
    result = c.client().stop(timeout=10)  # the default stop signal, SIGTERM
    assert result["exit_code"] == 7 and result["signal"] is None


def test_kill_and_wait(shim_env: ShimEnv) -> None:
    c = shim_env.container(SLEEPER)
    c.spawn()
    client = c.client()
    timed_out = client.wait(timeout=0.2)
    assert timed_out["timed_out"] is True and timed_out["status"] == "running"
    client.kill("SIGKILL")
    result = client.wait(timeout=10)
    assert result["exit_code"] == 137 and result["status"] == "stopped"
    assert c.wait_exit_file()["exit_code"] == 137


def test_kill_all_goes_through_the_runtime(shim_env: ShimEnv) -> None:
    c = shim_env.container(["sh", "-c", "sleep 1000 & sleep 1000 & echo up; wait"])
    c.spawn()
    wait_until(lambda: any(e["log"] == "up\n" for e in c.logs()), what="the children")
    state = c.client().kill("KILL", all=True)
    assert state["status"] in ("running", "stopped")
    assert c.client().wait(timeout=10)["exit_code"] == 137
    with pytest.raises(errors.Unavailable):  # gone: a kill now has no shim to talk to
        c.wait_shim_gone()
        c.client().kill("TERM")


def test_the_shim_ignores_sigterm_sigint_and_sighup(shim_env: ShimEnv) -> None:
    c = shim_env.container(SLEEPER)
    info = c.spawn()
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        os.kill(info.pid, sig)

    def logged() -> bool:
        return len([e for e in shim_events(c) if e["event"] == "signal_ignored"]) == 3

    wait_until(logged, what="the shim to log the signals")
    assert pid_alive(info.pid) and pid_alive(info.init_pid)
    assert c.client().state()["status"] == "running"
    c.client().stop(signal="KILL")


def _raw(path: str, payload: bytes) -> list[dict[str, object]]:
    """Send raw bytes, read replies until the shim closes or 1 s of silence."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(5)
        s.connect(path)
        s.sendall(payload)
        s.shutdown(socket.SHUT_WR)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    return [json.loads(line) for line in data.splitlines()]


def test_malformed_requests_get_error_replies(shim_env: ShimEnv) -> None:
    c = shim_env.container(SLEEPER)
    c.spawn()
    replies = _raw(
        c.socket_path,
        b'not json\n[1, 2]\n{"op": "fly"}\n{"op": "kill", "signal": "SIGNOPE"}\n'
        b'{"op": "wait", "condition": "soon"}\n{"op": "stop", "timeout": -1}\n'
        b'{"op": "kill", "signal": 9, "all": "yes"}\n{"op": "state", "id": 42}\n',
    )
    assert [r["ok"] for r in replies] == [False] * 7 + [True]
    assert {r["error"]["category"] for r in replies[:7]} == {"InvalidSpec"}  # type: ignore[index]
    assert "not valid JSON" in replies[0]["error"]["message"]  # type: ignore[index]
    assert replies[7]["id"] == 42
    # an oversized request: an error, then the connection is closed
    big = _raw(c.socket_path, b'{"op": "state", "pad": "' + b"x" * 70000)
    assert len(big) == 1 and big[0]["error"]["category"] == "InvalidSpec"  # type: ignore[index]
    # the shim is fine
    assert c.client().state()["status"] == "running"
    with pytest.raises(errors.FailedPrecondition):
        c.client().shutdown()  # the container runs
    c.client().stop(signal="KILL")
    c.wait_shim_gone()
    with pytest.raises(errors.Unavailable):
        c.client().state()


def test_a_second_shim_for_the_same_container_is_refused(shim_env: ShimEnv) -> None:
    c = shim_env.container(SLEEPER)
    first = c.spawn()
    with pytest.raises(errors.AlreadyExists, match=str(first.pid)):
        c.spawn()
    assert pid_alive(first.pid) and pid_alive(first.init_pid)
    assert c.client().state()["status"] == "running"
    c.info = first
    c.client().stop(signal="KILL")


def test_spawn_error_raises_the_runtime_message_and_leaves_nothing(shim_env: ShimEnv) -> None:
    c = shim_env.container(["/no/such/binary-xyz"])
    with pytest.raises(errors.RuntimeError_) as caught:
        c.spawn()
    message = str(caught.value)
    assert "/no/such/binary-xyz" in message
    if shim_env.runtime_binary:
        assert "executable file not found" in message or "no such file" in message.lower()
    assert os.listdir(c.bundle) == ["config.json"]
    assert not c.log_path.exists()
    assert leaks.processes_mentioning(str(shim_env.roots.base)) == []
    for parent in leaks.cgroup_dirs(shim_env.roots.cgroup_parent):
        assert [d for d in os.listdir(parent) if os.path.isdir(os.path.join(parent, d))] == []
    if shim_env.runtime_binary:
        listed = subprocess.run(
            [shim_env.runtime_binary, "--root", str(shim_env.runtime_root), "list", "-q"],
            capture_output=True,
            text=True,
            check=True,
        )
        assert listed.stdout.strip() == ""


def test_bad_options_are_refused_before_anything_starts(shim_env: ShimEnv) -> None:
    c = shim_env.container(SLEEPER)
    with pytest.raises(errors.InvalidSpec, match="restart policy"):
        c.spawn(restart_policy="sometimes")
    with pytest.raises(errors.InvalidSpec, match="SIGWHAT"):
        c.spawn(stop_signal="SIGWHAT")
    assert os.listdir(c.bundle) == ["config.json"]


def test_an_oom_kill_is_recorded(shim_env: ShimEnv) -> None:
    hog = "echo up; x=$(head -c 200000000 /dev/zero | tr '\\0' x); echo survived"
    c = shim_env.container(["sh", "-c", hog], memory_limit=16 * 1024 * 1024)
    c.spawn()
    record = c.wait_exit_file(timeout=60)
    assert record["exit_code"] == 137 and record["signal"] == signal.SIGKILL
    assert record["oom_killed"] is True
    assert [e["log"] for e in c.logs()] == ["up\n"]


def test_the_console_script_starts_a_detached_shim(shim_env: ShimEnv) -> None:
    c = shim_env.container(SLEEPER)
    script = Path(sys.executable).parent / "pyreconcile-shim"
    proc = subprocess.run(
        [str(script), *c.options().argv()], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["event"] == "ready" and result["socket"] == c.socket_path
    assert ppid_of(result["pid"]) == 1
    assert c.client().state()["pid"] == result["init_pid"]
    # the same command again is refused: the container has a live shim
    again = subprocess.run(
        [str(script), *c.options().argv()], capture_output=True, text=True, timeout=60
    )
    assert again.returncode == 1
    assert json.loads(again.stdout)["category"] == "AlreadyExists"
    c.client().stop(signal="KILL")
