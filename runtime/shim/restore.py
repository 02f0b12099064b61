"""What became of a container's shim: for the engine when it starts (DESIGN.md §5).

:func:`probe` looks at one bundle, in this order:

1. the socket answers ``state`` → ``running`` (the shim is alive: reattach;
   its container may be running, restarting, or just ending);
2. the ``exit`` file exists → ``exited``, with the exit record;
3. the shim is alive (it holds the flock on ``shim.pid``) but does not answer
   → :class:`runtime.errors.Unavailable` (busy or stuck: ask again later);
4. otherwise the shim died without recording an exit → ``lost``: like
   containerd's ``cleanupAfterDeadShim``, the container is deleted with the
   runtime the shim used (``delete --force``, from ``options.json``) and an
   exit record with code 137 (128 + SIGKILL) and ``"lost": true`` is written,
   so the next probe says ``exited`` and the engine can tell why. Its restart
   count and start time come from ``run.json``, which the shim rewrote at
   every run, so a lost shim does not reset the count.
"""

from __future__ import annotations

import dataclasses
import fcntl
import os
import signal
import time
from typing import Literal

from runtime import errors
from runtime.shim import client, runtimes, statedir

LOST_EXIT_CODE = 128 + signal.SIGKILL

ShimKind = Literal["running", "exited", "lost"]


@dataclasses.dataclass(frozen=True)
class ShimStatus:
    kind: ShimKind
    #: ``running``: the shim's ``state`` reply; else the exit record.
    record: dict[str, object]
    #: Why a lost container could not be deleted (None when it could, or needed not).
    cleanup_error: str | None = None

    @property
    def exit_code(self) -> int | None:
        code = self.record.get("exit_code")
        return code if isinstance(code, int) else None


def shim_alive(bundle: str) -> bool:
    """Whether the shim of ``bundle`` is alive: it holds the flock on ``shim.pid``.

    The lock, not the pid, is the proof (no pid reuse to guess around). One
    exception: in builtin mode the container's init is forked from the shim and
    holds a copy of the lock's fd until it execs, a few ms after ``start``; a
    shim killed in that window leaves the lock held by the init. So a held lock
    whose pid is dead (or a zombie) does not count.
    """
    pid_file = statedir.path(bundle, statedir.SHIM_PID)
    try:
        fd = os.open(pid_file, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        pid = statedir.read_pid(pid_file)
        return pid is None or _running(pid)  # no pid yet: a shim is starting
    finally:
        os.close(fd)  # closing releases our shared lock, if we got it
    return False


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except FileNotFoundError:
        return False
    return stat[stat.rindex(b")") + 2 :][:1] not in (b"Z", b"X")


def ask(bundle: str, *, timeout: float = 2.0) -> ShimStatus | None:
    """The shim's ``state``, when it answers: :func:`probe`'s first step alone
    (it reads and changes nothing, so many may be asked at once)."""
    try:
        state = client.ShimClient(statedir.path(bundle, statedir.SOCKET), timeout).state()
    except errors.Unavailable:
        return None
    return ShimStatus("running", state)


def probe(bundle: str, *, timeout: float = 2.0) -> ShimStatus:
    """Tell whether the shim of ``bundle`` is running, has exited, or was lost."""
    answer = ask(bundle, timeout=timeout)
    if answer is not None:
        return answer
    record = statedir.read_exit(bundle)
    if record is not None:
        return ShimStatus("exited", record)
    if shim_alive(bundle):
        pid = statedir.read_pid(statedir.path(bundle, statedir.SHIM_PID))
        raise errors.Unavailable(
            f"shim (pid {pid}) of bundle {bundle} is alive but does not answer: try again later"
        )
    return _clean_up_lost(bundle)


def _clean_up_lost(bundle: str) -> ShimStatus:
    options = statedir.read_json(statedir.path(bundle, statedir.OPTIONS))
    if options is None:
        raise errors.NotFound(f"bundle {bundle} has no shim state: no shim was started there")
    binary = options.get("runtime_binary")
    runtime = runtimes.make(
        binary if isinstance(binary, str) else None,
        str(options["runtime_root"]),
        str(options["id"]),
        bundle,
    )
    cleanup_error = None
    try:
        runtime.delete(force=True)
    except errors.RuntimeError_ as exc:  # e.g. it is gone already (host rebooted)
        cleanup_error = str(exc)
    run = statedir.read_json(statedir.path(bundle, statedir.RUN)) or {}
    count = run.get("restart_count")
    started = run.get("started_at")
    record: dict[str, object] = {
        "exit_code": LOST_EXIT_CODE,
        "signal": int(signal.SIGKILL),
        "finished_at": time.time(),
        "oom_killed": False,
        "started_at": started if isinstance(started, int | float) else None,
        "restart_count": count if isinstance(count, int) else 0,
        "error": "the shim died without recording an exit; the container was deleted",
        "lost": True,
    }
    statedir.write_json(statedir.path(bundle, statedir.EXIT), record)
    statedir.remove(bundle, statedir.SOCKET)
    return ShimStatus("lost", record, cleanup_error)
