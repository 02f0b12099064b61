"""runtime.sys.clone: fork through clone3 — into a cgroup, as a sibling — with the
interpreter and glibc left as after os.fork()."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from typing import Any

import pytest

from runtime.oci import cgroups
from runtime.sys import clone


def _exit_code(pid: int) -> int:
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def test_a_child_is_a_child_like_os_fork() -> None:
    r, w = os.pipe()
    pid = clone.fork()
    if pid == 0:  # raise() must reach this process, not the parent (glibc's cached tid)
        try:
            got: list[int] = []
            signal.signal(signal.SIGUSR1, lambda *_: got.append(os.getpid()))
            signal.raise_signal(signal.SIGUSR1)
            os.write(w, f"{os.getpid()} {got}".encode())
        finally:
            os._exit(0)
    os.close(w)
    answer = os.read(r, 100).decode()
    os.close(r)
    assert _exit_code(pid) == 0
    assert answer == f"{pid} [{pid}]"


def test_clone_parent_makes_a_sibling() -> None:
    """The middle process clones with CLONE_PARENT: the new one is our child."""
    r, w = os.pipe()
    middle = os.fork()
    if middle == 0:
        try:
            sibling = clone.fork(clone.CLONE_PARENT)
            if sibling == 0:
                os._exit(7)
            os.write(w, str(sibling).encode())
        finally:
            os._exit(0)
    os.close(w)
    sibling = int(os.read(r, 32))
    os.close(r)
    assert _exit_code(middle) == 0
    assert _exit_code(sibling) == 7  # ours to reap: its parent is ours


@pytest.fixture
def v2_dir(roots: Any) -> Iterator[str]:
    hier = cgroups.discover()
    point = hier.v2 or hier.unified
    if point is None:
        pytest.skip("no cgroup v2 tree on this host")
    path = os.path.join(point, roots.cgroup_parent, "clone-test")
    os.makedirs(path)
    try:
        yield path
    finally:
        os.rmdir(path)
        os.rmdir(os.path.dirname(path))


def test_into_a_cgroup_from_birth(v2_dir: str) -> None:
    fd = os.open(v2_dir, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        pid = clone.fork(clone.CLONE_INTO_CGROUP, fd)
        if pid == 0:
            try:
                with open("/proc/self/cgroup") as f:
                    line = next(x for x in f if x.startswith("0::"))
                wanted = "/" + "/".join(v2_dir.split("/")[-2:])  # <parent>/clone-test
                os._exit(0 if line.strip().endswith(wanted) else 3)
            finally:
                os._exit(4)
        assert _exit_code(pid) == 0
    finally:
        os.close(fd)


def test_a_refused_clone_is_an_oserror_and_nothing_runs(tmp_path: Any) -> None:
    fd = os.open(tmp_path, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)  # not a cgroup
    try:
        with pytest.raises(OSError):
            clone.fork(clone.CLONE_INTO_CGROUP, fd)
    finally:
        os.close(fd)
