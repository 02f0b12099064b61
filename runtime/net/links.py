"""Links, addresses and routes through pyroute2, with its errors mapped once.

Every function is idempotent: "ensure" creates what is missing and corrects
what differs, "delete" treats a missing link as done. pyroute2's
``NetlinkError`` (an errno in ``.code``) becomes a ``runtime.errors`` category
in :func:`netlink_errors`, the one edge where it can surface.

Addresses are IPv4 only for now: Docker's default too. A container's
interfaces are ``eth0``, ``eth1``… in the order it joined its networks; the
MAC address of a veth or macvlan inside a container is derived from its IPv4
address (``02:42:`` and the four bytes, Docker's scheme), so a container that
comes back with the same address keeps its neighbours' ARP entries valid.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import ipaddress
import os
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from runtime import errors
from runtime.net import netns

if TYPE_CHECKING:
    from pyroute2 import IPRoute

DEFAULT_MTU = 1500
VXLAN_PORT = 4789
VXLAN_OVERHEAD = 50
IFF_UP = 0x1


@contextlib.contextmanager
def netlink_errors(what: str) -> Iterator[None]:
    """Turn pyroute2's NetlinkError (and OSError) into a categorised error."""
    from pyroute2.netlink.exceptions import NetlinkError

    try:
        with errors.map_os_errors(what):
            yield
    except NetlinkError as exc:
        code = exc.code if isinstance(exc.code, int) else None
        category = errors.category_for_errno(code)
        detail = os.strerror(code) if code else str(exc)
        raise category(f"{what}: {detail.lower()}") from exc


def _code(exc: BaseException) -> int | None:
    cause = exc.__cause__
    code = getattr(cause, "code", None) or getattr(cause, "errno", None)
    return code if isinstance(code, int) else None


def mac_for(address: str) -> str:
    """Docker's MAC for an IPv4 address: 02:42 and the address's four bytes."""
    packed = ipaddress.IPv4Address(address).packed
    return "02:42:" + ":".join(f"{b:02x}" for b in packed)


@dataclasses.dataclass(frozen=True)
class Link:
    index: int
    name: str
    kind: str
    master: int | None
    up: bool
    alias: str | None
    mtu: int


def links(ipr: IPRoute) -> dict[str, Link]:
    """Every link of the namespace, by name."""
    found: dict[str, Link] = {}
    with netlink_errors("list links"):
        for msg in ipr.get_links():
            info = msg.get_attr("IFLA_LINKINFO")
            kind = info.get_attr("IFLA_INFO_KIND") if info is not None else None
            name = msg.get_attr("IFLA_IFNAME")
            found[name] = Link(
                index=msg["index"],
                name=name,
                kind=kind or "",
                master=msg.get_attr("IFLA_MASTER"),
                up=bool(msg["flags"] & IFF_UP),
                alias=msg.get_attr("IFLA_IFALIAS"),
                mtu=msg.get_attr("IFLA_MTU") or 0,
            )
    return found


def addresses(ipr: IPRoute) -> dict[int, set[str]]:
    """IPv4 addresses ("a.b.c.d/len") by link index."""
    found: dict[int, set[str]] = {}
    with netlink_errors("list addresses"):
        for msg in ipr.get_addr(family=2):
            found.setdefault(msg["index"], set()).add(
                f"{msg.get_attr('IFA_LOCAL') or msg.get_attr('IFA_ADDRESS')}/{msg['prefixlen']}"
            )
    return found


def index_of(ipr: IPRoute, name: str) -> int | None:
    with netlink_errors(f"look up link {name}"):
        found = ipr.link_lookup(ifname=name)
    return int(found[0]) if found else None


def default_mtu(ipr: IPRoute) -> int:
    """The MTU of the link that carries the default route (the host's uplink)."""
    with netlink_errors("read the default route"):
        for route in ipr.get_default_routes(family=2):
            oif = route.get_attr("RTA_OIF")
            if oif:
                msgs = ipr.get_links(oif)
                if msgs:
                    return int(msgs[0].get_attr("IFLA_MTU") or DEFAULT_MTU)
    return DEFAULT_MTU


def delete(ipr: IPRoute, name: str) -> None:
    """Delete a link by name; a missing one is fine."""
    index = index_of(ipr, name)
    if index is None:
        return
    try:
        with netlink_errors(f"delete link {name}"):
            ipr.link("del", index=index)
    except errors.NotFound:
        pass
    except errors.RuntimeError_ as exc:
        if _code(exc) != errno.ENODEV:
            raise


def _set(ipr: IPRoute, name: str, index: int, **changes: Any) -> None:
    with netlink_errors(f"configure link {name}"):
        ipr.link("set", index=index, **changes)


def ensure_bridge(
    ipr: IPRoute, name: str, alias: str, mtu: int, address: str | None, prefixlen: int
) -> int:
    """A bridge called ``name``, up, with ``alias``, ``mtu`` and the gateway address."""
    index = index_of(ipr, name)
    if index is None:
        try:
            with netlink_errors(f"create bridge {name}"):
                ipr.link("add", ifname=name, kind="bridge", mtu=mtu)
        except errors.AlreadyExists:
            pass
        index = index_of(ipr, name)
        if index is None:
            raise errors.Transient(f"bridge {name} vanished right after it was created; retry")
    _set(ipr, name, index, ifalias=alias, mtu=mtu, state="up")
    if address:
        ensure_address(ipr, name, index, address, prefixlen)
    return index


def ensure_address(ipr: IPRoute, name: str, index: int, address: str, prefixlen: int) -> None:
    try:
        with netlink_errors(f"add address {address}/{prefixlen} to {name}"):
            ipr.addr("add", index=index, address=address, prefixlen=prefixlen)
    except errors.AlreadyExists:
        pass


def ensure_vxlan(
    ipr: IPRoute,
    name: str,
    alias: str,
    vni: int,
    mtu: int,
    master: int,
    peers: Iterable[str],
) -> int:
    """A VXLAN link enslaved to ``master`` that floods to every peer (head-end
    replication: one all-zero FDB entry per peer), learning remote MACs."""
    index = index_of(ipr, name)
    if index is None:
        try:
            with netlink_errors(f"create VXLAN {name} (id {vni})"):
                ipr.link(
                    "add",
                    ifname=name,
                    kind="vxlan",
                    vxlan_id=vni,
                    vxlan_port=VXLAN_PORT,
                    vxlan_learning=1,
                    mtu=mtu,
                )
        except errors.AlreadyExists:
            pass
        index = index_of(ipr, name)
        if index is None:
            raise errors.Transient(f"VXLAN {name} vanished right after it was created; retry")
    _set(ipr, name, index, ifalias=alias, mtu=mtu, master=master, state="up")
    present = flood_peers(ipr, index)
    for peer in peers:
        if peer in present:
            continue
        try:
            with netlink_errors(f"add VXLAN peer {peer} to {name}"):
                ipr.fdb("append", ifindex=index, lladdr="00:00:00:00:00:00", dst=peer)
        except errors.AlreadyExists:
            pass
    return index


def flood_peers(ipr: IPRoute, index: int) -> set[str]:
    """The peers a VXLAN link floods to (its all-zero FDB entries)."""
    found = set()
    with netlink_errors("list VXLAN peers"):
        for entry in ipr.fdb("dump", ifindex=index):
            if entry.get_attr("NDA_LLADDR") == "00:00:00:00:00:00":
                dst = entry.get_attr("NDA_DST")
                if dst:
                    found.add(str(dst))
    return found


@dataclasses.dataclass(frozen=True)
class Inside:
    """How an interface inside a container's namespace is configured."""

    ifname: str  # eth0, eth1…
    address: str | None
    prefixlen: int
    gateway: str | None  # the default route's next hop, when this link carries it
    mtu: int


def add_veth(
    ipr: IPRoute,
    host_name: str,
    alias: str,
    master: int | None,
    namespace: str,
    inside: Inside,
) -> None:
    """A veth pair: ``host_name`` here (enslaved to ``master``), ``inside.ifname`` in
    the namespace at ``namespace``, created there directly (no temporary name)."""
    delete(ipr, host_name)  # a leftover of a crash: its peer is gone or stale
    peer: dict[str, Any] = {"ifname": inside.ifname, "mtu": inside.mtu}
    if inside.address:
        peer["address"] = mac_for(inside.address)
    fd = os.open(namespace, os.O_RDONLY | os.O_CLOEXEC)
    try:
        peer["net_ns_fd"] = fd
        with netlink_errors(f"create veth pair {host_name}/{inside.ifname}"):
            ipr.link("add", ifname=host_name, kind="veth", mtu=inside.mtu, peer=peer)
    finally:
        os.close(fd)
    index = index_of(ipr, host_name)
    if index is None:
        raise errors.Transient(f"veth {host_name} vanished right after it was created; retry")
    changes: dict[str, Any] = {"ifalias": alias, "state": "up"}
    if master is not None:
        changes["master"] = master
    _set(ipr, host_name, index, **changes)


def add_macvlan(ipr: IPRoute, parent: str, namespace: str, inside: Inside) -> None:
    """A macvlan (mode bridge) on ``parent``, created inside the namespace."""
    parent_index = index_of(ipr, parent)
    if parent_index is None:
        raise errors.NotFound(f"macvlan parent interface {parent} does not exist on this host")
    fd = os.open(namespace, os.O_RDONLY | os.O_CLOEXEC)
    try:
        spec: dict[str, Any] = {
            "ifname": inside.ifname,
            "kind": "macvlan",
            "link": parent_index,
            "macvlan_mode": "bridge",
            "mtu": inside.mtu,
            "net_ns_fd": fd,
        }
        if inside.address:
            spec["address"] = mac_for(inside.address)
        with netlink_errors(f"create macvlan {inside.ifname} on {parent}"):
            ipr.link("add", **spec)
    finally:
        os.close(fd)


def configure_inside(namespace: str, inside: Inside, default_route: bool) -> None:
    """Raise ``lo`` and the interface, add its address and (optionally) the default route."""
    with netns.iproute(namespace) as ipr:
        lo = index_of(ipr, "lo")
        if lo is not None:
            _set(ipr, "lo", lo, state="up")
        index = index_of(ipr, inside.ifname)
        if index is None:
            raise errors.NotFound(f"{inside.ifname} is missing in network namespace {namespace}")
        _set(ipr, inside.ifname, index, state="up")
        if inside.address:
            ensure_address(ipr, inside.ifname, index, inside.address, inside.prefixlen)
        if default_route and inside.gateway:
            try:
                with netlink_errors(f"add default route via {inside.gateway} in {namespace}"):
                    ipr.route("add", dst="0.0.0.0/0", gateway=inside.gateway, oif=index)
            except errors.AlreadyExists:
                pass


def delete_inside(namespace: str, ifname: str) -> None:
    """Delete ``ifname`` in the namespace (idempotent; a missing namespace is fine)."""
    if not netns.is_namespace(namespace):
        return
    with netns.iproute(namespace) as ipr:
        delete(ipr, ifname)


def names_inside(namespace: str) -> set[str]:
    with netns.iproute(namespace) as ipr:
        return set(links(ipr))
