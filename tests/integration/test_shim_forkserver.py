"""Shims forked by the run root's fork server: same contract as exec'd ones, less memory."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from runtime import errors
from runtime.shim import forkserver, launch
from tests.integration.test_shim_support import (
    ShimEnv,
    pid_alive,
    ppid_of,
    shim_env,
    wait_until,
)

__all__ = ["shim_env"]

RUNTIME_DIR = str(Path(launch.__file__).resolve().parents[1])


def _server_pid(run_root: Path) -> int:
    path = forkserver.socket_path(str(run_root), RUNTIME_DIR) + ".pid"
    with open(path) as f:
        return int(f.read())


def test_forked_shims_behave_like_execd_ones(shim_env: ShimEnv) -> None:
    run_root = shim_env.roots.run_root
    c = shim_env.container(["sh", "-c", "echo hello; exec sleep 100"])
    info = c.spawn(fork_server=str(run_root))
    server = _server_pid(run_root)
    assert info.pid != server and ppid_of(info.pid) == 1  # orphaned, not the server's
    assert ppid_of(server) == 1
    with open(f"/proc/{info.pid}/cmdline", "rb") as f:
        argv = f.read().split(b"\0")
    assert argv[0] == b"pyreconcile-shim"
    assert argv[argv.index(b"--bundle") + 1] == str(c.bundle).encode()
    with open(f"/proc/{server}/cmdline", "rb") as f:
        assert str(shim_env.roots.base).encode() not in f.read()
    wait_until(lambda: c.logs(), what="the output")
    assert [r["log"] for r in c.logs()] == ["hello\n"]
    d = shim_env.container(["sleep", "100"], name="second")
    d.spawn(fork_server=str(run_root))
    assert _server_pid(run_root) == server  # one server for the run root
    state = c.client().stop(signal="KILL", timeout=1)
    assert state["final"] and state["exit_code"] == 137
    assert d.client().state()["status"] == "running"


def test_the_server_goes_when_its_socket_does_and_a_new_one_comes(shim_env: ShimEnv) -> None:
    run_root = shim_env.roots.run_root
    c = shim_env.container(["sleep", "100"])
    c.spawn(fork_server=str(run_root))
    server = _server_pid(run_root)
    os.unlink(forkserver.socket_path(str(run_root), RUNTIME_DIR))
    wait_until(lambda: not pid_alive(server), what="the server to notice and exit")
    assert c.client().state()["status"] == "running"  # shims never need it again
    d = shim_env.container(["sleep", "100"], name="after")
    d.spawn(fork_server=str(run_root))
    assert _server_pid(run_root) != server


def test_bad_options_are_refused_by_the_server_too(shim_env: ShimEnv) -> None:
    c = shim_env.container(["sleep", "100"])
    with pytest.raises(errors.InvalidSpec):
        launch.spawn_shim(
            c.options(fork_server=str(shim_env.roots.run_root), restart_policy="sometimes")
        )


def test_no_server_to_be_had_means_an_execd_shim(shim_env: ShimEnv, tmp_path: Path) -> None:
    unwritable = tmp_path / "no-such-dir"  # the server cannot bind there: exec instead
    c = shim_env.container(["sleep", "100"])
    info = c.spawn(fork_server=str(unwritable))
    with open(f"/proc/{info.pid}/cmdline", "rb") as f:
        assert b"-I" in f.read().split(b"\0")  # an interpreter of its own
    c.client().stop(signal="KILL", timeout=1)


def test_a_killed_server_is_replaced(shim_env: ShimEnv) -> None:
    run_root = shim_env.roots.run_root
    shim_env.container(["sleep", "100"]).spawn(fork_server=str(run_root))
    server = _server_pid(run_root)
    os.kill(server, signal.SIGKILL)
    wait_until(lambda: not pid_alive(server), what="the server to die")
    info = shim_env.container(["sleep", "100"], name="next").spawn(fork_server=str(run_root))
    assert pid_alive(info.pid) and _server_pid(run_root) != server


def _standbys(run_root: Path) -> list[int]:
    """The server's standby shims: processes started with its socket in their
    environment (the server's forks) that are neither the server nor a shim."""
    path = forkserver.socket_path(str(run_root), RUNTIME_DIR)
    marker = f"{forkserver.ENV_SOCKET}={path}".encode()
    server = _server_pid(run_root)
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == server:
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                environ = f.read().split(b"\0")
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if marker in environ and b"--bundle" not in argv and pid_alive(int(entry)):
            found.append(int(entry))
    return found


def test_a_standby_shim_takes_the_next_request(shim_env: ShimEnv) -> None:
    """The server keeps one shim forked ahead (detached already); a request is
    handed to it and the server forks the next one."""
    run_root = shim_env.roots.run_root
    shim_env.container(["sleep", "100"]).spawn(fork_server=str(run_root))
    wait_until(lambda: len(_standbys(run_root)) == 1, what="a standby shim")
    [standby] = _standbys(run_root)
    assert ppid_of(standby) == 1  # detached like any shim
    info = shim_env.container(["sleep", "100"], name="second").spawn(fork_server=str(run_root))
    assert info.pid == standby
    with open(f"/proc/{info.pid}/cmdline", "rb") as f:
        assert b"--bundle" in f.read().split(b"\0")
    wait_until(lambda: len(_standbys(run_root)) == 1, what="the next standby shim")
    assert _standbys(run_root) != [standby]


def test_a_standby_goes_with_its_server(shim_env: ShimEnv) -> None:
    run_root = shim_env.roots.run_root
    shim_env.container(["sleep", "100"]).spawn(fork_server=str(run_root))
    wait_until(lambda: len(_standbys(run_root)) == 1, what="a standby shim")
    [standby] = _standbys(run_root)
    os.kill(_server_pid(run_root), signal.SIGKILL)
    wait_until(lambda: not pid_alive(standby), what="the standby to see its server gone")
