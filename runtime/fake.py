"""An in-memory ``RuntimeClient`` for the reconciler's unit tests.

It keeps the same rules as the real engine, checked by the shared contract
suite (``tests/contract``): unique names, images that must exist before a
container uses them, volumes and networks that cannot be removed while a
container uses them, running containers that cannot be removed without
``force``, NotFound on unknown names. Tests drive time and failures through
``crash`` and a settable ``clock``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import itertools
import os
import tarfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import BinaryIO, Literal

from runtime import client, errors
from runtime.shim import logs as shim_logs
from runtime.shim import protocol as shim_protocol
from schemas import reference as references


def _empty_volume_tar() -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        root = tarfile.TarInfo(".")
        root.type, root.mode = tarfile.DIRTYPE, 0o755
        tar.addfile(root)
    return buffer.getvalue()


_EMPTY_VOLUME_TAR = _empty_volume_tar()


def _tar_names(data: bytes, volume: str) -> list[str]:
    """The entry names of a volume archive other than its root; InvalidSpec when it
    is not a tar or an entry climbs out of the volume (as the engine refuses it)."""
    what = f"restore of volume {volume}"
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as tar:
            names = tar.getnames()
    except tarfile.TarError as exc:
        raise errors.InvalidSpec(f"{what}: not a valid tar stream: {exc}") from None
    kept = []
    for name in names:
        parts: list[str] = []
        for part in name.split("/"):
            if part == "..":
                if not parts and not name.startswith("/"):
                    raise errors.InvalidSpec(f"{what}: entry {name!r} climbs out of the root")
                if parts:
                    parts.pop()
            elif part not in ("", "."):
                parts.append(part)
        if parts:
            kept.append("/".join(parts))
    return kept


def _image_key(ref: str) -> str:
    if ref.startswith("sha256:"):
        return ref
    try:
        return references.normalize_reference(ref)
    except ValueError as exc:
        raise errors.InvalidSpec(str(exc)) from None


class FakeRuntime:
    """Implements ``runtime.client.RuntimeClient`` in memory."""

    def __init__(self, clock: Callable[[], float] | None = None) -> None:
        self._ticks = itertools.count(1)
        self.clock: Callable[[], float] = clock or (lambda: float(next(self._ticks)))
        self.images: dict[str, client.ImageInfo] = {}  # by id
        self.refs: dict[str, str] = {}  # reference -> image id
        # what pull_image can fetch: reference -> (config, content); see publish()
        self.registry: dict[str, tuple[client.ImageConfig, bytes]] = {}
        self.registry_users: dict[str, dict[str, str]] = {}  # domain -> user -> password
        self.logins: dict[str, tuple[str, str]] = {}  # domain -> (user, password)
        self.archives: dict[str, list[tuple[client.ImageInfo, bytes, tuple[str, ...]]]] = {}
        self._image_content: dict[str, bytes] = {}  # image id -> the bytes it was made of
        self.volumes: dict[str, client.VolumeInfo] = {}
        self.volume_data: dict[str, bytes] = {}  # the archive a volume was restored from
        # set by a test: a volume's mount "went away" (the engine reports such drift)
        self.volume_problems: dict[str, list[str]] = {}
        self.networks: dict[str, client.NetworkInfo] = {}
        self.containers: dict[str, client.ContainerInfo] = {}
        self.logs: dict[str, list[client.LogEntry]] = {}
        self.unhealthy_images: set[str] = set()  # image ids whose containers fail checks
        self.calls: list[str] = []  # for tests that count work, not for asserting behaviour
        #: what ``exec_container`` "runs": args -> (exit code, stdout text)
        self.exec_results: dict[tuple[str, ...], tuple[int, str]] = {}
        self._pids = itertools.count(1000)
        self._ephemeral: dict[tuple[str, int], int] = {}  # (container id, port index) → port

    # -- images ------------------------------------------------------------

    def add_image(
        self,
        reference: str,
        config: client.ImageConfig | None = None,
        *,
        content: bytes | None = None,
        annotations: Mapping[str, str] | None = None,
    ) -> client.ImageInfo:
        """Put an image in the store, as an import or a pull would."""
        ref = _image_key(reference)
        data = content if content is not None else ref.encode()
        image_id = "sha256:" + hashlib.sha256(b"config:" + data).hexdigest()
        old = self.images.get(image_id)
        refs = tuple(sorted({*(old.references if old else ()), ref}))
        info = client.ImageInfo(
            id=image_id,
            digest="sha256:" + hashlib.sha256(b"manifest:" + data).hexdigest(),
            references=refs,
            config=config or client.ImageConfig(cmd=("sh",)),
            size=len(data),
            created_at=self.clock(),
            annotations=client.frozen_map(annotations),
        )
        previous = self.refs.get(ref)
        self.images[image_id] = info
        self._image_content[image_id] = data
        self.refs[ref] = image_id
        if previous and previous != image_id:
            self._drop_ref(previous, ref)
        return info

    def _drop_ref(self, image_id: str, ref: str) -> None:
        old = self.images.get(image_id)
        if old is None:
            return
        rest = tuple(r for r in old.references if r != ref)
        self.images[image_id] = dataclasses.replace(old, references=rest)

    def list_images(self) -> list[client.ImageInfo]:
        return sorted(self.images.values(), key=lambda i: i.id)

    def get_image(self, ref: str) -> client.ImageInfo:
        key = _image_key(ref)
        image_id = key if key in self.images else self.refs.get(key)
        if image_id is None:
            raise errors.NotFound(f"image {ref!r} not found")
        return self.images[image_id]

    def import_image(
        self, path: str, reference: str | None = None, annotations: Mapping[str, str] | None = None
    ) -> client.ImageInfo:
        self.calls.append(f"import_image {path}")
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError as exc:
            raise errors.NotFound(f"cannot read {path}: {exc.strerror}") from None
        return self.add_image(
            reference or "localhost/imported:latest", content=data, annotations=annotations
        )

    def publish(
        self, reference: str, config: client.ImageConfig | None = None, *, content: bytes = b""
    ) -> client.RemoteImage:
        """Put an image in the fake registry (again: the tag moves when content differs)."""
        ref = _image_key(reference)
        data = content or ref.encode()
        self.registry[ref] = (config or client.ImageConfig(cmd=("sh",)), data)
        return self.resolve_remote(ref)

    def _remote(self, reference: str) -> tuple[str, client.ImageConfig, bytes]:
        ref = _image_key(reference)
        if ref not in self.registry:
            raise errors.NotFound(f"image {ref} not found in its registry")
        config, data = self.registry[ref]
        return ref, config, data

    def pull_image(
        self,
        reference: str,
        *,
        platform: str | None = None,
        progress: client.ProgressCallback | None = None,
    ) -> client.ImageInfo:
        self.calls.append(f"pull_image {reference}")
        ref, config, data = self._remote(reference)
        remote = self.resolve_remote(ref)
        if progress is not None:
            progress(client.ProgressEvent("resolved", ref, detail=remote.manifest_digest))
        info = self.add_image(ref, config, content=data)
        if progress is not None:
            progress(client.ProgressEvent("done", ref, detail=info.id))
        return info

    def resolve_remote(self, reference: str, *, platform: str | None = None) -> client.RemoteImage:
        ref, _, data = self._remote(reference)
        manifest = "sha256:" + hashlib.sha256(b"manifest:" + data).hexdigest()
        return client.RemoteImage(
            reference=ref,
            digest=manifest,
            manifest_digest=manifest,
            image_id="sha256:" + hashlib.sha256(b"config:" + data).hexdigest(),
            platform=platform or "linux/amd64",
        )

    def push_image(
        self,
        ref: str,
        destination: str | None = None,
        *,
        progress: client.ProgressCallback | None = None,
    ) -> str:
        image = self.get_image(ref)
        target = destination or ref
        if target.startswith("sha256:") or (
            destination is None and _image_key(ref) not in image.references
        ):
            raise errors.InvalidSpec(f"cannot push {ref}: name the destination")
        dest = _image_key(target)
        domain = dest.split("/", 1)[0]
        if self.registry_users.get(domain) and domain not in self.logins:
            raise errors.FailedPrecondition(f"registry {domain} requires a login")
        self.registry[dest] = (image.config, self._image_content[image.id])
        if progress is not None:
            progress(client.ProgressEvent("done", dest, detail=image.digest))
        return image.digest

    def tag_image(self, source: str, target: str) -> client.ImageInfo:
        image = self.get_image(source)
        ref = _image_key(target)
        previous = self.refs.get(ref)
        if previous and previous != image.id:
            self._drop_ref(previous, ref)
        self.refs[ref] = image.id
        info = dataclasses.replace(
            self.images[image.id], references=tuple(sorted({*image.references, ref}))
        )
        self.images[image.id] = info
        return info

    def remove_image(self, ref: str) -> None:
        image = self.get_image(ref)
        key = _image_key(ref)
        used = any(c.image_id == image.id for c in self.containers.values())
        if key in image.references:  # untag; the image goes with its last name
            self.refs.pop(key, None)
            self._drop_ref(image.id, key)
            if self.images[image.id].references or used:
                return
        elif used:
            raise errors.FailedPrecondition(f"image {ref} is used by a container")
        for r in image.references:
            self.refs.pop(r, None)
        del self.images[image.id]

    def prune_images(self, *, all_unused: bool = False) -> list[str]:
        removed = []
        for image in list(self.images.values()):
            if any(c.image_id == image.id for c in self.containers.values()):
                continue
            if image.references and not all_unused:
                continue
            for r in image.references:
                self.refs.pop(r, None)
            del self.images[image.id]
            removed.append(image.id)
        return removed

    def save_images(
        self,
        refs: Sequence[str],
        path: str,
        *,
        format: client.ArchiveFormat = "docker-archive",
    ) -> None:
        chosen: dict[str, tuple[client.ImageInfo, list[str]]] = {}
        for ref in refs:
            image = self.get_image(ref)
            names = chosen.setdefault(image.id, (image, []))[1]
            key = ref if ref.startswith("sha256:") else _image_key(ref)
            if key in image.references and key not in names:
                names.append(key)
        if not chosen:
            raise errors.InvalidSpec("name at least one image to save")
        self.archives[path] = [
            (image, self._image_content[image.id], tuple(names)) for image, names in chosen.values()
        ]
        with open(path, "w") as f:  # a file exists where the archive would be
            f.write(f"fake {format} archive of {len(chosen)} image(s)\n")

    def load_images(self, path: str) -> list[client.ImageInfo]:
        if path not in self.archives:
            raise errors.InvalidSpec(f"{path} is not an archive saved by this fake")
        loaded = []
        for image, data, names in self.archives[path]:
            info = self.add_image(names[0] if names else image.id, image.config, content=data)
            for name in names[1:]:
                info = self.tag_image(info.id, name)
            loaded.append(info)
        return loaded

    def login(self, registry: str, username: str, password: str) -> None:
        domain = registry.split("://", 1)[-1].split("/", 1)[0]
        users = self.registry_users.get(domain)
        if users is not None and users.get(username) != password:
            raise errors.FailedPrecondition(f"registry {domain} refused the credentials")
        self.logins[domain] = (username, password)

    def logout(self, registry: str) -> bool:
        domain = registry.split("://", 1)[-1].split("/", 1)[0]
        return self.logins.pop(domain, None) is not None

    # -- volumes -----------------------------------------------------------

    def list_volumes(self) -> list[client.VolumeInfo]:
        ordered = sorted(self.volumes.values(), key=lambda v: v.name)
        return [self._observed_volume(v) for v in ordered]

    def get_volume(self, name: str) -> client.VolumeInfo:
        return self._observed_volume(self._volume(name))

    def _observed_volume(self, info: client.VolumeInfo) -> client.VolumeInfo:
        return dataclasses.replace(
            info,
            users=tuple(self._volume_users(info)),
            problems=tuple(self.volume_problems.get(info.name, ())),
        )

    def _volume_users(self, info: client.VolumeInfo) -> list[str]:
        owner = info.anonymous_owner
        return sorted(
            c.name
            for c in self.containers.values()
            if (owner is not None and client.volume_owner(c.config) == owner)
            or any(m.type == "volume" and m.source == info.name for m in c.config.mounts)
        )

    def _anonymous_volumes(self, config: client.ContainerConfig, image: client.ImageInfo) -> None:
        """The volumes of mounts without a source and of the image's VOLUMEs, made or reused."""
        owner = client.volume_owner(config)
        covered = {os.path.normpath(m.target) for m in config.mounts}
        targets = [m.target for m in config.mounts if m.type == "volume" and not m.source]
        targets += [
            v for v in (os.path.normpath(p) for p in image.config.volumes) if v not in covered
        ]
        for target in targets:
            name = client.anonymous_volume_name(owner, target)
            existing = self.volumes.get(name)
            if existing is not None:
                if existing.anonymous_owner != owner:
                    raise errors.AlreadyExists(
                        f"volume {name!r} exists and is not the anonymous volume of {owner!r}"
                    )
                continue
            labels = {
                client.ANONYMOUS_VOLUME_LABEL: "true",
                client.VOLUME_OWNER_LABEL: owner,
                client.VOLUME_TARGET_LABEL: os.path.normpath(target),
            }
            self.create_volume(client.VolumeConfig(name=name, labels=client.frozen_map(labels)))

    def create_volume(self, config: client.VolumeConfig) -> client.VolumeInfo:
        self.calls.append(f"create_volume {config.name}")
        if config.name in self.volumes:
            raise errors.AlreadyExists(f"volume {config.name!r} already exists")
        info = client.VolumeInfo(
            name=config.name,
            driver=config.driver,
            options=config.options,
            labels=config.labels,
            annotations=config.annotations,
            mountpoint=f"/fake/volumes/{config.name}/_data",
            created_at=self.clock(),
        )
        self.volumes[config.name] = info
        return info

    def update_volume(
        self,
        name: str,
        labels: tuple[tuple[str, str], ...],
        annotations: tuple[tuple[str, str], ...],
    ) -> client.VolumeInfo:
        info = self._volume(name)
        info = dataclasses.replace(info, labels=labels, annotations=annotations)
        self.volumes[name] = info
        self.volume_problems.pop(name, None)  # the engine repairs a mount that went away
        return self.get_volume(name)

    def _volume(self, name: str) -> client.VolumeInfo:
        try:
            return self.volumes[name]
        except KeyError:
            raise errors.NotFound(f"volume {name!r} not found") from None

    def remove_volume(self, name: str) -> None:
        self.calls.append(f"remove_volume {name}")
        users = self._volume_users(self._volume(name))
        if users:
            raise errors.FailedPrecondition(f"volume {name!r} is in use by {', '.join(users)}")
        del self.volumes[name]
        self.volume_data.pop(name, None)
        self.volume_problems.pop(name, None)

    def prune_volumes(self, *, all_unused: bool = False) -> list[str]:
        removed = []
        for info in self.list_volumes():
            if info.users or (not all_unused and info.anonymous_owner is None):
                continue
            self.remove_volume(info.name)
            removed.append(info.name)
        return removed

    def backup_volume(self, name: str, out: BinaryIO, *, stop: bool = False) -> None:
        """The archive last restored into the volume, or an empty volume's archive."""
        self._volume(name)
        out.write(self.volume_data.get(name) or _EMPTY_VOLUME_TAR)

    def restore_volume(
        self, name: str, archive: BinaryIO, *, replace: bool = False
    ) -> client.VolumeInfo:
        data = archive.read()
        names = _tar_names(data, name)
        created = name not in self.volumes
        if created:
            self.create_volume(client.VolumeConfig(name=name))
        elif self.volume_data.get(name) and not replace:
            raise errors.FailedPrecondition(
                f"restore of volume {name}: the volume is not empty; restore --replace "
                "replaces its content"
            )
        self.volume_data[name] = data if names else b""
        return self.get_volume(name)

    # -- networks ----------------------------------------------------------

    def list_networks(self) -> list[client.NetworkInfo]:
        return sorted(self.networks.values(), key=lambda n: n.name)

    def create_network(self, config: client.NetworkConfig) -> client.NetworkInfo:
        self.calls.append(f"create_network {config.name}")
        if config.name in self.networks:
            raise errors.AlreadyExists(f"network {config.name!r} already exists")
        info = client.NetworkInfo(
            id=hashlib.sha256(config.name.encode()).hexdigest(),
            name=config.name,
            driver=config.driver,
            subnet=config.subnet,
            gateway=config.gateway,
            ip_range=config.ip_range,
            internal=config.internal,
            options=config.options,
            labels=config.labels,
            annotations=config.annotations,
            created_at=self.clock(),
        )
        self.networks[config.name] = info
        return info

    def update_network(
        self,
        name: str,
        labels: tuple[tuple[str, str], ...],
        annotations: tuple[tuple[str, str], ...],
    ) -> client.NetworkInfo:
        info = self._network(name)
        info = dataclasses.replace(info, labels=labels, annotations=annotations)
        self.networks[name] = info
        return info

    def _network(self, name: str) -> client.NetworkInfo:
        try:
            return self.networks[name]
        except KeyError:
            raise errors.NotFound(f"network {name!r} not found") from None

    def remove_network(self, name: str) -> None:
        self.calls.append(f"remove_network {name}")
        self._network(name)
        users = [
            c.name
            for c in self.containers.values()
            if any(a.network == name for a in c.config.networks)
        ]
        if users:
            raise errors.FailedPrecondition(f"network {name!r} is in use by {', '.join(users)}")
        del self.networks[name]

    _HOSTED = ("bridge", "macvlan", "overlay")

    def connect_network(
        self,
        network: str,
        container: str,
        *,
        aliases: tuple[str, ...] = (),
        ipv4_address: str | None = None,
    ) -> None:
        self.calls.append(f"connect_network {network} {container}")
        info = self.get_container(container)
        if network in ("host", "none") or any(
            a.network in ("host", "none") for a in info.config.networks
        ):
            raise errors.FailedPrecondition(
                f"container {info.name}: host and none networking cannot be combined "
                "with other networks"
            )
        net = self._network(network)
        if any(a.network == network for a in info.config.networks):
            raise errors.AlreadyExists(f"container {info.name} is already on network {network}")
        hosted = any(
            self.networks[a.network].driver in self._HOSTED
            for a in info.config.networks
            if a.network in self.networks
        )
        if info.status == "running" and not hosted and net.driver in self._HOSTED:
            raise errors.FailedPrecondition(
                f"container {info.name} runs without a network namespace of pyreconcile's"
            )
        attachment = client.NetworkAttachmentConfig(network, aliases, ipv4_address)
        config = dataclasses.replace(info.config, networks=(*info.config.networks, attachment))
        self.containers[info.name] = dataclasses.replace(info, config=config)

    def disconnect_network(self, network: str, container: str) -> None:
        self.calls.append(f"disconnect_network {network} {container}")
        info = self.get_container(container)
        if not any(a.network == network for a in info.config.networks):
            raise errors.NotFound(f"container {info.name} is not on network {network}")
        networks = tuple(a for a in info.config.networks if a.network != network)
        config = dataclasses.replace(info.config, networks=networks)
        self.containers[info.name] = dataclasses.replace(info, config=config)

    def list_published_ports(self) -> list[client.PortBinding]:
        """Running containers on a bridge network publish; ephemeral ports count up
        from 49153 in start order (the fake's stand-in for the kernel's choice)."""
        found = []
        for info in self.containers.values():
            bridged = any(
                a.network in self.networks
                and self.networks[a.network].driver == "bridge"
                and not self.networks[a.network].internal
                for a in info.config.networks
            )
            if info.status != "running" or not bridged:
                continue
            for i, p in enumerate(info.config.ports):
                found.append(
                    client.PortBinding(
                        container=info.name,
                        container_id=info.id,
                        container_port=p.container_port,
                        protocol=p.protocol,
                        host_ip=p.host_ip or "0.0.0.0",
                        host_port=p.host_port
                        or self._ephemeral.get((info.id, i))
                        or self._next_ephemeral(info.id, i),
                    )
                )
        return sorted(found, key=lambda b: (b.container, b.host_port, b.protocol))

    def _next_ephemeral(self, container_id: str, index: int) -> int:
        port = 49153 + len(self._ephemeral)
        self._ephemeral[(container_id, index)] = port
        return port

    # -- containers --------------------------------------------------------

    def list_containers(self) -> list[client.ContainerInfo]:
        return sorted(self.containers.values(), key=lambda c: c.name)

    def get_container(self, name_or_id: str) -> client.ContainerInfo:
        if name_or_id in self.containers:
            return self.containers[name_or_id]
        matches = [c for c in self.containers.values() if c.id.startswith(name_or_id)]
        if len(matches) == 1 and name_or_id:
            return matches[0]
        raise errors.NotFound(f"container {name_or_id!r} not found")

    def create_container(self, config: client.ContainerConfig) -> client.ContainerInfo:
        self.calls.append(f"create_container {config.name}")
        if config.name in self.containers:
            raise errors.AlreadyExists(f"container {config.name!r} already exists")
        image = self.get_image(config.image)
        for mount in config.mounts:
            if mount.type == "volume" and mount.source and mount.source not in self.volumes:
                raise errors.NotFound(f"volume {mount.source!r} not found")
            if (
                mount.type == "bind"
                and not mount.create_host_path
                and mount.source
                and not os.path.lexists(mount.source)
            ):
                raise errors.NotFound(f"bind source {mount.source} does not exist")
        self._anonymous_volumes(config, image)
        for attachment in config.networks:
            if attachment.network not in self.networks and attachment.network not in (
                "host",
                "none",
            ):
                raise errors.NotFound(f"network {attachment.network!r} not found")
        info = client.ContainerInfo(
            id=hashlib.sha256(f"{config.name}/{self.clock()}".encode()).hexdigest(),
            name=config.name,
            config=config,
            image_id=image.id,
            image_digest=image.digest,
            status="created",
            pid=None,
            exit_code=None,
            created_at=self.clock(),
            started_at=None,
            finished_at=None,
            restart_count=0,
            operator_stopped=False,
        )
        self.containers[config.name] = info
        self.logs[config.name] = []
        return info

    def start_container(self, name: str) -> client.ContainerInfo:
        self.calls.append(f"start_container {name}")
        info = self.get_container(name)
        if info.status == "running":
            return info
        info = dataclasses.replace(
            info,
            status="running",
            pid=next(self._pids),
            exit_code=None,
            started_at=self.clock(),
            finished_at=None,
            operator_stopped=False,
            health=self.health_at_start(info.config),
        )
        self.containers[info.name] = info
        return info

    def health_at_start(self, config: client.ContainerConfig) -> client.HealthInfo | None:
        """A started container with a check is healthy at once in the fake
        (``set_health`` changes that; ``unhealthy_images`` makes a new one fail)."""
        check = config.healthcheck
        if check is None or not check.test or check.test[0] == "NONE":
            return None
        status = "unhealthy" if config.image in self.unhealthy_images else "healthy"
        return client.HealthInfo(status=status)  # type: ignore[arg-type]

    def set_health(self, name: str, status: str) -> None:
        info = self.get_container(name)
        self.containers[info.name] = dataclasses.replace(
            info,
            health=client.HealthInfo(status=status),  # type: ignore[arg-type]
        )

    def stop_container(
        self, name: str, timeout: float | None = None, *, operator: bool = False
    ) -> client.ContainerInfo:
        self.calls.append(f"stop_container {name}")
        info = self.get_container(name)
        if info.status == "running":
            last = client.LastExit(code=143, finished_at=self.clock())
            info = dataclasses.replace(
                info, status="exited", health=None,
                pid=None, exit_code=143, finished_at=last.finished_at,
                last_exit=last,
            )  # fmt: skip
        if operator:
            info = dataclasses.replace(info, operator_stopped=True)
        self.containers[info.name] = info
        return info

    def wait_container(self, name: str, timeout: float | None = None) -> client.ContainerInfo:
        """The fake's containers never exit on their own: a running one times out."""
        info = self.get_container(name)
        if info.status in ("running", "restarting") and timeout is None:
            raise errors.FailedPrecondition(f"container {name!r} runs forever in the fake")
        return info

    def crash(self, name: str, exit_code: int = 1) -> None:
        """Make a running container exit on its own (a test's failure injection)."""
        info = self.get_container(name)
        last = client.LastExit(code=exit_code, finished_at=self.clock())
        self.containers[info.name] = dataclasses.replace(
            info, status="exited", health=None,
                pid=None, exit_code=exit_code, finished_at=last.finished_at,
            last_exit=last,
        )  # fmt: skip

    def update_container(self, name: str, update: client.ContainerUpdate) -> client.ContainerInfo:
        self.calls.append(f"update_container {name}")
        info = self.get_container(name)
        config = info.config
        if update.labels is not None:
            config = dataclasses.replace(config, labels=update.labels)
        if update.annotations is not None:
            config = dataclasses.replace(config, annotations=update.annotations)
        if update.restart_policy is not None:
            config = dataclasses.replace(config, restart_policy=update.restart_policy)
        if update.resources is not None:
            config = dataclasses.replace(config, resources=update.resources)
        info = dataclasses.replace(info, config=config)
        self.containers[info.name] = info
        return info

    def rename_container(self, name: str, new_name: str) -> client.ContainerInfo:
        info = self.get_container(name)
        if new_name in self.containers:
            raise errors.AlreadyExists(f"container name {new_name!r} is taken")
        del self.containers[info.name]
        info = dataclasses.replace(
            info, name=new_name, config=dataclasses.replace(info.config, name=new_name)
        )
        self.containers[new_name] = info
        self.logs[new_name] = self.logs.pop(name, [])
        return info

    def remove_container(self, name: str, *, force: bool = False) -> None:
        self.calls.append(f"remove_container {name}")
        info = self.get_container(name)
        if info.status in ("running", "restarting", "paused") and not force:
            raise errors.FailedPrecondition(
                f"container {name!r} is running: stop it first or remove it with force"
            )
        del self.containers[info.name]
        self.logs.pop(info.name, None)

    def container_logs(
        self,
        name: str,
        *,
        tail: int | None = None,
        follow: bool = False,
        since: float | str | None = None,
    ) -> Iterator[client.LogEntry]:
        info = self.get_container(name)
        entries = self.logs.get(info.name, [])
        if since is not None:
            try:
                since_ns = (
                    shim_logs.parse_time(since)
                    if isinstance(since, str)
                    else int(since * 1_000_000_000)
                )
            except ValueError as exc:
                raise errors.InvalidSpec(str(exc)) from None
            entries = [e for e in entries if shim_logs.parse_time(e.time) >= since_ns]
        if tail is not None:
            entries = entries[-tail:] if tail else []
        return iter(list(entries))

    def emit(self, name: str, text: str, stream: str = "stdout") -> None:
        """Make a container print ``text`` (a test's stand-in for its output)."""
        info = self.get_container(name)
        now = shim_logs.format_time(int(self.clock() * 1_000_000_000))
        kind: Literal["stdout", "stderr"] = "stderr" if stream == "stderr" else "stdout"
        self.logs.setdefault(info.name, []).append(client.LogEntry(now, kind, text))

    def kill_container(self, name: str, signal: str = "SIGKILL") -> client.ContainerInfo:
        """The signal ends the fake's process; its restart policy decides what follows."""
        self.calls.append(f"kill_container {name} {signal}")
        info = self.get_container(name)
        if info.status != "running":
            raise errors.FailedPrecondition(f"container {name!r} is not running")
        try:
            number = shim_protocol.parse_signal(signal)
        except ValueError as exc:
            raise errors.InvalidSpec(str(exc)) from None
        code = 128 + number
        policy = info.config.restart_policy.partition(":")[0]
        last = client.LastExit(code=code, finished_at=self.clock())
        if policy in ("always", "unless-stopped", "on-failure"):
            info = dataclasses.replace(
                info, pid=next(self._pids), started_at=self.clock(),
                restart_count=info.restart_count + 1, last_exit=last,
            )  # fmt: skip
        else:
            info = dataclasses.replace(
                info, status="exited", health=None,
                pid=None, exit_code=code, finished_at=last.finished_at,
                last_exit=last,
            )  # fmt: skip
        self.containers[info.name] = info
        return info

    def restart_container(self, name: str, timeout: float | None = None) -> client.ContainerInfo:
        self.calls.append(f"restart_container {name}")
        self.stop_container(name, timeout)
        return self.start_container(name)

    def exec_container(
        self, name: str, config: client.ExecConfig, *, stdio: tuple[int, int, int] | None = None
    ) -> client.ExecSession:
        """Runs nothing: writes ``exec_results[args]`` (exit code, output) to stdout."""
        self.calls.append(f"exec_container {name} {' '.join(config.args)}")
        info = self.get_container(name)
        if info.status != "running":
            raise errors.FailedPrecondition(
                f"container {name!r} is not running: start it before exec"
            )
        if not config.args:
            raise errors.InvalidSpec(f"exec in container {name!r}: give a command to run")
        code, output = self.exec_results.get(tuple(config.args), (0, ""))
        if output and stdio is not None and not config.tty:
            os.write(stdio[1], output.encode())
        return FakeExecSession(next(self._pids), code)

    def close(self) -> None:
        pass


class FakeExecSession:
    """An exec that has already finished (the fake runs nothing)."""

    def __init__(self, pid: int, exit_code: int) -> None:
        self.exec_id = f"fake-{pid}"
        self.pid = pid
        self.pty: int | None = None
        self._code = exit_code

    def wait(self, timeout: float | None = None) -> int:
        return self._code

    def resize(self, rows: int, cols: int) -> None:
        pass

    def close(self) -> None:
        pass
