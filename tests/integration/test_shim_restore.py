"""restore.probe: a live shim, an exited one, and one killed with SIGKILL (lost)."""

from __future__ import annotations

import os
import signal
import subprocess

import pytest

from runtime import errors
from runtime.shim import restore, statedir
from tests.integration.test_shim_support import (
    ShimEnv,
    pid_alive,
    shim_env,
    wait_until,
)
from tests.support import leaks

__all__ = ["shim_env"]

SLEEPER = ["sh", "-c", "while :; do sleep 1; done"]


def test_probe_a_live_shim(shim_env: ShimEnv) -> None:
    c = shim_env.container(SLEEPER)
    info = c.spawn()
    status = restore.probe(str(c.bundle))
    assert status.kind == "running"
    assert status.record["status"] == "running" and status.record["pid"] == info.init_pid
    assert status.exit_code is None
    assert restore.shim_alive(str(c.bundle))
    c.client().stop(signal="KILL")


def test_probe_an_exited_shim(shim_env: ShimEnv) -> None:
    c = shim_env.container(["sh", "-c", "exit 5"])
    c.spawn()
    c.wait_exit_file()
    c.wait_shim_gone()
    status = restore.probe(str(c.bundle))
    assert status.kind == "exited" and status.exit_code == 5
    assert not restore.shim_alive(str(c.bundle))


def test_probe_a_lost_shim_deletes_the_container_and_reports_137(shim_env: ShimEnv) -> None:
    c = shim_env.container(SLEEPER)
    info = c.spawn()
    os.kill(info.pid, signal.SIGKILL)  # the shim we started, by its pid
    wait_until(lambda: not pid_alive(info.pid), what="the shim to die")
    assert pid_alive(info.init_pid)  # the container outlives its shim
    status = restore.probe(str(c.bundle))
    assert status.kind == "lost"
    assert status.exit_code == 137 and status.record["lost"] is True
    assert status.cleanup_error is None
    wait_until(lambda: not pid_alive(info.init_pid), what="the container to be killed")
    if shim_env.runtime_binary:
        state = subprocess.run(
            [shim_env.runtime_binary, "--root", str(shim_env.runtime_root), "state", c.id],
            capture_output=True,
        )
        assert state.returncode != 0  # deleted
    for parent in leaks.cgroup_dirs(shim_env.roots.cgroup_parent):
        assert not os.path.exists(os.path.join(parent, c.id))
    assert not os.path.exists(c.bundle / statedir.SOCKET)
    # the next probe sees the recorded exit
    again = restore.probe(str(c.bundle))
    assert again.kind == "exited" and again.exit_code == 137


def test_probe_a_bundle_without_a_shim(shim_env: ShimEnv) -> None:
    c = shim_env.container(SLEEPER)
    with pytest.raises(errors.NotFound):
        restore.probe(str(c.bundle))
