"""sd_notify without libsystemd: one datagram to ``$NOTIFY_SOCKET``.

``READY=1`` once the socket serves, ``RELOADING=1`` … ``READY=1`` around a
SIGHUP reload, ``STOPPING=1`` on shutdown, ``WATCHDOG=1`` every half of
``$WATCHDOG_USEC`` (only while the main loop turns, so a hung daemon is
restarted by systemd), ``STATUS=…`` for ``systemctl status``. An abstract
socket name starts with ``@``. Without ``NOTIFY_SOCKET`` (not under systemd)
every call does nothing.
"""

from __future__ import annotations

import os
import socket


def notify(*lines: str) -> bool:
    """Send ``lines`` (``KEY=value``); False when there is no one to tell."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
    sock.setblocking(False)  # never wait on a reader that does not read: drop instead
    try:
        sock.connect(address)
        sock.send("\n".join(lines).encode())
        return True
    except OSError:
        return False
    finally:
        sock.close()


def watchdog_interval() -> float | None:
    """Seconds between ``WATCHDOG=1`` pings (half the timeout), or None when off."""
    usec = os.environ.get("WATCHDOG_USEC", "")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec.isdigit() or int(usec) == 0:
        return None
    if pid and pid.isdigit() and int(pid) != os.getpid():
        return None
    return int(usec) / 2e6
