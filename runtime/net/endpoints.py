"""What a container has on its networks while it is attached: one JSON record.

``<root>/networks/containers/<container id>.json``::

    {"version": 1, "container_id": …, "name": "demo_web", "hostname": "web",
     "namespace": "<run root>/netns/<id>",
     "endpoints": [{"network_id", "network", "driver", "interface": "eth0",
                    "host_link": "prv…" | null, "address": "10.89.0.2", "prefixlen": 24,
                    "gateway": "10.89.0.1" | null, "default_route": true,
                    "aliases": ["www"]}],
     "ports": [{"container_port": 80, "protocol": "tcp", "host_ip": "0.0.0.0",
                "host_port": 49153, "address": "10.89.0.2", "network_id": …}]}

The record exists from ``attach`` until ``detach``: exactly while the container
has a network namespace of ours. Everything derived from the attachments (the
nftables table, peers' /etc/hosts, ``ps``'s ports, drift checks) is computed
from these records and the network rows, never remembered elsewhere. It is in
the persistent root so that published ports chosen at random are still known
after a restart of pyreconcile; after a reboot the namespaces are gone and the
next start of the container replaces the record.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os

from runtime import errors
from runtime.net import ipam

VERSION = 1


@dataclasses.dataclass(frozen=True)
class Endpoint:
    network_id: str
    network: str
    driver: str
    interface: str
    host_link: str | None  # the veth's host end (bridge and overlay); None for macvlan
    address: str | None
    prefixlen: int
    gateway: str | None
    default_route: bool
    aliases: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class Binding:
    """A published port as bound: ``host_port`` is chosen when none was asked for."""

    container_port: int
    protocol: str
    host_ip: str  # "0.0.0.0" for every address of the host
    host_port: int
    address: str  # the container's address it is forwarded to
    network_id: str


PENDING_SUFFIX = ".next"


@dataclasses.dataclass(frozen=True)
class Record:
    container_id: str
    name: str
    hostname: str
    namespace: str
    endpoints: tuple[Endpoint, ...] = ()
    ports: tuple[Binding, ...] = ()
    attached_at: float = 0.0  # when it joined: peers list the newest first for a shared name

    def names_on(self, endpoint: Endpoint) -> list[str]:
        """The names peers on ``endpoint``'s network know this container by.

        A container on trial (``<name>.next``: a start-first update not yet
        promoted) is known only by that name and its id, so no traffic for the
        service reaches it before it has passed its health gate.
        """
        found: list[str] = []
        if self.name.endswith(PENDING_SUFFIX):
            candidates: tuple[str, ...] = (self.name, self.container_id[:12])
        else:
            candidates = (self.hostname, self.name, *endpoint.aliases, self.container_id[:12])
        for name in candidates:
            if name and name not in found:
                found.append(name)
        return found


def directory(root: str) -> str:
    return os.path.join(root, "networks", "containers")


def path(root: str, container_id: str) -> str:
    return os.path.join(directory(root), f"{container_id}.json")


def load(root: str, container_id: str) -> Record | None:
    try:
        with open(path(root, container_id)) as f:
            raw = json.load(f)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise errors.Terminal(f"cannot read {path(root, container_id)}: {exc}") from None
    return _record(raw)


def load_all(root: str) -> list[Record]:
    found = []
    try:
        names = sorted(os.listdir(directory(root)))
    except FileNotFoundError:
        return []
    for name in names:
        if name.endswith(".json") and not name.startswith("."):
            record = load(root, name[: -len(".json")])
            if record is not None:
                found.append(record)
    return found


def save(root: str, record: Record) -> None:
    data = {"version": VERSION, **dataclasses.asdict(record)}
    ipam.write_atomic(path(root, record.container_id), json.dumps(data, indent=1))


def remove(root: str, container_id: str) -> None:
    with contextlib.suppress(FileNotFoundError), errors.map_os_errors("remove endpoint record"):
        os.unlink(path(root, container_id))


def _record(raw: dict[str, object]) -> Record:
    def items(key: str) -> list[dict[str, object]]:
        value = raw.get(key) or []
        return [dict(v) for v in value] if isinstance(value, list) else []

    endpoints = tuple(
        Endpoint(**{**e, "aliases": tuple(e.get("aliases") or ())})  # type: ignore[arg-type]
        for e in items("endpoints")
    )
    ports = tuple(Binding(**p) for p in items("ports"))  # type: ignore[arg-type]
    return Record(
        container_id=str(raw["container_id"]),
        name=str(raw.get("name", "")),
        hostname=str(raw.get("hostname", "")),
        namespace=str(raw["namespace"]),
        endpoints=endpoints,
        ports=ports,
        attached_at=float(raw.get("attached_at") or 0.0),  # type: ignore[arg-type]
    )
