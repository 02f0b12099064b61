"""The host side of each driver, and a container's end of it. Idempotent.

- ``bridge``: a Linux bridge with the gateway address, ``route_localnet`` on (so
  ports published on 127.0.0.1 can be forwarded into it) and IPv4 forwarding on
  (Docker turns it on too); a veth pair per container, host end on the bridge.
- ``overlay``: a bridge without an address and a VXLAN link on it that floods to
  the peers given in the spec (UDP 4789, VNI from the spec, else derived from the
  network's name so that every host agrees); veth pairs as for a bridge. The
  host is not a router on an overlay: containers have no default route through
  it (give them a bridge network too for the way out). Each host hands out
  addresses from the shared subnet by itself: give every host its own
  ``ipRange`` (or static addresses) so they never collide.
- ``macvlan``: nothing on the host but the parent interface; each container gets
  a macvlan (mode bridge) on it, made directly inside its namespace. The host
  cannot talk to its own macvlan containers (a property of macvlan).

MTU: the spec's ``mtu``, else the MTU of the host's uplink (the link of the
default route), minus 50 on an overlay for the VXLAN header.
"""

from __future__ import annotations

import dataclasses
import hashlib
import ipaddress
from typing import TYPE_CHECKING

from runtime import errors
from runtime.net import endpoints, links, names, netns

if TYPE_CHECKING:
    from pyroute2 import IPRoute

DRIVERS = ("bridge", "macvlan", "overlay")
OPTIONS = ("parent", "peers", "vni", "mtu")
_VNI_BASE = 4096
_VNI_MAX = 16777215


@dataclasses.dataclass(frozen=True)
class NetSpec:
    """A network as the host-side code needs it (from its metadata row)."""

    id: str
    name: str
    driver: str
    subnet: str | None
    gateway: str | None
    internal: bool
    options: dict[str, str]
    tag: str

    @property
    def bridge(self) -> str:
        return names.bridge_name(self.tag, self.id)

    @property
    def vxlan(self) -> str:
        return names.vxlan_name(self.tag, self.id)

    @property
    def alias(self) -> str:
        return names.alias(self.tag, self.id)

    @property
    def prefixlen(self) -> int:
        return ipaddress.IPv4Network(self.subnet).prefixlen if self.subnet else 32

    @property
    def has_bridge(self) -> bool:
        return self.driver in ("bridge", "overlay")

    @property
    def routes_out(self) -> bool:
        """Whether containers get a default route through this network."""
        return self.driver in ("bridge", "macvlan") and not self.internal and bool(self.gateway)

    @property
    def peers(self) -> list[str]:
        return [p.strip() for p in self.options.get("peers", "").split(",") if p.strip()]

    @property
    def parent(self) -> str:
        return self.options.get("parent", "")

    @property
    def vni(self) -> int:
        if self.options.get("vni"):
            return int(self.options["vni"])
        digest = int(hashlib.sha256(self.name.encode()).hexdigest()[:8], 16)
        return _VNI_BASE + digest % (_VNI_MAX - _VNI_BASE)

    def mtu(self, ipr: IPRoute) -> int:
        if self.options.get("mtu"):
            return int(self.options["mtu"])
        base = links.default_mtu(ipr)
        return base - links.VXLAN_OVERHEAD if self.driver == "overlay" else base


def check_options(name: str, driver: str, options: dict[str, str], subnet: str | None) -> None:
    """Refuse options that do not fit the driver, before anything is made."""
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise errors.InvalidSpec(
            f"network {name}: unknown option(s) {', '.join(unknown)}; known: {', '.join(OPTIONS)}"
        )
    if driver == "macvlan" and not options.get("parent"):
        raise errors.InvalidSpec(f"network {name}: a macvlan network needs parent")
    if driver != "macvlan" and options.get("parent"):
        raise errors.InvalidSpec(f"network {name}: parent is for macvlan networks only")
    if driver != "overlay" and (options.get("peers") or options.get("vni")):
        raise errors.InvalidSpec(f"network {name}: peers and vni are for overlay networks only")
    if driver in ("macvlan", "overlay") and not subnet:
        raise errors.InvalidSpec(
            f"network {name}: a {driver} network needs a subnet (the segment's, which every "
            "host on it shares)"
        )
    for key in ("vni", "mtu"):
        if options.get(key):
            try:
                int(options[key])
            except ValueError:
                raise errors.InvalidSpec(f"network {name}: {key} must be a number") from None
    for peer in NetSpec("", name, driver, subnet, None, False, options, "").peers:
        try:
            ipaddress.IPv4Address(peer)
        except ValueError:
            raise errors.InvalidSpec(
                f"network {name}: peer {peer!r} is not an IPv4 address"
            ) from None


def ensure_network(ipr: IPRoute, net: NetSpec) -> None:
    """Make (or repair) the host side of ``net``."""
    if net.driver == "macvlan":
        if links.index_of(ipr, net.parent) is None:
            raise errors.NotFound(
                f"network {net.name}: parent interface {net.parent} does not exist on this host"
            )
        return
    if not net.has_bridge:
        return
    mtu = net.mtu(ipr)
    address = net.gateway if net.driver == "bridge" else None
    bridge = links.ensure_bridge(ipr, net.bridge, net.alias, mtu, address, net.prefixlen)
    if net.driver == "overlay":
        links.ensure_vxlan(ipr, net.vxlan, net.alias, net.vni, mtu, bridge, net.peers)
    if net.driver == "bridge" and not net.internal:
        netns.write_sysctl(f"ipv4/conf/{net.bridge}/route_localnet", "1")
        with open("/proc/sys/net/ipv4/ip_forward") as f:
            forwarding = f.read().strip() == "1"
        if not forwarding:
            netns.write_sysctl("ipv4/ip_forward", "1")


def remove_network(ipr: IPRoute, net: NetSpec) -> None:
    """Undo ``ensure_network`` (idempotent)."""
    if net.driver == "overlay":
        links.delete(ipr, net.vxlan)
    if net.has_bridge:
        links.delete(ipr, net.bridge)


def inside(net: NetSpec, endpoint: endpoints.Endpoint, mtu: int) -> links.Inside:
    return links.Inside(
        ifname=endpoint.interface,
        address=endpoint.address,
        prefixlen=endpoint.prefixlen,
        gateway=endpoint.gateway,
        mtu=mtu,
    )


def plumb(
    ipr: IPRoute, net: NetSpec, endpoint: endpoints.Endpoint, namespace: str, container_id: str
) -> None:
    """Give the container in ``namespace`` its interface on ``net`` (again)."""
    mtu = net.mtu(ipr)
    spec = inside(net, endpoint, mtu)
    if net.driver == "macvlan":
        links.delete_inside(namespace, endpoint.interface)
        links.add_macvlan(ipr, net.parent, namespace, spec)
    else:
        bridge = links.index_of(ipr, net.bridge)
        if bridge is None:
            raise errors.NotFound(f"bridge {net.bridge} of network {net.name} is missing")
        assert endpoint.host_link is not None
        links.add_veth(
            ipr,
            endpoint.host_link,
            names.alias(net.tag, net.id, container_id),
            bridge,
            namespace,
            spec,
        )
    links.configure_inside(namespace, spec, endpoint.default_route)


def unplumb(ipr: IPRoute, endpoint: endpoints.Endpoint, namespace: str) -> None:
    """Remove the container's interface (its veth pair, or its macvlan)."""
    if endpoint.host_link:
        links.delete(ipr, endpoint.host_link)
    else:
        links.delete_inside(namespace, endpoint.interface)


def add_default_route(namespace: str, endpoint: endpoints.Endpoint) -> None:
    """Route through ``endpoint`` by default (when the old way out was disconnected)."""
    if not endpoint.gateway or not netns.is_namespace(namespace):
        return
    with netns.iproute(namespace) as ipr:
        index = links.index_of(ipr, endpoint.interface)
        if index is None:
            return
        try:
            with links.netlink_errors(f"add default route via {endpoint.gateway}"):
                ipr.route("add", dst="0.0.0.0/0", gateway=endpoint.gateway, oif=index)
        except errors.AlreadyExists:
            pass
