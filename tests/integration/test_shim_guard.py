"""Shims (and their fork server) run from the guarded interpreter: the
executable behind a container's init before its exec, and behind every
process the shim forks, is on a detached read-only mount (CVE-2019-5736)."""

from __future__ import annotations

import os
from pathlib import Path

from runtime import client
from runtime.shim import statedir
from runtime.sys import exeguard
from tests.conftest import Roots


def test_shim_executable_is_the_guarded_interpreter(roots: Roots, busybox_tar: Path) -> None:
    rt = client.open_local(str(roots.root), str(roots.run_root), roots.cgroup_parent)
    try:
        rt.import_image(str(busybox_tar), "localhost/guard/bb:1")
        info = rt.create_container(
            client.ContainerConfig(
                name="g",
                image="localhost/guard/bb:1",
                command=("sleep", "100"),
                stop_grace_period=1.0,
            )
        )
        rt.start_container("g")
        bundle = os.path.join(str(roots.run_root), "containers", info.id)
        pid = statedir.read_pid(statedir.path(bundle, statedir.SHIM_PID))
        assert pid is not None
        fd = os.open(f"/proc/{pid}/exe", os.O_PATH | os.O_CLOEXEC)
        try:
            assert exeguard.is_guarded_fd(fd)
        finally:
            os.close(fd)
        try:
            with open(f"/proc/{pid}/exe", "r+b"):
                raise AssertionError("the shim's executable opened for writing")
        except OSError as exc:
            assert exc.errno in (30, 26)  # EROFS, ETXTBSY
    finally:
        for c in rt.list_containers():
            rt.remove_container(c.name, force=True)
        rt.close()
