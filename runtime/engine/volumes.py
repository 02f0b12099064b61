"""Volumes of the local driver: records, their directory or mount, anonymous volumes.

A volume is a row in the metadata store and a directory
``<root>/volumes/<name>/_data``, which its driver options (Docker's ``type``,
``device``, ``o``: :mod:`runtime.engine.volume_drivers`) may turn into a
tmpfs, a bind of a host directory or a formatted device. Order, so that a
crash leaves nothing the next call cannot finish: create writes the row,
then the directory, then the mount (a failed mount takes both back); remove
unmounts, removes the directory, and the row goes last.

Safety rules, which the reconciler relies on:

* a volume that a container uses (named in its mounts, or an anonymous
  volume whose owner exists) is never removed: ``FailedPrecondition``;
* removal never deletes through a mount: a bind volume's host directory and a
  device's filesystem keep their data, and a directory with anything still
  mounted below it is refused (:func:`runtime.engine.volume_fs.remove_tree`);
* a mount that went away (after a reboot) is reported in ``problems``, and
  mounted again by ``ensure_mounted`` (a container start, ``update``), never
  silently replaced by the directory underneath.

Anonymous volumes (a mount without a source, an image ``VOLUME``) are named
from their owner and target (:func:`anonymous_name`), labelled with both
(``client.ANONYMOUS_VOLUME_LABEL`` and friends), and reused by the next
container of the same owner: that is how a recreate keeps them. The owner is
the container's name unless its ``client.VOLUME_OWNER_LABEL`` says otherwise
(the reconciler sets it to the stack's name for the object, which a
start-first update's second container and a rename keep).

Mounting, copy-up and removal of one volume are serialised across processes
by a flock (``<run_root>/locks/volume-<name>.lock``): two containers starting
at once after a reboot must not both mount its tmpfs.
"""

from __future__ import annotations

import builtins
import contextlib
import fcntl
import os
import time
from collections.abc import Iterator, Sequence

from runtime import client, errors
from runtime.engine import layout, metadata, objects, records, volume_drivers, volume_fs

owner_of = client.volume_owner
anonymous_name = client.anonymous_volume_name


def _container_configs(store: metadata.MetadataStore) -> list[client.ContainerConfig]:
    return [records.config_from_json(row.config_json) for row in store.list_containers()]


def _users(
    name: str, labels: dict[str, str], configs: Sequence[client.ContainerConfig]
) -> list[str]:
    """Containers that name the volume, or own it (an anonymous volume)."""
    owner = (
        labels.get(client.VOLUME_OWNER_LABEL)
        if labels.get(client.ANONYMOUS_VOLUME_LABEL) == "true"
        else None
    )
    return sorted(
        c.name
        for c in configs
        if owner_of(c) == owner or any(m.type == "volume" and m.source == name for m in c.mounts)
    )


class Volumes:
    def __init__(self, paths: layout.Layout, store: metadata.MetadataStore) -> None:
        self._layout = paths
        self._store = store

    # -- records -------------------------------------------------------------------

    def _info(
        self, row: metadata.VolumeRow, configs: Sequence[client.ContainerConfig]
    ) -> client.VolumeInfo:
        try:
            opts = volume_drivers.parse(row.name, row.options)
            problems = volume_drivers.problems(row.name, opts, row.mountpoint)
        except errors.RuntimeError_ as exc:
            problems = [str(exc)]
        return client.VolumeInfo(
            name=row.name,
            driver=row.driver,
            options=row.options,
            labels=row.labels,
            annotations=row.annotations,
            mountpoint=row.mountpoint,
            created_at=row.created_at,
            users=tuple(_users(row.name, dict(row.labels), configs)),
            problems=tuple(problems),
        )

    def list(self) -> list[client.VolumeInfo]:
        configs = _container_configs(self._store)
        return [self._info(r, configs) for r in self._store.list_volumes()]

    def get(self, name: str) -> client.VolumeInfo:
        row = self._row(name)
        return self._info(row, _container_configs(self._store))

    def _row(self, name: str) -> metadata.VolumeRow:
        try:
            return self._store.get_volume(name)
        except errors.NotFound:
            raise errors.NotFound(f"volume {name!r} not found") from None

    def options(self, name: str) -> volume_drivers.LocalOptions:
        row = self._row(name)
        return volume_drivers.parse(row.name, row.options)

    def users(self, name: str) -> builtins.list[str]:
        row = self._row(name)
        return _users(name, dict(row.labels), _container_configs(self._store))

    # -- lock ---------------------------------------------------------------------------

    @contextlib.contextmanager
    def locked(self, name: str) -> Iterator[None]:
        """Hold the volume's flock (mount, copy-up, restore, removal)."""
        path = os.path.join(self._layout.locks_dir, f"volume-{name}.lock")
        with errors.map_os_errors(f"lock volume {name}"):
            os.makedirs(self._layout.locks_dir, mode=0o700, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    # -- create -----------------------------------------------------------------------

    def create(self, config: client.VolumeConfig) -> client.VolumeInfo:
        objects.check_name("volume", config.name)
        if config.driver != "local":
            raise errors.InvalidSpec(
                f"volume {config.name}: unknown driver {config.driver!r}; use local"
            )
        opts = volume_drivers.parse(config.name, config.options)
        volume_drivers.check_device(config.name, opts)
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
        with self.locked(config.name):
            try:
                self._store.insert_volume(row)
            except errors.AlreadyExists:
                raise errors.AlreadyExists(f"volume {config.name!r} already exists") from None
            try:
                with errors.map_os_errors(f"create volume directory {mountpoint}"):
                    os.makedirs(directory, mode=0o701, exist_ok=True)
                    os.makedirs(mountpoint, mode=0o755, exist_ok=True)
                volume_drivers.mount(config.name, opts, mountpoint)
            except BaseException as exc:
                try:
                    volume_fs.remove_tree(directory)
                    self._store.delete_volume(config.name)
                except errors.RuntimeError_ as cleanup:
                    exc.add_note(f"taking volume {config.name} back failed too: {cleanup}")
                raise
        return self.get(config.name)

    def ensure_anonymous(self, owner: str, target: str) -> str:
        """The anonymous volume of ``owner`` at ``target``, created when missing."""
        name = anonymous_name(owner, target)
        for _ in range(2):
            try:
                row = self._store.get_volume(name)
            except errors.NotFound:
                labels = {
                    client.ANONYMOUS_VOLUME_LABEL: "true",
                    client.VOLUME_OWNER_LABEL: owner,
                    client.VOLUME_TARGET_LABEL: os.path.normpath(target),
                }
                try:
                    self.create(client.VolumeConfig(name=name, labels=client.frozen_map(labels)))
                except errors.AlreadyExists:
                    continue  # made meanwhile by another process: check it
                return name
            found = dict(row.labels)
            if (
                found.get(client.ANONYMOUS_VOLUME_LABEL) != "true"
                or found.get(client.VOLUME_OWNER_LABEL) != owner
            ):
                raise errors.AlreadyExists(
                    f"volume {name!r} exists and is not the anonymous volume of "
                    f"{owner!r} at {target}; remove or rename it"
                )
            return name
        raise errors.Transient(f"volume {name!r} appeared and vanished while being created")

    # -- mounts ---------------------------------------------------------------------------

    def ensure_mounted(self, name: str) -> str:
        """The volume's directory, its mount made again if it went away; the host path."""
        with self.locked(name):
            row = self._row(name)
            opts = volume_drivers.parse(name, row.options)
            with errors.map_os_errors(f"create volume directory {row.mountpoint}"):
                os.makedirs(row.mountpoint, mode=0o755, exist_ok=True)
            if opts.mounted and not volume_drivers.is_mounted(row.mountpoint):
                volume_drivers.mount(name, opts, row.mountpoint)
            return row.mountpoint

    def update(
        self, name: str, labels: metadata.Pairs, annotations: metadata.Pairs
    ) -> client.VolumeInfo:
        """New labels and annotations; a mount that went away is made again (repair)."""
        self._store.update_volume(self._row(name).name, labels=labels, annotations=annotations)
        self.ensure_mounted(name)
        return self.get(name)

    # -- removal ------------------------------------------------------------------------------

    def remove(self, name: str) -> None:
        with self.locked(name):
            row = self._row(name)
            users = _users(name, dict(row.labels), _container_configs(self._store))
            if users:
                raise errors.FailedPrecondition(
                    f"volume {name!r} is in use by container {', '.join(users)}: remove it first"
                )
            try:
                opts: volume_drivers.LocalOptions | None = volume_drivers.parse(name, row.options)
            except errors.InvalidSpec:
                opts = None  # unreadable options: unmount whatever is there
            if opts is None or opts.mounted:
                volume_drivers.unmount(row.mountpoint)
            if opts is not None and opts.kind == "bind" and opts.device:
                _check_not_the_source(row.mountpoint, opts.device)
            volume_fs.remove_tree(self._layout.volume_dir(name))
            self._store.delete_volume(name)

    def prune(self, *, all_unused: bool = False) -> builtins.list[str]:
        """Remove volumes that no container uses: anonymous ones, or all with ``all_unused``."""
        removed = []
        for info in self.list():
            if info.users or (not all_unused and info.anonymous_owner is None):
                continue
            try:
                self.remove(info.name)
            except (errors.FailedPrecondition, errors.NotFound):
                continue  # taken into use, or removed, meanwhile
            removed.append(info.name)
        return removed


def _check_not_the_source(mountpoint: str, device: str) -> None:
    """A bind volume's directory, once unmounted, must not be its host directory."""
    try:
        here, there = os.stat(mountpoint), os.stat(device)
    except OSError:
        return
    if (here.st_dev, here.st_ino) == (there.st_dev, there.st_ino):
        raise errors.FailedPrecondition(
            f"{mountpoint} still shows the host directory {device}; refusing to remove it"
        )
