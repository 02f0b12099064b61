"""Which subnets are taken on this host, and the default pool for new networks.

A bridge network's subnet must not overlap a route of the host (its uplink's
segment, a VPN, another engine's bridge, Docker's ``docker0``…): containers
could not reach that segment, and the host would route some of its own traffic
into the bridge. The default route and host routes (``/32``) of local services
do not count; routes through our own bridge for the same network do not either
(so a network can be repaired). The subnets of this engine's other networks
count even when they have no route (a macvlan or overlay network, a bridge
that drifted away).

Networks without a subnet get the first free ``/24`` of the default pools,
10.89.0.0/16 then 10.90.0.0/15 (Podman starts its own networks at 10.89.0.0/24
too; 172.17-31 is left to Docker). The choice and the creation of the bridge
happen under a host-wide lock (``/run/pyreconcile-subnets.lock``) so that two
engines on one host never pick the same one.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import ipaddress
import os
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

from runtime import errors
from runtime.net import links

if TYPE_CHECKING:
    from pyroute2 import IPRoute

DEFAULT_POOLS = (("10.89.0.0/16", 24), ("10.90.0.0/15", 24))
HOST_LOCK = "/run/pyreconcile-subnets.lock"


@dataclasses.dataclass(frozen=True)
class Route:
    network: ipaddress.IPv4Network
    device: str  # "" when unknown

    def __str__(self) -> str:
        return f"{self.network} dev {self.device}" if self.device else str(self.network)


def host_routes(ipr: IPRoute) -> list[Route]:
    """IPv4 routes of the main table, and the subnets of the host's addresses,
    without the default route and host (/32) routes."""
    names = {link.index: name for name, link in links.links(ipr).items()}
    found: dict[tuple[str, str], Route] = {}
    with links.netlink_errors("list the host's routes"):
        for msg in ipr.get_routes(family=2, table=254):
            if msg["dst_len"] in (0, 32):
                continue
            dst = msg.get_attr("RTA_DST")
            if not dst:
                continue
            net = ipaddress.IPv4Network(f"{dst}/{msg['dst_len']}", strict=False)
            device = names.get(msg.get_attr("RTA_OIF") or -1, "")
            found[(str(net), device)] = Route(net, device)
        for msg in ipr.get_addr(family=2):
            if msg["prefixlen"] in (0, 32):
                continue
            local = msg.get_attr("IFA_LOCAL") or msg.get_attr("IFA_ADDRESS")
            if not local or local.startswith("127."):
                continue
            net = ipaddress.IPv4Network(f"{local}/{msg['prefixlen']}", strict=False)
            device = names.get(msg["index"], "")
            found.setdefault((str(net), device), Route(net, device))
    return list(found.values())


def conflict(
    subnet: str, routes: Iterable[Route], taken: Iterable[tuple[str, str]], own_device: str = ""
) -> str | None:
    """What ``subnet`` overlaps, in words, or None. ``taken``: (network name, subnet)
    of this engine's other networks; ``own_device``: our bridge, whose route is ours."""
    net = ipaddress.IPv4Network(subnet)
    for name, other in taken:
        if net.overlaps(ipaddress.IPv4Network(other)):
            return f"the subnet {other} of network {name!r}"
    for route in routes:
        if route.device and route.device == own_device:
            continue
        if net.overlaps(route.network):
            return f"the host route {route}"
    return None


def check_free(
    network: str,
    subnet: str,
    routes: Iterable[Route],
    taken: Iterable[tuple[str, str]],
    own_device: str = "",
) -> None:
    clash = conflict(subnet, routes, taken, own_device)
    if clash is not None:
        raise errors.FailedPrecondition(
            f"network {network}: subnet {subnet} overlaps {clash}; choose a subnet that is "
            "not in use on this host (see `ip route`), or leave it out to get a free one"
        )


def choose(routes: Iterable[Route], taken: Iterable[tuple[str, str]]) -> str:
    """The first free subnet of the default pools."""
    routes = list(routes)
    taken = list(taken)
    for pool, prefix in DEFAULT_POOLS:
        for candidate in ipaddress.IPv4Network(pool).subnets(new_prefix=prefix):
            if conflict(str(candidate), routes, taken) is None:
                return str(candidate)
    raise errors.Unavailable(
        "every subnet of the default pools (10.89.0.0/16, 10.90.0.0/15) is in use; "
        "give the network a subnet"
    )


def default_gateway(subnet: str) -> str:
    """The first usable address, Docker's choice."""
    net = ipaddress.IPv4Network(subnet)
    return str(net.network_address + 1)


@contextlib.contextmanager
def host_lock(path: str = HOST_LOCK) -> Iterator[None]:
    """Held while a subnet is chosen and its bridge gets its address."""
    with errors.map_os_errors(f"lock {path}"):
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        with errors.map_os_errors(f"lock {path}"):
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
