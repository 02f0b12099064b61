"""``LocalRuntime``: the real engine on this host, behind ``runtime.client``.

It composes the containerd-style pieces: the metadata store, the content
store, the overlay snapshotter, the image store, volumes, networks and the
container lifecycle (shims and the OCI runtime). It needs root: the engine
creates namespaces, mounts and cgroups.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping

from runtime import client, errors
from runtime.engine import containers, content, images, layout, metadata, objects, snapshots


class LocalRuntime:
    """Implements ``runtime.client.RuntimeClient``."""

    def __init__(self, paths: layout.Layout) -> None:
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
        self._images = images.ImageStore(
            paths, self._store, content.LocalContentStore(paths.content_dir), self._snapshots
        )
        self._volumes = objects.Volumes(paths, self._store)
        self._networks = objects.Networks(self._store)
        self._containers = containers.Containers(
            paths, self._store, self._images, self._snapshots, self._volumes, self._networks
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

    def pull_image(self, reference: str) -> client.ImageInfo:
        raise errors.Unavailable(
            f"cannot pull {reference}: pulling from registries is not implemented yet; "
            "import the image with `pyreconcile image import` (a rootfs tarball or an OCI layout)"
        )

    def remove_image(self, ref: str) -> None:
        self._images.remove(ref)

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

    def remove_container(self, name: str, *, force: bool = False) -> None:
        self._containers.remove(name, force=force)

    def container_logs(
        self, name: str, *, tail: int | None = None, follow: bool = False
    ) -> Iterator[client.LogEntry]:
        return self._containers.logs(name, tail=tail, follow=follow)

    def close(self) -> None:
        self._store.close()
