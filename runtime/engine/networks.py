"""Networks: records in the metadata store, and what they need on the host.

Drivers (DESIGN.md §6; the host side is ``runtime.net.plumbing``):

- ``host``: the container shares the host's network namespace.
- ``none``: a private namespace with loopback only. A container with no
  networks at all gets the same (unlike Docker, whose default is its bridge).
- ``bridge``, ``macvlan``, ``overlay``: the container gets a namespace of ours,
  made in ``attach`` before it starts and bound at ``<run root>/netns/<id>``,
  with one interface per network (``eth0``…), an address from the network's
  IPAM, a default route through its first network that has a way out, its
  published ports and its peers' names in /etc/hosts. ``detach`` undoes it
  once the container's task is gone. Restarts by the shim keep all of it.

State: the rows (SQLite) say which networks exist; ``<root>/networks/<id>/
ipam.json`` which addresses are handed out; ``<root>/networks/containers/
<id>.json`` what each attached container has (``runtime.net.endpoints``). The
nftables table and the /etc/hosts files are derived from those and rewritten
whole after every change. Every change holds the engine's network lock
(``<root>/networks/lock``, flock), so threads and processes of one engine
take turns; choosing a subnet also holds a host-wide lock.

Drift: ``list`` reports, per network, what is missing on the host
(``NetworkInfo.problems``); ``update`` repairs it (bridge, VXLAN, addresses,
the containers' veths, the nftables table, /etc/hosts), so the reconciler's
network update doubles as the repair.
"""

from __future__ import annotations

import builtins
import contextlib
import dataclasses
import fcntl
import os
import secrets
import shutil
import time
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from runtime import client, errors
from runtime.engine import layout, metadata, netviews, records
from runtime.net import endpoints, hostsfile, ipam, names, netns, nft, plumbing

if TYPE_CHECKING:
    from pyroute2 import IPRoute

BUILTIN = ("host", "none")
SUPPORTED_NETWORK_DRIVERS = ("host", "none", *plumbing.DRIVERS)


@dataclasses.dataclass(frozen=True)
class Attachment:
    """How a container joins its networks: ``namespace`` is "host", a path to a
    network namespace to join, or None for a new private one; ``hosts`` are
    /etc/hosts lines (address, names)."""

    namespace: str | None
    hosts: tuple[tuple[str, str], ...] = ()


class Networks:
    def __init__(self, paths: layout.Layout, store: metadata.MetadataStore) -> None:
        self._layout = paths
        self._store = store
        self.tag = names.engine_tag(paths.cgroup_parent, paths.root)
        self.table = self.tag
        self._dir = os.path.join(paths.root, "networks")

    # -- paths, lock, conversions ------------------------------------------------

    def netns_path(self, container_id: str) -> str:
        return os.path.join(self._layout.run_root, "netns", container_id)

    def _ipam_dir(self, network_id: str) -> str:
        return os.path.join(self._dir, network_id)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        with errors.map_os_errors(f"lock {self._dir}"):
            os.makedirs(self._dir, mode=0o700, exist_ok=True)
            fd = os.open(os.path.join(self._dir, "lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _spec(self, row: metadata.NetworkRow) -> plumbing.NetSpec:
        return plumbing.NetSpec(
            id=row.id,
            name=row.name,
            driver=row.driver,
            subnet=row.subnet,
            gateway=row.gateway,
            internal=row.internal,
            options=dict(row.options),
            tag=self.tag,
        )

    # -- records ----------------------------------------------------------------

    def list(self) -> list[client.NetworkInfo]:
        rows = self._store.list_networks()
        attached = endpoints.load_all(self._layout.root)
        found = self._problems(rows, attached) if self._hosted(rows) else {}
        return [netviews.info(r, attached, found.get(r.id, ())) for r in rows]

    def get(self, name: str) -> client.NetworkInfo:
        row = self._store.get_network_by_name(name)
        attached = endpoints.load_all(self._layout.root)
        found = self._problems([row], attached) if self._hosted([row]) else {}
        return netviews.info(row, attached, found.get(row.id, ()))

    @staticmethod
    def _hosted(rows: Sequence[metadata.NetworkRow]) -> bool:
        return any(r.driver in plumbing.DRIVERS for r in rows)

    def create(self, config: client.NetworkConfig) -> client.NetworkInfo:
        netviews.check_name(config.name)
        if config.name in BUILTIN:
            raise errors.InvalidSpec(f"network name {config.name!r} is reserved")
        if config.driver not in SUPPORTED_NETWORK_DRIVERS:
            raise errors.InvalidSpec(
                f"network {config.name}: unknown driver {config.driver!r}; "
                f"use one of {', '.join(SUPPORTED_NETWORK_DRIVERS)}"
            )
        options = dict(config.options)
        if config.driver in BUILTIN:
            if config.subnet or config.gateway or config.ip_range or options:
                raise errors.InvalidSpec(
                    f"network {config.name}: a {config.driver} network takes no subnet, "
                    "gateway, ipRange or options"
                )
            return self._insert(config, config.subnet, config.gateway)
        plumbing.check_options(config.name, config.driver, options, config.subnet)
        netviews.check_addresses(config)
        with self._locked(), netns.iproute() as ipr:
            try:
                self._store.get_network_by_name(config.name)
            except errors.NotFound:
                pass
            else:
                raise errors.AlreadyExists(f"network {config.name!r} already exists")
            with netviews.plumbing_lock(config.driver):
                subnet, gateway = netviews.addressing(ipr, self._store, config)
                info = self._insert(config, subnet, gateway)
                row = self._store.get_network_by_name(config.name)
                try:
                    pool = ipam.new_pool(subnet, config.ip_range, gateway)
                    ipam.save(self._ipam_dir(row.id), pool)
                    plumbing.ensure_network(ipr, self._spec(row))
                    self._apply_rules()
                except BaseException as exc:
                    self._undo_create(ipr, row, exc)
                    raise
        return info

    def _insert(
        self, config: client.NetworkConfig, subnet: str | None, gateway: str | None
    ) -> client.NetworkInfo:
        row = metadata.NetworkRow(
            id=secrets.token_hex(32),
            name=config.name,
            driver=config.driver,
            subnet=subnet,
            gateway=gateway,
            ip_range=config.ip_range,
            internal=config.internal,
            options=config.options,
            labels=config.labels,
            annotations=config.annotations,
            created_at=time.time(),
        )
        try:
            self._store.insert_network(row)
        except errors.AlreadyExists:
            raise errors.AlreadyExists(f"network {config.name!r} already exists") from None
        return netviews.info(row)

    def _undo_create(self, ipr: IPRoute, row: metadata.NetworkRow, exc: BaseException) -> None:
        try:
            self._store.delete_network(row.id)
            plumbing.remove_network(ipr, self._spec(row))
            shutil.rmtree(self._ipam_dir(row.id), ignore_errors=True)
            self._apply_rules()
        except errors.RuntimeError_ as cleanup:
            exc.add_note(f"undoing the creation of network {row.name} failed too: {cleanup}")

    def update(
        self, name: str, labels: metadata.Pairs, annotations: metadata.Pairs
    ) -> client.NetworkInfo:
        """New labels and annotations, and a repair of the host side (idempotent)."""
        row = self._store.get_network_by_name(name)
        row = self._store.update_network(row.id, labels=labels, annotations=annotations)
        if row.driver in plumbing.DRIVERS:
            self.repair(row)
        return self.get(name)

    def remove(self, name: str) -> None:
        row = self._store.get_network_by_name(name)
        users = netviews.users(self._store, name)
        if users:
            raise errors.FailedPrecondition(
                f"network {name!r} is in use by container {', '.join(users)}: remove it first"
            )
        if row.driver not in plumbing.DRIVERS:
            self._store.delete_network(row.id)
            return
        with self._locked():
            attached = [
                r.name
                for r in endpoints.load_all(self._layout.root)
                if any(e.network_id == row.id for e in r.endpoints)
            ]
            if attached:
                raise errors.FailedPrecondition(
                    f"network {name!r} has containers attached ({', '.join(attached)}): "
                    "stop or disconnect them first"
                )
            with netns.iproute() as ipr:
                plumbing.remove_network(ipr, self._spec(row))
            self._store.delete_network(row.id)
            if os.path.isdir(self._ipam_dir(row.id)):
                with errors.map_os_errors(f"remove {self._ipam_dir(row.id)}"):
                    shutil.rmtree(self._ipam_dir(row.id))
            self._apply_rules()

    # -- the container lifecycle's hooks ---------------------------------------

    def check_attachments(self, config: client.ContainerConfig) -> None:
        """Refuse, at create, attachments that could never start."""
        seen: set[str] = set()
        for attachment in config.networks:
            if attachment.network in seen:
                raise errors.InvalidSpec(
                    f"container {config.name}: network {attachment.network} is listed twice"
                )
            seen.add(attachment.network)
            if attachment.network not in BUILTIN:
                row = self._store.get_network_by_name(attachment.network)
                builtin = row.driver in BUILTIN
            else:
                builtin = True
            if builtin and (attachment.ipv4_address or attachment.aliases):
                raise errors.InvalidSpec(
                    f"container {config.name}: network {attachment.network} takes no "
                    "ipv4Address or aliases"
                )
        if self.namespace_for(config) == "host" and len(config.networks) > 1:
            raise errors.InvalidSpec(
                f"container {config.name}: host networking cannot be combined with other networks"
            )

    def namespace_for(self, config: client.ContainerConfig) -> str | None:
        """ "host" to share the host's namespace, else None (a private one, or ours)."""
        for attachment in config.networks:
            if attachment.network == "host":
                return "host"
            if attachment.network == "none":
                continue
            if self._store.get_network_by_name(attachment.network).driver == "host":
                return "host"
        return None

    def _hosted_attachments(
        self, config: client.ContainerConfig
    ) -> builtins.list[tuple[client.NetworkAttachmentConfig, metadata.NetworkRow]]:
        found = []
        for attachment in config.networks:
            if attachment.network in BUILTIN:
                continue
            row = self._store.get_network_by_name(attachment.network)
            if row.driver in plumbing.DRIVERS:
                found.append((attachment, row))
        return found

    def attach(self, container_id: str, config: client.ContainerConfig) -> Attachment:
        """Prepare the container's networks before it starts (see the module doc)."""
        if self.namespace_for(config) == "host":
            return Attachment(namespace="host")
        wanted = self._hosted_attachments(config)
        if not wanted:
            return Attachment(namespace=None)
        from runtime.engine import netattach

        with self._locked():
            self._detach_locked(container_id)
            record = netattach.attach(self, container_id, config, wanted)
            self._after_change(record.container_id)
            everyone = endpoints.load_all(self._layout.root)
        return Attachment(namespace=record.namespace, hosts=hostsfile.lines_for(record, everyone))

    def refresh_hosts(self, container_id: str) -> None:
        """Rewrite the container's /etc/hosts in place with its peers now (called once
        its files are written: a peer may have attached since ``attach``)."""
        if not os.path.exists(endpoints.path(self._layout.root, container_id)):
            return
        with self._locked():
            self._write_hosts({container_id})

    def renamed(self, container_id: str, name: str) -> None:
        """A container took another name: peers learn it (it counts as the newest
        attachment, so a promoted start-first container takes its names over)."""
        if not os.path.exists(endpoints.path(self._layout.root, container_id)):
            return
        with self._locked():
            record = endpoints.load(self._layout.root, container_id)
            if record is None:
                return
            endpoints.save(
                self._layout.root,
                dataclasses.replace(record, name=name, attached_at=time.time()),
            )
            self._write_hosts(None)

    def detach(self, container_id: str) -> None:
        """Undo ``attach`` once the container's task is gone (idempotent, cheap when
        there is nothing to undo: ``ps`` calls it for every stopped container)."""
        if not os.path.exists(endpoints.path(self._layout.root, container_id)) and not (
            os.path.lexists(self.netns_path(container_id))
        ):
            return
        with self._locked():
            if self._detach_locked(container_id):
                self._after_change(container_id)

    def _detach_locked(self, container_id: str) -> bool:
        from runtime.engine import netattach

        return netattach.detach(self, container_id)

    def connect(
        self,
        container: metadata.ContainerRow,
        network: str,
        aliases: tuple[str, ...],
        ipv4_address: str | None,
        running: bool,
    ) -> None:
        from runtime.engine import netattach

        config = records.config_from_json(container.config_json)
        if any(a.network == network for a in config.networks):
            raise errors.AlreadyExists(
                f"container {container.name} is already on network {network}"
            )
        if network in BUILTIN or any(a.network in BUILTIN for a in config.networks):
            raise errors.FailedPrecondition(
                f"container {container.name}: host and none networking cannot be combined "
                "with other networks; recreate it with the networks it needs"
            )
        attachment = client.NetworkAttachmentConfig(network, aliases, ipv4_address)
        new = dataclasses.replace(config, networks=(*config.networks, attachment))
        self.check_attachments(new)
        with self._locked():
            record = endpoints.load(self._layout.root, container.id)
            if running and record is None:
                raise errors.FailedPrecondition(
                    f"container {container.name} runs without a network namespace of "
                    "pyreconcile's (it has no networks): stop it, connect, then start it"
                )
            if record is not None:
                row = self._store.get_network_by_name(network)
                if row.driver in plumbing.DRIVERS:
                    netattach.connect(self, record, config, attachment, row)
                    self._after_change(container.id)
            self._store.update_container(container.id, config_json=records.config_to_json(new))

    def disconnect(self, container: metadata.ContainerRow, network: str) -> None:
        from runtime.engine import netattach

        config = records.config_from_json(container.config_json)
        if not any(a.network == network for a in config.networks):
            raise errors.NotFound(f"container {container.name} is not on network {network}")
        new = dataclasses.replace(
            config, networks=tuple(a for a in config.networks if a.network != network)
        )
        with self._locked():
            record = endpoints.load(self._layout.root, container.id)
            if record is not None:
                row = self._store.get_network_by_name(network)
                if netattach.disconnect(self, record, config, row):
                    self._after_change(container.id)
            self._store.update_container(container.id, config_json=records.config_to_json(new))

    def published_ports(self) -> builtins.list[client.PortBinding]:
        return netviews.published_ports(endpoints.load_all(self._layout.root))

    # -- derived state ------------------------------------------------------------

    def _after_change(self, container_id: str) -> None:
        """Rules and the /etc/hosts of the container's peers (and its own), after its
        attachments changed. Holds the lock (the caller's)."""
        self._apply_rules()
        self._write_hosts(None)

    def _write_hosts(self, only: set[str] | None) -> None:
        everyone = endpoints.load_all(self._layout.root)
        for record in everyone:
            if only is not None and record.container_id not in only:
                continue
            hostsfile.rewrite(
                self._layout.container_dir(record.container_id),
                record.hostname,
                hostsfile.lines_for(record, everyone),
            )

    def _apply_rules(self) -> None:
        specs = [self._spec(r) for r in self._store.list_networks()]
        segments, forwards = netviews.rule_inputs(specs, endpoints.load_all(self._layout.root))
        nft.apply(self.table, segments, forwards)

    def repair(self, row: metadata.NetworkRow) -> None:
        """Make the host side of ``row`` whole again: links, addresses, the veths of
        its attached containers, the table, /etc/hosts (see ``netattach.repair``)."""
        from runtime.engine import netattach

        with self._locked():
            netattach.repair(self, row)
            self._after_change("")

    def _problems(
        self, rows: Sequence[metadata.NetworkRow], attached: Sequence[endpoints.Record]
    ) -> dict[str, builtins.list[str]]:
        from runtime.engine import netattach

        return netattach.problems(self, rows, attached)

    # -- for runtime.engine.netattach --------------------------------------------

    @property
    def layout(self) -> layout.Layout:
        return self._layout

    @property
    def store(self) -> metadata.MetadataStore:
        return self._store

    def spec(self, row: metadata.NetworkRow) -> plumbing.NetSpec:
        return self._spec(row)

    def ipam_dir(self, network_id: str) -> str:
        return self._ipam_dir(network_id)
