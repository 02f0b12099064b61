"""Pseudo-terminals for containers, and handing an fd over a unix socket.

The pty is made *inside* the container (its own devpts instance): the master
from ``/dev/ptmx``, the slave through ``TIOCGPTPEER`` on the master — never by
opening ``/dev/pts/N`` by name, which the container could have replaced with
a symlink (CVE-2025-52565). The master goes to the caller's console socket
with ``SCM_RIGHTS`` (runc's ``--console-socket`` protocol: one message whose
payload is a name, carrying one fd).

``socket`` is imported lazily (it costs a few ms and only terminals need it);
a caller that forks before using :func:`send_fd` must import it first
(``runtime.oci.create`` does, the forked init cannot import).
"""

from __future__ import annotations

import fcntl
import os
import struct

__all__ = ["open_pty", "send_fd", "set_controlling", "set_size"]

_TIOCSPTLCK = 0x40045431
_TIOCGPTPEER = 0x5441
_TIOCSCTTY = 0x540E
_TIOCSWINSZ = 0x5414


def open_pty(ptmx: str = "/dev/ptmx") -> tuple[int, int]:
    """(master, slave) of a new pty, both close-on-exec and not our controlling tty."""
    master = os.open(ptmx, os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    try:
        fcntl.ioctl(master, _TIOCSPTLCK, struct.pack("i", 0))  # unlockpt
        slave = fcntl.ioctl(master, _TIOCGPTPEER, os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    except BaseException:
        os.close(master)
        raise
    return master, int(slave)


def set_size(fd: int, rows: int, cols: int) -> None:
    fcntl.ioctl(fd, _TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


def set_controlling(fd: int) -> None:
    """Make the tty at ``fd`` the controlling terminal of this (session leader) process."""
    fcntl.ioctl(fd, _TIOCSCTTY, 0)


def send_fd(sock_fd: int, fd: int, name: str) -> None:
    """Send ``fd`` with ``name`` as the payload over the connected unix socket ``sock_fd``."""
    import socket

    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM, fileno=os.dup(sock_fd))
    try:
        socket.send_fds(sock, [name.encode()], [fd])
    finally:
        sock.close()
