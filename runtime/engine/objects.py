"""Volumes (local driver), as records plus what they need on the host.

Volumes: a directory ``<root>/volumes/<name>/_data`` per named volume. Driver
options (tmpfs, a bind of a host directory, a block device) are not carried
out yet: asking for them is a clear ``Unavailable`` error, not a silent plain
directory.

Networks live in ``runtime.engine.networks``; ``Networks`` and ``Attachment``
are re-exported here for the container lifecycle, which names them so.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Callable

from runtime import client, errors
from runtime.engine import layout, metadata, networks, records

Networks = networks.Networks
Attachment = networks.Attachment

_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$")


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
