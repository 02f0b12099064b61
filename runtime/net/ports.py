"""Published ports: which host port each one gets, and conflicts.

A port is forwarded to the container's address on its *gateway* network (the
first bridge network that gives it a default route), as Docker does; a
container on host, none, internal, macvlan or overlay networks only publishes
nothing (Docker ignores ``-p`` there too).

A fixed host port must be free: not published by another container of this
engine (same protocol, same or overlapping host address), and not bound by a
program on the host (a test bind says so). Without a host port, one is chosen
by the kernel (bind to port 0), skipping the ports this engine publishes, and
recorded, so ``ps`` shows it and it stays the same until the container's
network is detached. There is no proxy process holding the port (DNAT does
the forwarding), so a program that binds the port later is not prevented; its
traffic from elsewhere is DNATed away from it.
"""

from __future__ import annotations

import errno
import ipaddress
import socket
from collections.abc import Iterable, Sequence

from runtime import client, errors
from runtime.net import endpoints

ANY = "0.0.0.0"
_TRIES = 20


def _overlaps(a: str, b: str) -> bool:
    return ANY in (a, b) or a == b


def _bind(protocol: str, host_ip: str, port: int) -> int:
    """Bind a throw-away socket; return the port (chosen by the kernel if 0)."""
    kind = socket.SOCK_STREAM if protocol == "tcp" else socket.SOCK_DGRAM
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host_ip, port))
        return int(sock.getsockname()[1])


def choose(
    container: str,
    ports: Sequence[client.PortConfig],
    gateway: endpoints.Endpoint | None,
    taken: Iterable[tuple[str, endpoints.Binding]],
    previous: Sequence[endpoints.Binding] = (),
) -> tuple[endpoints.Binding, ...]:
    """The bindings of ``container``'s ``ports``. ``taken``: (container name, binding)
    of every other container; ``previous``: this container's earlier bindings, whose
    chosen host ports are kept."""
    if gateway is None or gateway.address is None:
        return ()
    used = [(name, b) for name, b in taken]
    result: list[endpoints.Binding] = []
    for p in ports:
        host_ip = p.host_ip or ANY
        try:
            ipaddress.IPv4Address(host_ip)
        except ValueError:
            raise errors.InvalidSpec(
                f"container {container}: hostIP {host_ip} is not an IPv4 address "
                "(IPv6 port publishing is not supported yet)"
            ) from None
        port = p.host_port or _earlier(previous, p, host_ip)
        if port:
            _check_free(container, p.protocol, host_ip, port, used, fixed=bool(p.host_port))
        else:
            port = _ephemeral(container, p.protocol, host_ip, used)
        binding = endpoints.Binding(
            container_port=p.container_port,
            protocol=p.protocol,
            host_ip=host_ip,
            host_port=port,
            address=gateway.address,
            network_id=gateway.network_id,
        )
        used.append((container, binding))
        result.append(binding)
    return tuple(result)


def _earlier(previous: Sequence[endpoints.Binding], p: client.PortConfig, host_ip: str) -> int:
    for b in previous:
        if (b.container_port, b.protocol, b.host_ip) == (p.container_port, p.protocol, host_ip):
            return b.host_port
    return 0


def _check_free(
    container: str,
    protocol: str,
    host_ip: str,
    port: int,
    used: Sequence[tuple[str, endpoints.Binding]],
    fixed: bool,
) -> None:
    for name, b in used:
        if b.protocol == protocol and b.host_port == port and _overlaps(b.host_ip, host_ip):
            who = "this container already" if name == container else f"container {name}"
            raise errors.FailedPrecondition(
                f"container {container}: host port {host_ip}:{port}/{protocol} is already "
                f"published by {who}; choose another host port"
            )
    if not fixed:
        return
    try:
        _bind(protocol, host_ip, port)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise errors.FailedPrecondition(
                f"container {container}: host port {host_ip}:{port}/{protocol} is in use by a "
                "program on this host; stop it or choose another host port"
            ) from None
        if exc.errno == errno.EADDRNOTAVAIL:
            raise errors.InvalidSpec(
                f"container {container}: hostIP {host_ip} is not an address of this host"
            ) from None
        raise errors.FailedPrecondition(
            f"container {container}: cannot publish {host_ip}:{port}/{protocol}: {exc.strerror}"
        ) from None


def _ephemeral(
    container: str, protocol: str, host_ip: str, used: Sequence[tuple[str, endpoints.Binding]]
) -> int:
    ours = {b.host_port for _, b in used if b.protocol == protocol}
    for _ in range(_TRIES):
        try:
            port = _bind(protocol, host_ip, 0)
        except OSError as exc:
            raise errors.InvalidSpec(
                f"container {container}: cannot choose a host port on {host_ip}: {exc.strerror}"
            ) from None
        if port not in ours:
            return port
    raise errors.Unavailable(f"container {container}: no free host port found; retry")
