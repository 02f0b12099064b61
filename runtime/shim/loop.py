"""A small single-threaded event loop for the shim: fds, timers and signals.

``selectors`` (epoll) and a list of timers; no asyncio (it would cost the shim
~20 MB of PSS and tens of ms of imports, runtime-security-and-shims.md §3.4),
no threads (the shim forks the container's init in builtin mode; forking a
threaded process is unsafe). Signals arrive through ``signal.set_wakeup_fd``:
the C handler writes the signal number to a pipe the loop watches, and the
loop calls the registered callback from the main loop, never from inside a
handler, so a callback can do anything (reap, log, run the runtime).
Callbacks take no arguments; exceptions in them propagate out of :meth:`Loop.run`.
"""

from __future__ import annotations

import os
import selectors
import signal
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    import socket
    from collections.abc import Callable
    from typing import Any

    FileLike = int | socket.socket


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
        self._selector = selectors.DefaultSelector()
        self._timers: list[Timer] = []
        self._handlers: dict[int, Callable[[], None]] = {}
        self._running = False
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.set_wakeup_fd(self._wake_w, warn_on_full_buffer=False)
        self.add_reader(self._wake_r, self._on_wakeup)

    # signals -------------------------------------------------------------

    def on_signal(self, signum: int, callback: Callable[[], None]) -> None:
        """Call ``callback`` from the loop after ``signum`` arrives (coalesced)."""
        self._handlers[signum] = callback
        signal.signal(signum, _ignore)

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

    def _update(self, fileobj: FileLike, reader: object, writer: object) -> None:
        mask = (selectors.EVENT_READ if reader else 0) | (selectors.EVENT_WRITE if writer else 0)
        try:
            key = self._selector.get_key(fileobj)
        except KeyError:
            if mask:
                self._selector.register(fileobj, mask, [reader, writer])
            return
        if mask:
            self._selector.modify(key.fileobj, mask, [reader, writer])
        else:
            self._selector.unregister(key.fileobj)

    def _callbacks(self, fileobj: Any) -> list[object]:
        try:
            return list(self._selector.get_key(fileobj).data)
        except (KeyError, ValueError):  # not registered, or already closed
            return [None, None]

    def add_reader(self, fileobj: FileLike, callback: Callable[[], None]) -> None:
        self._update(fileobj, callback, self._callbacks(fileobj)[1])

    def remove_reader(self, fileobj: FileLike) -> None:
        self._update(fileobj, None, self._callbacks(fileobj)[1])

    def add_writer(self, fileobj: FileLike, callback: Callable[[], None]) -> None:
        self._update(fileobj, self._callbacks(fileobj)[0], callback)

    def remove_writer(self, fileobj: FileLike) -> None:
        self._update(fileobj, self._callbacks(fileobj)[0], None)

    # timers --------------------------------------------------------------

    def call_later(self, delay: float, callback: Callable[[], None]) -> Timer:
        timer = Timer(time.monotonic() + max(0.0, delay), callback)
        self._timers.append(timer)
        return timer

    def _run_timers(self) -> float | None:
        """Run the due timers; return the seconds until the next one (None: no timer)."""
        now = time.monotonic()
        due = [t for t in self._timers if not t.cancelled and t.deadline <= now]
        self._timers = [t for t in self._timers if not t.cancelled and t.deadline > now]
        for timer in sorted(due, key=lambda t: t.deadline):
            if not timer.cancelled:
                timer.callback()
        live = [t.deadline for t in self._timers if not t.cancelled]
        if not live:
            return None
        return max(0.0, min(live) - time.monotonic())

    # running -------------------------------------------------------------

    def run(self) -> None:
        """Dispatch events until :meth:`stop` is called."""
        self._running = True
        while self._running:
            timeout = self._run_timers()
            if not self._running:
                break
            for key, events in self._selector.select(timeout):
                # an earlier callback of this round may have closed the fd: look it up again
                if events & selectors.EVENT_READ:
                    reader = self._callbacks(key.fileobj)[0]
                    if callable(reader):
                        reader()
                if events & selectors.EVENT_WRITE:
                    writer = self._callbacks(key.fileobj)[1]
                    if callable(writer):
                        writer()

    def stop(self) -> None:
        self._running = False

    def close(self) -> None:
        signal.set_wakeup_fd(-1)
        self._selector.close()
        os.close(self._wake_r)
        os.close(self._wake_w)
