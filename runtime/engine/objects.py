"""Volumes (local driver) and networks, as records plus what they need on the host.

Volumes: a directory ``<root>/volumes/<name>/_data`` per named volume. Driver
options (tmpfs, a bind of a host directory, a block device) are not carried
out yet: asking for them is a clear ``Unavailable`` error, not a silent plain
directory.

Networks: ``host`` (the host's namespace) and ``none`` (a private namespace
with loopback only) are complete. ``bridge``, ``macvlan`` and ``overlay`` need
links, addresses and nftables rules that this engine does not make yet, so
creating one is refused with a clear error rather than recorded and ignored.
"""

from __future__ import annotations

import dataclasses
import os
import re
import secrets
import shutil
import time
from collections.abc import Callable

from runtime import client, errors
from runtime.engine import layout, metadata, records

_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$")
SUPPORTED_NETWORK_DRIVERS = ("host", "none")


def check_name(kind: str, name: str) -> None:
    if not _NAME.match(name):
        raise errors.InvalidSpec(
            f"invalid {kind} name {name!r}: use letters, digits, '_', '.', '-' "
            "(at most 128), starting with a letter or digit"
        )


def _users(
    store: metadata.MetadataStore, uses: Callable[[client.ContainerConfig], bool]
) -> list[str]:
    return [
        row.name
        for row in store.list_containers()
        if uses(records.config_from_json(row.config_json))
    ]


class Volumes:
    def __init__(self, paths: layout.Layout, store: metadata.MetadataStore) -> None:
        self._layout = paths
        self._store = store

    @staticmethod
    def info(row: metadata.VolumeRow) -> client.VolumeInfo:
        return client.VolumeInfo(
            name=row.name,
            driver=row.driver,
            options=row.options,
            labels=row.labels,
            annotations=row.annotations,
            mountpoint=row.mountpoint,
            created_at=row.created_at,
        )

    def list(self) -> list[client.VolumeInfo]:
        return [self.info(r) for r in self._store.list_volumes()]

    def get(self, name: str) -> client.VolumeInfo:
        return self.info(self._store.get_volume(name))

    def create(self, config: client.VolumeConfig) -> client.VolumeInfo:
        check_name("volume", config.name)
        if config.driver != "local":
            raise errors.InvalidSpec(f"volume {config.name}: unknown driver {config.driver!r}")
        if config.options:
            raise errors.Unavailable(
                f"volume {config.name}: driver options ({', '.join(k for k, _ in config.options)}) "
                "are not supported yet; remove driverOpts to get a plain local volume"
            )
        directory = self._layout.volume_dir(config.name)
        mountpoint = os.path.join(directory, "_data")
        row = metadata.VolumeRow(
            name=config.name,
            driver=config.driver,
            options=config.options,
            labels=config.labels,
            annotations=config.annotations,
            mountpoint=mountpoint,
            created_at=time.time(),
        )
        try:
            self._store.insert_volume(row)
        except errors.AlreadyExists:
            raise errors.AlreadyExists(f"volume {config.name!r} already exists") from None
        try:
            with errors.map_os_errors(f"create volume directory {mountpoint}"):
                os.makedirs(directory, mode=0o701, exist_ok=True)
                os.makedirs(mountpoint, mode=0o755, exist_ok=True)
        except errors.RuntimeError_:
            self._store.delete_volume(config.name)
            raise
        return self.info(row)

    def update(
        self, name: str, labels: metadata.Pairs, annotations: metadata.Pairs
    ) -> client.VolumeInfo:
        return self.info(self._store.update_volume(name, labels=labels, annotations=annotations))

    def remove(self, name: str) -> None:
        self._store.get_volume(name)
        users = _users(
            self._store, lambda c: any(m.type == "volume" and m.source == name for m in c.mounts)
        )
        if users:
            raise errors.FailedPrecondition(
                f"volume {name!r} is in use by container {', '.join(users)}: remove it first"
            )
        directory = self._layout.volume_dir(name)
        if os.path.lexists(directory):
            with errors.map_os_errors(f"remove volume directory {directory}"):
                shutil.rmtree(directory)
        self._store.delete_volume(name)


@dataclasses.dataclass(frozen=True)
class Attachment:
    """How a container joins its networks: ``namespace`` is "host", a path to a
    network namespace to join, or None for a new private one; ``hosts`` are
    /etc/hosts lines (address, names)."""

    namespace: str | None
    hosts: tuple[tuple[str, str], ...] = ()


class Networks:
    def __init__(self, store: metadata.MetadataStore) -> None:
        self._store = store

    @staticmethod
    def info(row: metadata.NetworkRow) -> client.NetworkInfo:
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
        )

    def list(self) -> list[client.NetworkInfo]:
        return [self.info(r) for r in self._store.list_networks()]

    def get(self, name: str) -> client.NetworkInfo:
        return self.info(self._store.get_network_by_name(name))

    def create(self, config: client.NetworkConfig) -> client.NetworkInfo:
        check_name("network", config.name)
        if config.name in SUPPORTED_NETWORK_DRIVERS:
            raise errors.InvalidSpec(f"network name {config.name!r} is reserved")
        if config.driver not in SUPPORTED_NETWORK_DRIVERS:
            raise errors.Unavailable(
                f"network {config.name}: the {config.driver} driver is not implemented yet; "
                "use driver host or none (or the built-in networks host and none)"
            )
        row = metadata.NetworkRow(
            id=secrets.token_hex(32),
            name=config.name,
            driver=config.driver,
            subnet=config.subnet,
            gateway=config.gateway,
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
        return self.info(row)

    def update(
        self, name: str, labels: metadata.Pairs, annotations: metadata.Pairs
    ) -> client.NetworkInfo:
        row = self._store.get_network_by_name(name)
        return self.info(self._store.update_network(row.id, labels=labels, annotations=annotations))

    def remove(self, name: str) -> None:
        row = self._store.get_network_by_name(name)
        users = _users(self._store, lambda c: any(a.network == name for a in c.networks))
        if users:
            raise errors.FailedPrecondition(
                f"network {name!r} is in use by container {', '.join(users)}: remove it first"
            )
        self._store.delete_network(row.id)

    def attach(self, container_id: str, config: client.ContainerConfig) -> Attachment:
        """Prepare the container's network before it starts (the hook the network
        drivers grow into: a namespace with links and addresses, /etc/hosts lines)."""
        return Attachment(namespace=self.namespace_for(config))

    def detach(self, container_id: str) -> None:
        """Undo ``attach`` once the container's task is gone (idempotent)."""

    def namespace_for(self, config: client.ContainerConfig) -> str | None:
        """The string "host" to share the host's network namespace, None for a private one."""
        for attachment in config.networks:
            if attachment.network == "host":
                return "host"
            if attachment.network == "none":
                continue
            if self._store.get_network_by_name(attachment.network).driver == "host":
                return "host"
        return None

    def check_attachments(self, config: client.ContainerConfig) -> None:
        for attachment in config.networks:
            if attachment.network not in SUPPORTED_NETWORK_DRIVERS:
                self._store.get_network_by_name(attachment.network)
