"""Network records as the client sees them, and the checks of a network request.

Pure helpers of ``runtime.engine.networks`` (no state of their own): the
conversion of rows and endpoint records into ``client.NetworkInfo`` and
``client.PortBinding``, what the nftables table is rendered from, the choice of
a new network's subnet and gateway, and the validation of names and addresses.
"""

from __future__ import annotations

import contextlib
import ipaddress
import re
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from runtime import client, errors
from runtime.engine import metadata, records
from runtime.net import endpoints, netns, nft, plumbing, subnets

if TYPE_CHECKING:
    from pyroute2 import IPRoute

_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$")


def info(
    row: metadata.NetworkRow,
    attached: Sequence[endpoints.Record] = (),
    problems: Sequence[str] = (),
) -> client.NetworkInfo:
    found = []
    for record in attached:
        for e in record.endpoints:
            if e.network_id == row.id:
                found.append(
                    client.EndpointInfo(
                        container=record.name,
                        container_id=record.container_id,
                        interface=e.interface,
                        ipv4_address=e.address,
                        prefixlen=e.prefixlen,
                        aliases=e.aliases,
                    )
                )
    return client.NetworkInfo(
        id=row.id,
        name=row.name,
        driver=row.driver,
        subnet=row.subnet,
        gateway=row.gateway,
        ip_range=row.ip_range,
        internal=row.internal,
        options=row.options,
        labels=row.labels,
        annotations=row.annotations,
        created_at=row.created_at,
        endpoints=tuple(sorted(found, key=lambda e: e.container)),
        problems=tuple(problems),
    )


def published_ports(attached: Sequence[endpoints.Record]) -> list[client.PortBinding]:
    """The ports published by the containers attached now."""
    found = []
    for record in attached:
        if not netns.is_namespace(record.namespace):
            continue
        for b in record.ports:
            found.append(
                client.PortBinding(
                    container=record.name,
                    container_id=record.container_id,
                    container_port=b.container_port,
                    protocol="udp" if b.protocol == "udp" else "tcp",
                    host_ip=b.host_ip,
                    host_port=b.host_port,
                )
            )
    return sorted(found, key=lambda b: (b.container, b.host_port, b.protocol))


def rule_inputs(
    specs: Sequence[plumbing.NetSpec], attached: Sequence[endpoints.Record]
) -> tuple[list[nft.Segment], list[nft.Forward]]:
    """What the nftables table is rendered from: the networks with a bridge, and the
    published ports of the containers whose namespace is alive."""
    segments = []
    for spec in specs:
        if not spec.has_bridge or not spec.subnet:
            continue
        segments.append(
            nft.Segment(
                network_id=spec.id,
                bridge=spec.bridge,
                subnet=spec.subnet,
                internal=spec.internal or spec.driver == "overlay",
                outbound=spec.routes_out,
            )
        )
    forwards = [
        nft.Forward(
            container_id=r.container_id,
            protocol=b.protocol,
            host_ip=b.host_ip,
            host_port=b.host_port,
            address=b.address,
            container_port=b.container_port,
        )
        for r in attached
        if netns.is_namespace(r.namespace)  # stale after a reboot: not forwarded
        for b in r.ports
    ]
    return segments, forwards


def addressing(
    ipr: IPRoute, store: metadata.MetadataStore, config: client.NetworkConfig
) -> tuple[str, str | None]:
    """The subnet and gateway of a new network, checked against the host."""
    taken = [(r.name, r.subnet) for r in store.list_networks() if r.subnet]
    routes = subnets.host_routes(ipr) if config.driver != "macvlan" else []
    if config.subnet:
        subnets.check_free(config.name, config.subnet, routes, taken)
        subnet = config.subnet
    else:
        subnet = subnets.choose(routes, taken)
    gateway = config.gateway
    if gateway is None and config.driver in ("bridge", "macvlan"):
        gateway = subnets.default_gateway(subnet)
    return subnet, gateway


@contextlib.contextmanager
def plumbing_lock(driver: str) -> Iterator[None]:
    """The host-wide subnet lock while a bridge network is made (see ``subnets``)."""
    from runtime.net import subnets

    if driver == "macvlan":
        yield
        return
    with subnets.host_lock():
        yield


def check_name(name: str) -> None:
    if not _NAME.match(name):
        raise errors.InvalidSpec(
            f"invalid network name {name!r}: use letters, digits, '_', '.', '-' "
            "(at most 128), starting with a letter or digit"
        )


def check_addresses(config: client.NetworkConfig) -> None:
    if not config.subnet:
        if config.gateway or config.ip_range:
            raise errors.InvalidSpec(f"network {config.name}: gateway and ipRange need a subnet")
        return
    try:
        net = ipaddress.IPv4Network(config.subnet, strict=True)
    except ValueError as exc:
        raise errors.InvalidSpec(
            f"network {config.name}: subnet {config.subnet!r} is not an IPv4 network: {exc}"
        ) from None
    if net.prefixlen > 30:
        raise errors.InvalidSpec(
            f"network {config.name}: subnet {config.subnet} is too small (at most /30)"
        )
    if config.gateway:
        try:
            gateway = ipaddress.IPv4Address(config.gateway)
        except ValueError:
            raise errors.InvalidSpec(
                f"network {config.name}: gateway {config.gateway!r} is not an IPv4 address"
            ) from None
        if gateway not in net:
            raise errors.InvalidSpec(
                f"network {config.name}: gateway {config.gateway} is outside {config.subnet}"
            )
    if config.ip_range:
        try:
            span = ipaddress.IPv4Network(config.ip_range, strict=True)
        except ValueError as exc:
            raise errors.InvalidSpec(
                f"network {config.name}: ipRange {config.ip_range!r} is not a network: {exc}"
            ) from None
        if not span.subnet_of(net):
            raise errors.InvalidSpec(
                f"network {config.name}: ipRange {config.ip_range} is outside {config.subnet}"
            )


def users(store: metadata.MetadataStore, name: str) -> list[str]:
    return [
        row.name
        for row in store.list_containers()
        if any(a.network == name for a in records.config_from_json(row.config_json).networks)
    ]
