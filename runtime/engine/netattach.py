"""A container's side of its networks: attach, detach, connect, disconnect,
repair and drift, for ``runtime.engine.networks.Networks``.

Every function here runs with the engine's network lock held (the caller's)
and leaves the nftables table and /etc/hosts files to the caller, which
rewrites them once after the change.

Attach is all or nothing: if any step fails, what was made is undone (links,
addresses, the namespace, the record) before the error goes up, with any
failure of the undo added as a note.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from runtime import client, errors
from runtime.engine import metadata, netviews
from runtime.net import endpoints, health, ipam, links, names, netns, nft, plumbing, ports

if TYPE_CHECKING:
    from pyroute2 import IPRoute

    from runtime.engine.networks import Networks


def _alive(nets: Networks) -> set[str]:
    return {row.id for row in nets.store.list_containers()}


def _allocate(
    nets: Networks, row: metadata.NetworkRow, owner: str, requested: str | None, alive: set[str]
) -> str:
    directory = nets.ipam_dir(row.id)
    pool = ipam.load(directory)
    if pool is None:  # a network made before its IPAM file, or a lost file: start again
        assert row.subnet is not None
        pool = ipam.new_pool(row.subnet, row.ip_range, row.gateway)
    address = ipam.allocate(pool, owner, requested, alive.__contains__)
    ipam.save(directory, pool)
    return address


def _release(nets: Networks, network_id: str, owner: str) -> None:
    directory = nets.ipam_dir(network_id)
    pool = ipam.load(directory)
    if pool is not None and ipam.release(pool, owner):
        ipam.save(directory, pool)


def _endpoint(
    nets: Networks,
    container_id: str,
    attachment: client.NetworkAttachmentConfig,
    row: metadata.NetworkRow,
    interface: str,
    default_route: bool,
    address: str,
) -> endpoints.Endpoint:
    spec = nets.spec(row)
    return endpoints.Endpoint(
        network_id=row.id,
        network=row.name,
        driver=row.driver,
        interface=interface,
        host_link=None
        if row.driver == "macvlan"
        else names.veth_name(nets.tag, row.id, container_id),
        address=address,
        prefixlen=spec.prefixlen,
        gateway=row.gateway if spec.routes_out else None,
        default_route=default_route,
        aliases=tuple(attachment.aliases),
    )


def _bindings(
    nets: Networks,
    record: endpoints.Record,
    config: client.ContainerConfig,
    previous: Sequence[endpoints.Binding] = (),
) -> tuple[endpoints.Binding, ...]:
    gateway = next((e for e in record.endpoints if e.default_route and e.driver == "bridge"), None)
    taken = [
        (other.name, b)
        for other in endpoints.load_all(nets.layout.root)
        if other.container_id != record.container_id
        for b in other.ports
    ]
    return ports.choose(config.name, config.ports, gateway, taken, previous)


def attach(
    nets: Networks,
    container_id: str,
    config: client.ContainerConfig,
    wanted: Sequence[tuple[client.NetworkAttachmentConfig, metadata.NetworkRow]],
) -> endpoints.Record:
    path = nets.netns_path(container_id)
    record = endpoints.Record(
        container_id=container_id,
        name=config.name,
        hostname=config.hostname or container_id[:12],
        namespace=path,
        attached_at=time.time(),
    )
    alive = _alive(nets)
    netns.create(path)
    made: list[endpoints.Endpoint] = []
    try:
        with netns.iproute() as ipr:
            routed = False
            for i, (attachment, row) in enumerate(wanted):
                spec = nets.spec(row)
                plumbing.ensure_network(ipr, spec)
                address = _allocate(nets, row, container_id, attachment.ipv4_address, alive)
                endpoint = _endpoint(
                    nets,
                    container_id,
                    attachment,
                    row,
                    f"eth{i}",
                    spec.routes_out and not routed,
                    address,
                )
                made.append(endpoint)
                routed = routed or endpoint.default_route
                plumbing.plumb(ipr, spec, endpoint, path, container_id)
        record = dataclasses.replace(record, endpoints=tuple(made))
        record = dataclasses.replace(record, ports=_bindings(nets, record, config))
        endpoints.save(nets.layout.root, record)
    except BaseException as exc:
        _undo(nets, container_id, path, made, exc)
        raise
    return record


def _undo(
    nets: Networks,
    container_id: str,
    path: str,
    made: Sequence[endpoints.Endpoint],
    exc: BaseException,
) -> None:
    try:
        with netns.iproute() as ipr:
            for endpoint in made:
                plumbing.unplumb(ipr, endpoint, path)
        for endpoint in made:
            _release(nets, endpoint.network_id, container_id)
        netns.remove(path)
        endpoints.remove(nets.layout.root, container_id)
    except errors.RuntimeError_ as cleanup:
        exc.add_note(f"undoing the network attachment failed too: {cleanup}")


def detach(nets: Networks, container_id: str) -> bool:
    """Remove the container's interfaces, addresses, namespace and record; False
    when there was nothing to remove."""
    record = endpoints.load(nets.layout.root, container_id)
    path = record.namespace if record is not None else nets.netns_path(container_id)
    if record is None:
        if os.path.lexists(path):
            netns.remove(path)
        return False
    with netns.iproute() as ipr:
        for endpoint in record.endpoints:
            plumbing.unplumb(ipr, endpoint, path)
    netns.remove(path)
    for endpoint in record.endpoints:
        _release(nets, endpoint.network_id, container_id)
    endpoints.remove(nets.layout.root, container_id)
    return True


def connect(
    nets: Networks,
    record: endpoints.Record,
    config: client.ContainerConfig,
    attachment: client.NetworkAttachmentConfig,
    row: metadata.NetworkRow,
) -> None:
    """Give a running container an interface on one more network."""
    spec = nets.spec(row)
    used = {e.interface for e in record.endpoints}
    interface = next(f"eth{i}" for i in range(len(used) + 1) if f"eth{i}" not in used)
    routed = any(e.default_route for e in record.endpoints)
    address = _allocate(nets, row, record.container_id, attachment.ipv4_address, _alive(nets))
    endpoint = _endpoint(
        nets,
        record.container_id,
        attachment,
        row,
        interface,
        spec.routes_out and not routed,
        address,
    )
    try:
        with netns.iproute() as ipr:
            plumbing.ensure_network(ipr, spec)
            plumbing.plumb(ipr, spec, endpoint, record.namespace, record.container_id)
    except BaseException as exc:
        try:
            with netns.iproute() as ipr:
                plumbing.unplumb(ipr, endpoint, record.namespace)
            _release(nets, row.id, record.container_id)
        except errors.RuntimeError_ as cleanup:
            exc.add_note(f"undoing the connection failed too: {cleanup}")
        raise
    record = dataclasses.replace(record, endpoints=(*record.endpoints, endpoint))
    wanted = dataclasses.replace(config, networks=(*config.networks, attachment))
    record = dataclasses.replace(record, ports=_bindings(nets, record, wanted, record.ports))
    endpoints.save(nets.layout.root, record)


def disconnect(
    nets: Networks,
    record: endpoints.Record,
    config: client.ContainerConfig,
    row: metadata.NetworkRow,
) -> bool:
    """Take a running container's interface on ``row`` away; False if it had none."""
    gone = [e for e in record.endpoints if e.network_id == row.id]
    if not gone:
        return False
    with netns.iproute() as ipr:
        for endpoint in gone:
            plumbing.unplumb(ipr, endpoint, record.namespace)
    _release(nets, row.id, record.container_id)
    rest = [e for e in record.endpoints if e.network_id != row.id]
    if any(e.default_route for e in gone):
        for i, e in enumerate(rest):
            if e.gateway:
                rest[i] = dataclasses.replace(e, default_route=True)
                plumbing.add_default_route(record.namespace, rest[i])
                break
    record = dataclasses.replace(record, endpoints=tuple(rest))
    remaining = dataclasses.replace(
        config, networks=tuple(a for a in config.networks if a.network != row.name)
    )
    record = dataclasses.replace(record, ports=_bindings(nets, record, remaining, record.ports))
    endpoints.save(nets.layout.root, record)
    return True


def repair(nets: Networks, row: metadata.NetworkRow) -> None:
    """The network's links and addresses, and the veths of the containers on it."""
    spec = nets.spec(row)
    with netns.iproute() as ipr:
        plumbing.ensure_network(ipr, spec)
        present = links.links(ipr)
        bridge = present.get(spec.bridge)
        for record in endpoints.load_all(nets.layout.root):
            if not netns.is_namespace(record.namespace):
                continue  # the container's task is gone; its next start attaches again
            for endpoint in record.endpoints:
                if endpoint.network_id != row.id:
                    continue
                _repair_endpoint(ipr, nets, spec, record, endpoint, present, bridge)


def _repair_endpoint(
    ipr: IPRoute,
    nets: Networks,
    spec: plumbing.NetSpec,
    record: endpoints.Record,
    endpoint: endpoints.Endpoint,
    present: dict[str, links.Link],
    bridge: links.Link | None,
) -> None:
    if endpoint.host_link is None:  # macvlan: look inside
        if endpoint.interface in links.names_inside(record.namespace):
            return
    else:
        veth = present.get(endpoint.host_link)
        if veth is not None and bridge is not None:
            if veth.master != bridge.index or not veth.up:
                with links.netlink_errors(f"put {veth.name} back on {spec.bridge}"):
                    ipr.link("set", index=veth.index, master=bridge.index, state="up")
            return
    plumbing.plumb(ipr, spec, endpoint, record.namespace, record.container_id)


def problems(
    nets: Networks, rows: Sequence[metadata.NetworkRow], attached: Sequence[endpoints.Record]
) -> dict[str, list[str]]:
    """Network id → what is missing on the host for it (see ``runtime.net.health``)."""
    specs = [nets.spec(r) for r in nets.store.list_networks()]
    segments, forwards = netviews.rule_inputs(specs, attached)
    live = [r for r in attached if netns.is_namespace(r.namespace)]
    with netns.iproute() as ipr:
        present = links.links(ipr)
        flood = {}
        for row in rows:
            spec = nets.spec(row)
            if spec.driver == "overlay" and spec.vxlan in present:
                flood[spec.vxlan] = links.flood_peers(ipr, present[spec.vxlan].index)
        view = health.HostView(
            links=present,
            addresses=links.addresses(ipr),
            table=nft.observe(nets.table) if segments else {},
            flood=flood,
        )
    return {
        row.id: health.problems(nets.spec(row), view, live, segments, forwards, nets.table)
        for row in rows
        if row.driver in plumbing.DRIVERS
    }
