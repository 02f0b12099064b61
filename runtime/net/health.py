"""Drift of a network's host side: what should be there and is not.

Read from the host on every call (one link dump, one address dump, one
``nft -j list``), compared with what the network rows and endpoint records
say must exist. Each problem is a sentence for ``diff``; the reconciler turns
a network with problems into an update, and the engine's update repairs (see
``runtime.engine.networks``). Only the host side is inspected, which is cheap:
a container's own end of a veth dies with the host end, so a missing host end
covers both.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from collections.abc import Iterable, Mapping

from runtime.net import endpoints, links, nft, plumbing


@dataclasses.dataclass(frozen=True)
class HostView:
    """One reading of the host."""

    links: Mapping[str, links.Link]
    addresses: Mapping[int, set[str]]
    table: Mapping[str, set[str]] | None  # chain → rule comments; None: no table
    flood: Mapping[str, set[str]]  # VXLAN link name → peers it floods to


def problems(
    net: plumbing.NetSpec,
    view: HostView,
    records: Iterable[endpoints.Record],
    segments: Iterable[nft.Segment],
    forwards: Iterable[nft.Forward],
    table: str,
) -> list[str]:
    """What is missing for ``net``. ``segments``/``forwards``: the whole table's, so
    the rules this network shares with others are checked too."""
    found: list[str] = []
    if net.driver == "macvlan":
        if net.parent not in view.links:
            found.append(f"parent interface {net.parent} is missing")
        return found
    if not net.has_bridge:
        return found
    bridge = view.links.get(net.bridge)
    if bridge is None:
        found.append(f"bridge {net.bridge} is missing")
    else:
        if not bridge.up:
            found.append(f"bridge {net.bridge} is down")
        if net.driver == "bridge" and net.gateway:
            want = f"{net.gateway}/{net.prefixlen}"
            if want not in view.addresses.get(bridge.index, set()):
                found.append(f"bridge {net.bridge} lost its address {want}")
    if net.driver == "overlay":
        vxlan = view.links.get(net.vxlan)
        if vxlan is None:
            found.append(f"VXLAN link {net.vxlan} is missing")
        else:
            if bridge is not None and vxlan.master != bridge.index:
                found.append(f"VXLAN link {net.vxlan} is not on bridge {net.bridge}")
            missing = sorted(set(net.peers) - set(view.flood.get(net.vxlan, set())))
            if missing:
                found.append(f"VXLAN link {net.vxlan} no longer floods to {', '.join(missing)}")
    for record in records:
        for e in record.endpoints:
            if e.network_id != net.id or not e.host_link:
                continue
            veth = view.links.get(e.host_link)
            if veth is None:
                found.append(f"veth {e.host_link} of container {record.name} is missing")
            elif bridge is not None and veth.master != bridge.index:
                found.append(f"veth {e.host_link} of container {record.name} is off the bridge")
            elif not veth.up:
                found.append(f"veth {e.host_link} of container {record.name} is down")
    mine = [s for s in segments if s.network_id == net.id]
    want_rules = nft.expected(mine, [f for f in forwards if _on(f, mine)])
    found.extend(nft.differences(want_rules, view.table, table))
    return found


def _on(forward: nft.Forward, segments: list[nft.Segment]) -> bool:
    address = ipaddress.IPv4Address(forward.address)
    return any(address in ipaddress.IPv4Network(s.subnet) for s in segments)
