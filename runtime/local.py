"""``LocalRuntime``: the real engine on this host, behind ``runtime.client``.

It composes the containerd-style pieces: the metadata store, the content
store, the overlay snapshotter, the image store, volumes, networks and the
container lifecycle (shims and the OCI runtime). It needs root: the engine
creates namespaces, mounts and cgroups.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, BinaryIO

from runtime import client, errors
from runtime.engine import (
    containers,
    content,
    images,
    layout,
    metadata,
    networks,
    restore,
    snapshots,
    volume_archive,
    volume_quiesce,
    volumes,
)
from schemas import reference as references

if TYPE_CHECKING:  # imported when first used: requests costs every CLI start ~60 ms
    from runtime.engine import registry


class LocalRuntime:
    """Implements ``runtime.client.RuntimeClient``."""

    def __init__(
        self, paths: layout.Layout, registry_options: registry.RegistryOptions | None = None
    ) -> None:
        if os.geteuid() != 0:
            raise errors.Unavailable(
                "the pyreconcile engine needs root (it creates namespaces, mounts and cgroups); "
                "run this command as root"
            )
        self.layout = paths
        with errors.map_os_errors(f"create the state directories under {paths.root}"):
            paths.ensure()
        self._store = metadata.MetadataStore(paths.db_path)
        self._snapshots = snapshots.OverlaySnapshotter(paths.snapshots_dir, self._store)
        self._content = content.LocalContentStore(paths.content_dir)
        self._images = images.ImageStore(paths, self._store, self._content, self._snapshots)
        self._registry_options = registry_options
        self._registries_: registry.Registries | None = None
        self._volumes = volumes.Volumes(paths, self._store)
        self._networks = networks.Networks(paths, self._store)
        self._containers = containers.Containers(
            paths, self._store, self._images, self._snapshots, self._volumes, self._networks
        )
        # every engine start settles what happened while no engine ran (DESIGN.md §5)
        self.restore_report = restore.restore_all(
            paths, self._store, self._snapshots, self._containers
        )

    # images
    def list_images(self) -> list[client.ImageInfo]:
        return [images.to_image_info(i) for i in self._images.list()]

    def get_image(self, ref: str) -> client.ImageInfo:
        return images.to_image_info(self._images.get(ref))

    def import_image(
        self, path: str, reference: str | None = None, annotations: Mapping[str, str] | None = None
    ) -> client.ImageInfo:
        record = self._images.import_image(path, reference, annotations=annotations)
        return images.to_image_info(record)

    @property
    def _registries(self) -> registry.Registries:
        if self._registries_ is None:
            from runtime.engine import registry

            opts = self._registry_options or registry.RegistryOptions.from_env()
            cache = os.path.join(self.layout.run_root, "registry")
            self._registries_ = registry.Registries(opts, cache)
        return self._registries_

    def pull_image(
        self,
        reference: str,
        *,
        platform: str | None = None,
        progress: client.ProgressCallback | None = None,
    ) -> client.ImageInfo:
        record = self._registries.pull(
            reference,
            store=self._content,
            image_store=self._images,
            platform=platform,
            progress=progress,
        )
        return images.to_image_info(record)

    def resolve_remote(self, reference: str, *, platform: str | None = None) -> client.RemoteImage:
        return self._registries.resolve(reference, platform)

    def push_image(
        self,
        ref: str,
        destination: str | None = None,
        *,
        progress: client.ProgressCallback | None = None,
    ) -> str:
        record = self._images.get(ref)
        target = destination or _name_in(ref, record)
        if target is None or references.is_digest(target) or target.startswith("sha256:"):
            raise errors.InvalidSpec(
                f"cannot push {ref}: it is not one of the image's names; "
                f"name the destination (push {ref} REGISTRY/REPO:TAG)"
            )
        return self._registries.push(record, target, store=self._content, progress=progress)

    def tag_image(self, source: str, target: str) -> client.ImageInfo:
        try:
            return images.to_image_info(self._images.tag(source, target))
        except references.ReferenceError_ as exc:
            raise errors.InvalidSpec(str(exc)) from None

    def remove_image(self, ref: str) -> None:
        self._images.remove(ref)

    def prune_images(self, *, all_unused: bool = False) -> list[str]:
        return self._images.prune(all_unused=all_unused)

    def save_images(
        self,
        refs: Sequence[str],
        path: str,
        *,
        format: client.ArchiveFormat = "docker-archive",
    ) -> None:
        from runtime.engine import docker_archive, oci_export

        chosen: dict[str, tuple[images.ImageRecord, list[str]]] = {}
        for ref in refs:
            record = self._images.get(ref)
            names = chosen.setdefault(record.id, (record, []))[1]
            name = _name_in(ref, record)
            if name and name not in names:
                names.append(name)
        if not chosen:
            raise errors.InvalidSpec("name at least one image to save")
        if format == "docker-archive":
            items = [(record, tuple(names)) for record, names in chosen.values()]
            scratch = os.path.join(self.layout.content_dir, "ingest")
            docker_archive.save(items, path, self._images, self._content, scratch)
            return
        exports = []
        for record, names in chosen.values():
            raw, parsed = self._images.manifest(record)
            exports.append(
                oci_export.ExportImage(record.manifest_digest, raw, parsed, tuple(names))
            )
        if format == "oci-dir":
            oci_export.write_layout_dir(exports, path, self._content)
        elif format == "oci-archive":
            oci_export.write_layout_tar(exports, path, self._content)
        else:
            raise errors.InvalidSpec(
                f"unknown archive format {format!r}: use docker-archive, oci-archive or oci-dir"
            )

    def load_images(self, path: str) -> list[client.ImageInfo]:
        return [images.to_image_info(r) for r in self._images.load(path)]

    def login(self, registry: str, username: str, password: str) -> None:
        self._registries.login(registry, username, password)

    def logout(self, registry: str) -> bool:
        return self._registries.logout(registry)

    # volumes
    def list_volumes(self) -> list[client.VolumeInfo]:
        return self._volumes.list()

    def create_volume(self, config: client.VolumeConfig) -> client.VolumeInfo:
        return self._volumes.create(config)

    def update_volume(
        self,
        name: str,
        labels: tuple[tuple[str, str], ...],
        annotations: tuple[tuple[str, str], ...],
    ) -> client.VolumeInfo:
        return self._volumes.update(name, labels, annotations)

    def remove_volume(self, name: str) -> None:
        self._volumes.remove(name)

    def get_volume(self, name: str) -> client.VolumeInfo:
        return self._volumes.get(name)

    def prune_volumes(self, *, all_unused: bool = False) -> list[str]:
        return self._volumes.prune(all_unused=all_unused)

    def backup_volume(self, name: str, out: BinaryIO, *, stop: bool = False) -> None:
        """Users paused (or stopped) for the copy: the archive is one instant's content."""
        users = self._volumes.users(name)
        mountpoint = self._volumes.ensure_mounted(name)
        quiet = (
            volume_quiesce.stopped(self._containers, users)
            if stop
            else volume_quiesce.paused(self._containers, users, self.layout.oci_root)
        )
        with quiet, self._volumes.locked(name):
            volume_archive.backup(mountpoint, out, f"backup of volume {name}")

    def restore_volume(
        self, name: str, archive: BinaryIO, *, replace: bool = False
    ) -> client.VolumeInfo:
        """A missing volume is created (a plain one) and removed again if the restore fails."""
        created = False
        try:
            self._volumes.get(name)
        except errors.NotFound:
            self._volumes.create(client.VolumeConfig(name=name))
            created = True
        try:
            mountpoint = self._volumes.ensure_mounted(name)
            users = self._volumes.users(name)
            with volume_quiesce.stopped(self._containers, users), self._volumes.locked(name):
                volume_archive.restore(
                    mountpoint, archive, f"restore of volume {name}", replace=replace
                )
        except BaseException as exc:
            if created:
                try:
                    self._volumes.remove(name)
                except errors.RuntimeError_ as cleanup:
                    exc.add_note(f"removing the volume made for it failed too: {cleanup}")
            raise
        return self._volumes.get(name)

    # networks
    def list_networks(self) -> list[client.NetworkInfo]:
        return self._networks.list()

    def create_network(self, config: client.NetworkConfig) -> client.NetworkInfo:
        return self._networks.create(config)

    def update_network(
        self,
        name: str,
        labels: tuple[tuple[str, str], ...],
        annotations: tuple[tuple[str, str], ...],
    ) -> client.NetworkInfo:
        return self._networks.update(name, labels, annotations)

    def remove_network(self, name: str) -> None:
        self._networks.remove(name)

    def connect_network(
        self,
        network: str,
        container: str,
        *,
        aliases: tuple[str, ...] = (),
        ipv4_address: str | None = None,
    ) -> None:
        info = self._containers.get(container)
        self._networks.connect(
            self._store.get_container(info.id),
            network,
            aliases,
            ipv4_address,
            running=info.status in ("running", "restarting", "paused"),
        )

    def disconnect_network(self, network: str, container: str) -> None:
        info = self._containers.get(container)
        self._networks.disconnect(self._store.get_container(info.id), network)

    def list_published_ports(self) -> list[client.PortBinding]:
        return self._networks.published_ports()

    # containers
    def list_containers(self) -> list[client.ContainerInfo]:
        return self._containers.list()

    def get_container(self, name_or_id: str) -> client.ContainerInfo:
        return self._containers.get(name_or_id)

    def create_container(self, config: client.ContainerConfig) -> client.ContainerInfo:
        return self._containers.create(config)

    def start_container(self, name: str) -> client.ContainerInfo:
        return self._containers.start(name)

    def stop_container(
        self, name: str, timeout: float | None = None, *, operator: bool = False
    ) -> client.ContainerInfo:
        return self._containers.stop(name, timeout, operator=operator)

    def wait_container(self, name: str, timeout: float | None = None) -> client.ContainerInfo:
        return self._containers.wait(name, timeout)

    def update_container(self, name: str, update: client.ContainerUpdate) -> client.ContainerInfo:
        return self._containers.update(name, update)

    def rename_container(self, name: str, new_name: str) -> client.ContainerInfo:
        return self._containers.rename(name, new_name)

    def remove_container(self, name: str, *, force: bool = False) -> None:
        self._containers.remove(name, force=force)

    def container_logs(
        self,
        name: str,
        *,
        tail: int | None = None,
        follow: bool = False,
        since: float | str | None = None,
    ) -> Iterator[client.LogEntry]:
        return self._containers.logs(name, tail=tail, follow=follow, since=since)

    def kill_container(self, name: str, signal: str = "SIGKILL") -> client.ContainerInfo:
        return self._containers.kill(name, signal)

    def restart_container(self, name: str, timeout: float | None = None) -> client.ContainerInfo:
        return self._containers.restart(name, timeout)

    def exec_container(
        self, name: str, config: client.ExecConfig, *, stdio: tuple[int, int, int] | None = None
    ) -> client.ExecSession:
        return self._containers.exec(name, config, stdio)

    def close(self) -> None:
        if self._registries_ is not None:
            self._registries_.close()
        self._store.close()


def _name_in(ref: str, record: images.ImageRecord) -> str | None:
    """The name ``ref`` gives the image (None when ``ref`` is an id or digest), as Docker
    names what ``docker save`` writes only when it was asked by name."""
    try:
        name = references.normalize_reference(ref)
    except references.ReferenceError_:
        return None
    return name if name in record.references else None
