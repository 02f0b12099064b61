"""Bring a network interface up with one ioctl (``SIOCSIFFLAGS``).

Used by the container's init to raise ``lo`` in a fresh network namespace, as
Docker users expect ``127.0.0.1`` to work. A netlink library would be the
general tool, but this is one flag on one device, and the init must stay
stdlib-only and cheap: the socket comes from libc (through ctypes, which is
loaded anyway) so that the ``socket`` module and its enum machinery are not
imported on the hot path. Raises ``OSError``.
"""

from __future__ import annotations

import ctypes
import fcntl
import os
import struct

import runtime.sys as rsys

__all__ = ["set_link_up"]

_AF_INET = 2
_SOCK_DGRAM = 2
_SOCK_CLOEXEC = 0o2000000
_SIOCGIFFLAGS = 0x8913
_SIOCSIFFLAGS = 0x8914
_IFF_UP = 0x1
_IFNAMSIZ = 16
_IFREQ = "16sH22x"  # struct ifreq: name, then ifr_flags (short) in a 24-byte union


def set_link_up(name: str) -> None:
    """Set ``IFF_UP`` on the interface ``name`` of this network namespace."""
    raw = name.encode()
    if len(raw) >= _IFNAMSIZ:
        raise OSError(22, f"interface name {name!r} is too long")
    fd = rsys.libc.socket(_AF_INET, _SOCK_DGRAM | _SOCK_CLOEXEC, 0)
    if fd < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"socket for {name}: {os.strerror(err)}")
    try:
        req = struct.pack(_IFREQ, raw, 0)
        out = fcntl.ioctl(fd, _SIOCGIFFLAGS, req)
        flags = struct.unpack(_IFREQ, out)[1]
        if not flags & _IFF_UP:
            fcntl.ioctl(fd, _SIOCSIFFLAGS, struct.pack(_IFREQ, raw, flags | _IFF_UP))
    finally:
        os.close(fd)
