"""``exec`` through the shim: stdio passed as fds, a pty with resize, reaping, exit codes."""

from __future__ import annotations

import os
import select
import signal
import time

import pytest

from runtime import errors
from tests.integration.test_shim_support import (
    ShimEnv,
    exec_env,
    pid_alive,
    ppid_of,
    wait_until,
    zombie_children,
)

__all__ = ["exec_env"]


def _read_all(fd: int, timeout: float = 10.0) -> bytes:
    data = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            break
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # EIO: the pty's other side is gone
            break
        if not chunk:
            break
        data += chunk
    return data


def _read_until(fd: int, marker: bytes, timeout: float = 10.0) -> bytes:
    data = b""
    deadline = time.monotonic() + timeout
    while marker not in data:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"no {marker!r} in {data!r}")
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            data += os.read(fd, 65536)
    return data


def test_exec_without_a_tty_gets_the_callers_fds(exec_env: ShimEnv) -> None:
    c = exec_env.container(["sleep", "100"], env=["PATH=/bin:/usr/bin", "KEEP=1", "OVER=old"])
    c.spawn()
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    in_r, in_w = os.pipe()
    os.write(in_w, b"from-stdin\n")
    os.close(in_w)
    script = 'read line; echo "$line $KEEP $OVER $(pwd)"; echo oops >&2; exit 7'
    with c.client().exec(
        ["sh", "-c", script], env=["OVER=new"], cwd="/tmp", stdio=(in_r, out_w, err_w)
    ) as session:
        for fd in (in_r, out_w, err_w):
            os.close(fd)
        assert session.pty is None
        assert session.wait(10) == 7
    assert _read_all(out_r) == b"from-stdin 1 new /tmp\n"
    assert _read_all(err_r) == b"oops\n"
    os.close(out_r)
    os.close(err_r)
    assert c.client().state()["status"] == "running"  # the container is untouched
    assert not zombie_children(c.info.pid if c.info else 0)


def test_exec_reports_a_signal_as_128_plus_it_and_is_the_shims_child(exec_env: ShimEnv) -> None:
    c = exec_env.container(["sleep", "100"])
    info = c.spawn()
    with c.client().exec(["sleep", "100"]) as session:
        wait_until(lambda: pid_alive(session.pid), what="the exec'd process")
        assert ppid_of(session.pid) == info.pid  # reparented to the subreaper
        os.kill(session.pid, signal.SIGTERM)
        assert session.wait(10) == 128 + signal.SIGTERM
    wait_until(lambda: not zombie_children(info.pid), what="no zombie child of the shim")


def test_exec_as_another_user(exec_env: ShimEnv) -> None:
    c = exec_env.container(["sleep", "100"])
    c.spawn()
    r, w = os.pipe()
    user = {"uid": 1000, "gid": 1001, "additionalGids": [1002]}
    with c.client().exec(["sh", "-c", "id -u; id -g; id -G"], user=user, stdio=(0, w, w)) as s:
        os.close(w)
        assert s.wait(10) == 0
    assert _read_all(r).split() == [b"1000", b"1001", b"1001", b"1002"]
    os.close(r)


def test_exec_with_a_tty_and_resize(exec_env: ShimEnv) -> None:
    c = exec_env.container(["sleep", "100"])
    c.spawn()
    with c.client().exec(["sh", "-c", "read x; stty size; tty; echo got-$x"], tty=True) as s:
        assert s.pty is not None
        s.resize(33, 101)
        os.write(s.pty, b"hello\n")
        output = _read_until(s.pty, b"got-hello")
        assert s.wait(10) == 0
    lines = output.replace(b"\r", b"").split(b"\n")
    assert b"33 101" in lines
    assert any(line.startswith(b"/dev/pts/") for line in lines)


def test_closing_a_tty_session_hangs_up_its_process(exec_env: ShimEnv) -> None:
    c = exec_env.container(["sleep", "100"])
    info = c.spawn()
    session = c.client().exec(["sh", "-c", "read x"], tty=True)
    pid = session.pid
    wait_until(lambda: pid_alive(pid), what="the exec'd shell")
    session.close()  # no reply awaited: the client went away
    wait_until(lambda: not pid_alive(pid), what="the shell to get SIGHUP and exit")
    wait_until(lambda: not zombie_children(info.pid), what="the shell to be reaped")
    assert c.client().state()["status"] == "running"


def test_exec_errors(exec_env: ShimEnv) -> None:
    c = exec_env.container(["sleep", "100"])
    c.spawn()
    with pytest.raises(errors.InvalidSpec, match="args"):
        c.client().exec([])
    # the builtin runtime knows why (InvalidSpec); runc says only that it failed
    with pytest.raises((errors.InvalidSpec, errors.Terminal), match="/no/such/binary"):
        c.client().exec(["/no/such/binary"]).wait(10)
    c.client().stop(timeout=1)
    with pytest.raises(errors.Unavailable):
        c.client().exec(["true"])


def test_many_execs_leave_no_zombie(exec_env: ShimEnv) -> None:
    c = exec_env.container(["sleep", "100"])
    info = c.spawn()
    sessions = [c.client().exec(["sh", "-c", f"exit {i}"]) for i in range(8)]
    codes = [s.wait(10) for s in sessions]
    for s in sessions:
        s.close()
    assert codes == list(range(8))
    wait_until(lambda: not zombie_children(info.pid), what="every exec reaped")
