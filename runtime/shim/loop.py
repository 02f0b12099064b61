"""A small single-threaded event loop for the shim: fds, timers and signals.

``select.epoll`` and a list of timers. No asyncio (it would cost the shim
~20 MB of PSS and tens of ms of imports, runtime-security-and-shims.md §3.4),
no ``selectors`` (it pulls in ``collections``; the loop needs three epoll
calls), no threads (the shim forks the container's init in builtin mode, and
forking a threaded process is unsafe). Signals arrive through the wakeup fd:
the C handler writes the signal number to a pipe the loop watches, and the
loop calls the registered callback from the main loop, never from inside a
handler, so a callback can do anything (reap, log, run the runtime).

fds are plain ints: register before use, unregister before ``close``. Hang-up
and error count as readable (a reader then sees EOF or the error). Callbacks
take no arguments; exceptions in them propagate out of :meth:`Loop.run`.
"""

from __future__ import annotations

import os
import select
import time

from runtime.shim import signals

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

_READ = select.EPOLLIN | select.EPOLLHUP | select.EPOLLERR | select.EPOLLRDHUP
_WRITE = select.EPOLLOUT | select.EPOLLHUP | select.EPOLLERR


class Timer:
    __slots__ = ("callback", "cancelled", "deadline")

    def __init__(self, deadline: float, callback: Callable[[], None]) -> None:
        self.deadline = deadline
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


def _ignore(signum: int, frame: object) -> None:
    """Python-level handler: the byte in the wakeup pipe is all the loop needs."""


class Loop:
    def __init__(self) -> None:
        self._epoll = select.epoll()
        self._fds: dict[int, tuple[Callable[[], None] | None, Callable[[], None] | None]] = {}
        self._timers: list[Timer] = []
        self._handlers: dict[int, Callable[[], None]] = {}
        self._running = False
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signals.set_wakeup_fd(self._wake_w)
        self.add_reader(self._wake_r, self._on_wakeup)

    # signals -------------------------------------------------------------

    def on_signal(self, signum: int, callback: Callable[[], None]) -> None:
        """Call ``callback`` from the loop after ``signum`` arrives (coalesced)."""
        self._handlers[signum] = callback
        signals.handle(signum, _ignore)

    def _on_wakeup(self) -> None:
        seen: list[int] = []
        while True:
            try:
                data = os.read(self._wake_r, 512)
            except BlockingIOError:
                break
            if not data:
                break
            seen.extend(b for b in data if b not in seen)
        for signum in seen:
            handler = self._handlers.get(signum)
            if handler is not None:
                handler()

    # fds -----------------------------------------------------------------

    def _update(
        self, fd: int, reader: Callable[[], None] | None, writer: Callable[[], None] | None
    ) -> None:
        mask = (_READ if reader else 0) | (select.EPOLLOUT if writer else 0)
        if fd in self._fds:
            if mask:
                self._epoll.modify(fd, mask)
                self._fds[fd] = (reader, writer)
            else:
                self._epoll.unregister(fd)
                del self._fds[fd]
        elif mask:
            self._epoll.register(fd, mask)
            self._fds[fd] = (reader, writer)

    def add_reader(self, fd: int, callback: Callable[[], None]) -> None:
        self._update(fd, callback, self._fds.get(fd, (None, None))[1])

    def remove_reader(self, fd: int) -> None:
        self._update(fd, None, self._fds.get(fd, (None, None))[1])

    def add_writer(self, fd: int, callback: Callable[[], None]) -> None:
        self._update(fd, self._fds.get(fd, (None, None))[0], callback)

    def remove_writer(self, fd: int) -> None:
        self._update(fd, self._fds.get(fd, (None, None))[0], None)

    # timers --------------------------------------------------------------

    def call_later(self, delay: float, callback: Callable[[], None]) -> Timer:
        timer = Timer(time.monotonic() + max(0.0, delay), callback)
        self._timers.append(timer)
        return timer

    def _run_timers(self) -> float:
        """Run the due timers; return the seconds until the next one (-1: none)."""
        now = time.monotonic()
        due = [t for t in self._timers if not t.cancelled and t.deadline <= now]
        self._timers = [t for t in self._timers if not t.cancelled and t.deadline > now]
        for timer in sorted(due, key=lambda t: t.deadline):
            if not timer.cancelled:
                timer.callback()
        live = [t.deadline for t in self._timers if not t.cancelled]
        if not live:
            return -1
        return max(0.0, min(live) - time.monotonic())

    # running -------------------------------------------------------------

    def run(self) -> None:
        """Dispatch events until :meth:`stop` is called."""
        self._running = True
        while self._running:
            timeout = self._run_timers()
            if not self._running:
                break
            try:
                ready = self._epoll.poll(timeout)
            except InterruptedError:  # pragma: no cover - PEP 475 retries
                continue
            for fd, events in ready:
                # an earlier callback of this round may have dropped the fd: look it up again
                if events & _READ:
                    reader = self._fds.get(fd, (None, None))[0]
                    if reader is not None:
                        reader()
                if events & _WRITE:
                    writer = self._fds.get(fd, (None, None))[1]
                    if writer is not None:
                        writer()

    def stop(self) -> None:
        self._running = False

    def close(self) -> None:
        signals.set_wakeup_fd(-1)
        self._epoll.close()
        os.close(self._wake_r)
        os.close(self._wake_w)
