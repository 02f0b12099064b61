"""The per-stack lock, shared with the in-process CLI, and cancellation.

The file is the one ``reconciler.cli.context.Context.stack_lock`` takes
(``<run root>/locks/stack-<stack>.lock``, ``flock``), so an apply through the
daemon, a round of the loop and an in-process CLI never act on one stack at
once. ``flock`` locks belong to the open file, so two threads of the daemon
exclude each other too.

:class:`CancellableRuntime` stops an API apply whose client went away: the
next call into the runtime raises (the executor stops there, as an
interrupted in-process apply would), and the next apply, or the loop, finds
the world as it is and carries on from there.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, cast

from runtime import client, errors


class Cancelled(errors.Terminal):
    """The caller went away: the work stopped between two runtime calls."""


def lock_path(run_root: str, stack: str) -> str:
    return os.path.join(run_root, "locks", f"stack-{stack}.lock")


@contextlib.contextmanager
def stack_lock(
    run_root: str,
    stack: str,
    *,
    cancel: threading.Event | None = None,
    on_wait: Callable[[], None] | None = None,
    blocking: bool = True,
) -> Iterator[bool]:
    """Hold the stack's lock inside; yields False (not holding it) when ``blocking``
    is False and another holds it."""
    locks = os.path.join(run_root, "locks")
    os.makedirs(locks, mode=0o700, exist_ok=True)
    fd = os.open(lock_path(run_root, stack), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        if not _try_lock(fd):
            if not blocking:
                yield False
                return
            if on_wait is not None:
                on_wait()
            while not _try_lock(fd):
                if cancel is not None and cancel.is_set():
                    raise Cancelled(f"stack {stack}: cancelled while waiting for its lock")
                time.sleep(0.05)
        yield True
    finally:
        os.close(fd)


def _try_lock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


class CancellableRuntime:
    """A ``RuntimeClient`` that raises :class:`Cancelled` once ``cancel`` is set."""

    def __init__(self, runtime: client.RuntimeClient, cancel: threading.Event) -> None:
        self._runtime = runtime
        self._cancel = cancel

    def __getattr__(self, name: str) -> Any:
        target = getattr(self._runtime, name)
        if not callable(target):
            return target

        def call(*args: Any, **kwargs: Any) -> Any:
            if self._cancel.is_set():
                raise Cancelled("cancelled: the client that asked for it went away")
            return target(*args, **kwargs)

        return call

    @classmethod
    def wrap(cls, runtime: client.RuntimeClient, cancel: threading.Event) -> client.RuntimeClient:
        return cast(client.RuntimeClient, cls(runtime, cancel))
