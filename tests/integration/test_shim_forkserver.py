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
