"""``exec -t``: connect this terminal to a pty made in the container.

The shim hands over the pty's master (``runtime.client.ExecSession.pty``);
this loop copies the master to stdout and, with ``-i``, stdin to the master,
with the local terminal in raw mode so that keys (^C, arrows, tab) reach the
container's program untouched, as ``docker exec -it`` does. The window size is
set at the start and again on SIGWINCH (the handler only sets a flag; the
loop does the resize, never the handler). The loop ends when the pty's other
side is closed (the process and whatever it left holding the terminal are
gone: EIO or EOF on the master); the exit code then comes from the shim.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import termios
import tty
from collections.abc import Iterator
from types import FrameType

from runtime import client


@contextlib.contextmanager
def raw_terminal(fd: int) -> Iterator[None]:
    """``fd`` in raw mode while inside (nothing when it is not a terminal)."""
    if not os.isatty(fd):
        yield
        return
    saved = termios.tcgetattr(fd)
    tty.setraw(fd)
    try:
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def run(session: client.ExecSession, *, interactive: bool, stdin: int = 0, stdout: int = 1) -> int:
    """Pump until the pty closes; return the process's exit code."""
    master = session.pty
    assert master is not None, "run() needs a session with a tty"
    resized = [True]

    def on_winch(signum: int, frame: FrameType | None) -> None:
        resized[0] = True

    previous = signal.signal(signal.SIGWINCH, on_winch)
    sources = [master, stdin] if interactive else [master]
    try:
        with raw_terminal(stdin) if interactive else contextlib.nullcontext():
            while True:
                if resized[0]:
                    resized[0] = False
                    if os.isatty(stdout):
                        size = os.get_terminal_size(stdout)
                        if size.lines and size.columns:  # 0x0: a terminal with no size
                            session.resize(size.lines, size.columns)
                try:
                    ready, _, _ = select.select(sources, [], [], 1.0)
                except InterruptedError:  # pragma: no cover - PEP 475 retries select
                    continue
                if master in ready:
                    try:
                        data = os.read(master, 65536)
                    except OSError:  # EIO: every holder of the other side is gone
                        break
                    if not data:
                        break
                    _write_all(stdout, data)
                if stdin in ready:
                    data = os.read(stdin, 65536)
                    if data:
                        _write_all(master, data)
                    else:  # our stdin ended: the program keeps its terminal
                        sources.remove(stdin)
    finally:
        signal.signal(signal.SIGWINCH, previous)
    return session.wait()
