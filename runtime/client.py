"""The one facade through which the reconciler reaches the runtime.

``RuntimeClient`` is a small Protocol. It has two implementations that pass the
same contract tests (``tests/contract``): ``runtime.local.LocalRuntime``, the
real engine (content store, snapshots, SQLite metadata, shims, the OCI
runtime), and ``runtime.fake.FakeRuntime``, an in-memory stand-in for the
reconciler's unit tests.

The request types (``*Config``) say what to make; the record types (``*Info``)
are what was observed. Both are frozen dataclasses of plain values so that they
can be compared, hashed into plans and printed. Names here are runtime names:
the reconciler prefixes a container's manifest name with its stack.

Stdlib only: the shim imports parts of ``runtime`` with ``python -I -S``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import BinaryIO, Literal, Protocol

__all__ = [
    "ArchiveFormat",
    "ContainerConfig",
    "ContainerInfo",
    "ContainerStatus",
    "ContainerUpdate",
    "EndpointInfo",
    "ExecConfig",
    "ExecSession",
    "HealthInfo",
    "HealthResult",
    "HealthcheckConfig",
    "LastExit",
    "ImageConfig",
    "ImageInfo",
    "LogEntry",
    "MountConfig",
    "NetworkAttachmentConfig",
    "NetworkConfig",
    "NetworkInfo",
    "PortBinding",
    "PortConfig",
    "ProgressCallback",
    "ProgressEvent",
    "RemoteImage",
    "ResourcesConfig",
    "RuntimeClient",
    "VolumeConfig",
    "VolumeInfo",
    "ANONYMOUS_VOLUME_LABEL",
    "VOLUME_OWNER_LABEL",
    "VOLUME_TARGET_LABEL",
    "anonymous_volume_name",
    "frozen_map",
    "plain",
    "volume_owner",
]

ContainerStatus = Literal["created", "running", "paused", "restarting", "exited", "dead"]
"""Docker's container states. ``dead`` is a container whose shim vanished
without recording an exit (reported with exit code 137, as containerd does)."""


def frozen_map(items: Mapping[str, str] | None = None) -> tuple[tuple[str, str], ...]:
    """A mapping as a sorted tuple of pairs, hashable and order-independent."""
    return tuple(sorted((items or {}).items()))


def plain(value: object) -> object:
    """``dataclasses.asdict`` for these frozen values, without its deep copies
    (5x faster: a diff of 1000 containers digests 1000 configs): dataclasses
    become dicts of their fields, tuples and lists become lists (JSON arrays
    either way), dicts keep their keys; anything else is returned as it is."""
    kind = type(value)
    if kind in _LEAVES:
        return value
    if kind is tuple or kind is list:
        return [plain(item) for item in value]  # type: ignore[attr-defined]
    fields = _FIELDS.get(kind)
    if fields is None and dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = _FIELDS[kind] = tuple(f.name for f in dataclasses.fields(value))
    if fields is not None:
        return {name: plain(getattr(value, name)) for name in fields}
    if isinstance(value, tuple | list):
        return [plain(item) for item in value]
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    return value


_LEAVES = frozenset({str, int, float, bool, type(None)})


_FIELDS: dict[type, tuple[str, ...]] = {}


# ---------------------------------------------------------------------------
# Images


@dataclasses.dataclass(frozen=True)
class ImageConfig:
    """The parts of an image's config that a container inherits."""

    entrypoint: tuple[str, ...] | None = None
    cmd: tuple[str, ...] | None = None
    env: tuple[str, ...] = ()  # "KEY=value", in image order
    working_dir: str = ""
    user: str = ""
    stop_signal: str = ""
    labels: tuple[tuple[str, str], ...] = ()
    volumes: tuple[str, ...] = ()
    exposed_ports: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class ImageInfo:
    """An image in the local store."""

    id: str  # sha256 of the image config ("sha256:…"), Docker's ImageID
    digest: str  # sha256 of the manifest, the repo digest
    references: tuple[str, ...]  # normalised names that point at it
    config: ImageConfig
    size: int  # bytes of the layers as stored
    created_at: float
    annotations: tuple[tuple[str, str], ...] = ()


@dataclasses.dataclass(frozen=True)
class RemoteImage:
    """What a reference names in its registry now (``resolve_remote``)."""

    reference: str  # normalised
    digest: str  # what the tag points at: an index, or the manifest itself
    manifest_digest: str  # the manifest chosen for the platform
    image_id: str  # its config digest: equal to a local ImageInfo.id when in sync
    platform: str  # os/architecture[/variant] of the chosen manifest ("" if unknown)


ProgressAction = Literal[
    "resolved",  # id: the reference; detail: the manifest digest
    "exists",  # a blob already present (locally for a pull, remotely for a push)
    "downloading",
    "downloaded",
    "mounted",  # pushed by cross-repository mount
    "uploading",
    "uploaded",
    "unpacking",
    "done",  # id: the reference; detail: the image id (pull) or manifest digest (push)
]


@dataclasses.dataclass(frozen=True)
class ProgressEvent:
    """One step of a pull or push, for a progress display or ``--progress json``."""

    action: ProgressAction
    id: str  # a blob's digest, or the reference
    current: int = 0  # bytes done so far
    total: int | None = None  # bytes expected
    detail: str = ""


ProgressCallback = Callable[[ProgressEvent], None]
"""Called from worker threads too: keep it quick and thread-safe."""

ArchiveFormat = Literal["docker-archive", "oci-archive", "oci-dir"]


# ---------------------------------------------------------------------------
# Volumes and networks


@dataclasses.dataclass(frozen=True)
class VolumeConfig:
    name: str
    driver: str = "local"
    options: tuple[tuple[str, str], ...] = ()
    labels: tuple[tuple[str, str], ...] = ()
    annotations: tuple[tuple[str, str], ...] = ()


@dataclasses.dataclass(frozen=True)
class VolumeInfo:
    name: str
    driver: str
    options: tuple[tuple[str, str], ...]
    labels: tuple[tuple[str, str], ...]
    annotations: tuple[tuple[str, str], ...]
    mountpoint: str
    created_at: float
    # the containers that use it now (created or running): it cannot be removed meanwhile
    users: tuple[str, ...] = ()
    # what is wrong on the host (its mount gone after a reboot, its device missing):
    # drift, repaired by ``update_volume`` and by starting a container that uses it
    problems: tuple[str, ...] = ()

    @property
    def anonymous_owner(self) -> str | None:
        """The owner (a container's name, or its ``VOLUME_OWNER_LABEL``) of an
        anonymous volume; None for a named volume."""
        labels = dict(self.labels)
        if labels.get(ANONYMOUS_VOLUME_LABEL) != "true":
            return None
        return labels.get(VOLUME_OWNER_LABEL)


def volume_owner(config: ContainerConfig) -> str:
    """Whose anonymous volumes a container mounts: its ``VOLUME_OWNER_LABEL``, else its name."""
    return dict(config.labels).get(VOLUME_OWNER_LABEL) or config.name


def anonymous_volume_name(owner: str, target: str) -> str:
    """``<owner>.anon-<12 hex>``: the same owner and target, the same volume."""
    import hashlib  # here: the shim imports this module on its hot path
    import posixpath

    digest = hashlib.sha256(f"{owner}\0{posixpath.normpath(target)}".encode()).hexdigest()
    suffix = f".anon-{digest[:12]}"
    return owner[: 128 - len(suffix)] + suffix


ANONYMOUS_VOLUME_LABEL = "io.pyreconcile.anonymous"
"""``"true"`` on a volume the engine made for a mount without a source, or for an
image ``VOLUME``: named after its container and target, reused when a container
of the same name is created again, removed only when asked."""
VOLUME_OWNER_LABEL = "io.pyreconcile.volume-owner"
"""On an anonymous volume: the owner it belongs to. On a container: the owner its
anonymous volumes are named after and labelled with (default: the container's
name), so that the containers that succeed one another under a name (a
recreate, a start-first update's new container, a rename) keep the same ones."""
VOLUME_TARGET_LABEL = "io.pyreconcile.volume-target"
"""The path in the container an anonymous volume is mounted at."""


@dataclasses.dataclass(frozen=True)
class NetworkConfig:
    name: str
    driver: str = "bridge"
    subnet: str | None = None
    gateway: str | None = None
    ip_range: str | None = None
    internal: bool = False
    options: tuple[tuple[str, str], ...] = ()
    labels: tuple[tuple[str, str], ...] = ()
    annotations: tuple[tuple[str, str], ...] = ()


@dataclasses.dataclass(frozen=True)
class NetworkInfo:
    id: str
    name: str
    driver: str
    subnet: str | None
    gateway: str | None
    ip_range: str | None
    internal: bool
    options: tuple[tuple[str, str], ...]
    labels: tuple[tuple[str, str], ...]
    annotations: tuple[tuple[str, str], ...]
    created_at: float
    # the containers attached now (started ones: an attachment lives from start to exit)
    endpoints: tuple[EndpointInfo, ...] = ()
    # what is missing on the host (a bridge, a veth, an address, a firewall rule):
    # drift, repaired by ``update_network``
    problems: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class EndpointInfo:
    """A container's interface on a network."""

    container: str  # the container's name
    container_id: str
    interface: str  # eth0, eth1… inside the container
    ipv4_address: str | None
    prefixlen: int
    aliases: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class PortBinding:
    """A published port as bound on the host (``host_port`` chosen when none was asked)."""

    container: str  # the container's name
    container_id: str
    container_port: int
    protocol: Literal["tcp", "udp"]
    host_ip: str  # "0.0.0.0": every address of the host
    host_port: int


# ---------------------------------------------------------------------------
# Containers


@dataclasses.dataclass(frozen=True)
class MountConfig:
    """One mount of a container, with its source already resolved.

    ``type`` is ``volume`` (``source`` names a volume; none: an anonymous
    volume), ``bind`` (``source`` is an absolute host path) or ``tmpfs`` (no
    source).
    """

    type: Literal["volume", "bind", "tmpfs"]
    target: str
    source: str | None = None  # volume: None is an anonymous volume of the container
    read_only: bool = False
    sub_path: str | None = None
    size: int | None = None  # tmpfs bytes
    mode: int | None = None  # tmpfs mode
    no_copy: bool = False  # volume: do not fill an empty volume with the image's content
    create_host_path: bool = False  # bind: create a missing source directory
    propagation: str | None = None  # bind: rprivate (default), rslave, rshared, private…


@dataclasses.dataclass(frozen=True)
class PortConfig:
    container_port: int
    protocol: Literal["tcp", "udp"] = "tcp"
    host_port: int | None = None
    host_ip: str | None = None


@dataclasses.dataclass(frozen=True)
class NetworkAttachmentConfig:
    network: str
    aliases: tuple[str, ...] = ()
    ipv4_address: str | None = None


@dataclasses.dataclass(frozen=True)
class ResourcesConfig:
    memory: int | None = None  # bytes
    cpus: float | None = None
    pids: int | None = None


@dataclasses.dataclass(frozen=True)
class HealthcheckConfig:
    test: tuple[str, ...]
    interval: float = 30.0
    timeout: float = 30.0
    retries: int = 3
    start_period: float = 0.0
    start_interval: float = 5.0  # between checks during start_period


@dataclasses.dataclass(frozen=True)
class ContainerConfig:
    """What to create. ``None`` means "take the image's value"."""

    name: str
    image: str  # a reference or an image id
    entrypoint: tuple[str, ...] | None = None
    command: tuple[str, ...] | None = None
    env: tuple[tuple[str, str], ...] = ()  # merged over the image's Env
    working_dir: str | None = None
    user: str | None = None
    hostname: str | None = None
    labels: tuple[tuple[str, str], ...] = ()
    annotations: tuple[tuple[str, str], ...] = ()
    mounts: tuple[MountConfig, ...] = ()
    networks: tuple[NetworkAttachmentConfig, ...] = ()
    ports: tuple[PortConfig, ...] = ()
    resources: ResourcesConfig = ResourcesConfig()
    restart_policy: str = "no"  # no | always | unless-stopped | on-failure[:N]
    stop_signal: str | None = None
    stop_grace_period: float | None = None
    init: bool = False
    healthcheck: HealthcheckConfig | None = None
    oci_runtime: str | None = None  # None: the builtin runtime; else a runc-compatible binary


@dataclasses.dataclass(frozen=True)
class ContainerUpdate:
    """The fields that change in place, without a recreate. ``None``: unchanged."""

    labels: tuple[tuple[str, str], ...] | None = None
    annotations: tuple[tuple[str, str], ...] | None = None
    restart_policy: str | None = None
    resources: ResourcesConfig | None = None


@dataclasses.dataclass(frozen=True)
class LastExit:
    """How the latest finished run of a container ended."""

    code: int  # the exit status, or 128+signal
    finished_at: float | None
    oom_killed: bool = False  # the kernel's OOM killer struck during that run
    lost: bool = False  # its shim died without recording it: 137 is a stand-in
    error: str | None = None  # why it was lost, or why a restart failed


@dataclasses.dataclass(frozen=True)
class HealthResult:
    start: float
    end: float
    exit_code: int  # -1: the check timed out
    output: str  # the first 4 KiB


@dataclasses.dataclass(frozen=True)
class HealthInfo:
    """What the container's health check says now (its shim runs the check)."""

    status: Literal["starting", "healthy", "unhealthy"]
    failing_streak: int = 0
    log: tuple[HealthResult, ...] = ()  # the last results, oldest first


@dataclasses.dataclass(frozen=True)
class ContainerInfo:
    """A container as observed now (re-read on every call, never cached)."""

    id: str
    name: str
    config: ContainerConfig
    image_id: str
    image_digest: str
    status: ContainerStatus
    pid: int | None
    exit_code: int | None
    created_at: float
    started_at: float | None
    finished_at: float | None
    restart_count: int
    operator_stopped: bool  # stopped by `pyreconcile stop`: self-heal leaves it alone
    last_exit: LastExit | None = None  # the latest run that ended (kept while it runs again)
    health: HealthInfo | None = None  # None: no check, or not running

    @property
    def labels(self) -> dict[str, str]:
        return dict(self.config.labels)

    @property
    def annotations(self) -> dict[str, str]:
        return dict(self.config.annotations)


@dataclasses.dataclass(frozen=True)
class LogEntry:
    time: str  # RFC 3339 with nanoseconds, UTC
    stream: Literal["stdout", "stderr"]
    log: str


@dataclasses.dataclass(frozen=True)
class ExecConfig:
    """A process to run in a running container (``exec``). ``None``: the container's."""

    args: tuple[str, ...]
    env: tuple[tuple[str, str], ...] = ()  # merged over the container's
    working_dir: str | None = None
    user: str | None = None  # name|uid[:group|gid], looked up in the container's files
    tty: bool = False


class ExecSession(Protocol):
    """A running ``exec``: wait for its exit code; with a TTY, talk through ``pty``."""

    exec_id: str
    pid: int  # host pid
    pty: int | None  # the pty master (tty only): read output from it, write input to it

    def wait(self, timeout: float | None = None) -> int:
        """The exit code (128+signal when killed); Unavailable if ``timeout`` passes."""
        ...

    def resize(self, rows: int, cols: int) -> None: ...
    def close(self) -> None: ...


class RuntimeClient(Protocol):
    """Everything the reconciler may ask of the runtime."""

    # images
    def list_images(self) -> list[ImageInfo]: ...
    def get_image(self, ref: str) -> ImageInfo: ...
    def import_image(
        self, path: str, reference: str | None = None, annotations: Mapping[str, str] | None = None
    ) -> ImageInfo: ...
    def pull_image(
        self,
        reference: str,
        *,
        platform: str | None = None,
        progress: ProgressCallback | None = None,
    ) -> ImageInfo: ...
    def resolve_remote(self, reference: str, *, platform: str | None = None) -> RemoteImage: ...
    def push_image(
        self,
        ref: str,
        destination: str | None = None,
        *,
        progress: ProgressCallback | None = None,
    ) -> str: ...
    def tag_image(self, source: str, target: str) -> ImageInfo: ...
    def remove_image(self, ref: str) -> None: ...
    def prune_images(self, *, all_unused: bool = False) -> list[str]: ...
    def save_images(
        self, refs: Sequence[str], path: str, *, format: ArchiveFormat = "docker-archive"
    ) -> None: ...
    def load_images(self, path: str) -> list[ImageInfo]: ...
    def login(self, registry: str, username: str, password: str) -> None: ...
    def logout(self, registry: str) -> bool: ...

    # volumes
    def list_volumes(self) -> list[VolumeInfo]: ...
    def create_volume(self, config: VolumeConfig) -> VolumeInfo: ...
    def update_volume(
        self,
        name: str,
        labels: tuple[tuple[str, str], ...],
        annotations: tuple[tuple[str, str], ...],
    ) -> VolumeInfo: ...
    def remove_volume(self, name: str) -> None: ...
    def get_volume(self, name: str) -> VolumeInfo: ...
    def prune_volumes(self, *, all_unused: bool = False) -> list[str]:
        """Remove unused anonymous volumes (with ``all_unused``: every unused volume);
        the names removed."""
        ...

    def backup_volume(self, name: str, out: BinaryIO, *, stop: bool = False) -> None:
        """Write the volume's content to ``out`` as a tar (owners, modes, xattrs,
        hardlinks). Running containers that use it are paused for the copy, or
        stopped and started again with ``stop``."""
        ...

    def restore_volume(self, name: str, archive: BinaryIO, *, replace: bool = False) -> VolumeInfo:
        """Fill the volume (created when missing) from a tar made by ``backup_volume``.
        A volume that holds data is only replaced with ``replace``; containers that
        use it are stopped for the swap and started again."""
        ...

    # networks
    def list_networks(self) -> list[NetworkInfo]: ...
    def create_network(self, config: NetworkConfig) -> NetworkInfo: ...
    def update_network(
        self,
        name: str,
        labels: tuple[tuple[str, str], ...],
        annotations: tuple[tuple[str, str], ...],
    ) -> NetworkInfo: ...
    def remove_network(self, name: str) -> None: ...
    def connect_network(
        self,
        network: str,
        container: str,
        *,
        aliases: tuple[str, ...] = (),
        ipv4_address: str | None = None,
    ) -> None:
        """Add ``network`` to a container's networks (a running one gets the interface now)."""
        ...

    def disconnect_network(self, network: str, container: str) -> None:
        """Remove ``network`` from a container's networks (and its interface, if running)."""
        ...

    def list_published_ports(self) -> list[PortBinding]:
        """The ports published now, with the host ports chosen for them."""
        ...

    # containers
    def list_containers(self) -> list[ContainerInfo]: ...
    def get_container(self, name_or_id: str) -> ContainerInfo: ...
    def create_container(self, config: ContainerConfig) -> ContainerInfo: ...
    def start_container(self, name: str) -> ContainerInfo: ...
    def stop_container(
        self, name: str, timeout: float | None = None, *, operator: bool = False
    ) -> ContainerInfo: ...
    def wait_container(self, name: str, timeout: float | None = None) -> ContainerInfo: ...
    def update_container(self, name: str, update: ContainerUpdate) -> ContainerInfo: ...
    def remove_container(self, name: str, *, force: bool = False) -> None: ...
    def rename_container(self, name: str, new_name: str) -> ContainerInfo: ...
    def container_logs(
        self,
        name: str,
        *,
        tail: int | None = None,
        follow: bool = False,
        since: float | str | None = None,
    ) -> Iterator[LogEntry]: ...
    def kill_container(self, name: str, signal: str = "SIGKILL") -> ContainerInfo: ...
    def restart_container(self, name: str, timeout: float | None = None) -> ContainerInfo: ...
    def exec_container(
        self, name: str, config: ExecConfig, *, stdio: tuple[int, int, int] | None = None
    ) -> ExecSession: ...

    def close(self) -> None: ...


def open_local(
    root: str | None = None, run_root: str | None = None, cgroup_parent: str | None = None
) -> RuntimeClient:
    """The real engine on this host (imported lazily: the fake needs none of it).

    Flags first, then ``PYRECONCILE_ROOT`` / ``PYRECONCILE_RUN_ROOT`` /
    ``PYRECONCILE_CGROUP_PARENT``, then the defaults of ``runtime.engine.layout``.
    """
    import runtime.local
    from runtime.engine import layout

    return runtime.local.LocalRuntime(layout.Layout.from_env(root, run_root, cgroup_parent))
