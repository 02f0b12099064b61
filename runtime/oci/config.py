"""Load and validate an OCI bundle's ``config.json`` (runtime-spec 1.0.x).

The result is a tree of plain classes (no pydantic, no dataclasses: this is
imported by the shim under ``python -I -S`` and ``dataclasses`` alone costs
~12 ms to import). Everything that can be checked without touching the
container is checked here, so that ``create`` fails before forking with an
:class:`~runtime.errors.InvalidSpec` that names the field
(``process.capabilities.bounding[1]: unknown capability CAP_FOO``).

Choices:
- Unknown top-level properties are ignored, as the spec requires. Known
  features this runtime cannot apply (AppArmor/SELinux labels, Intel RDT,
  blkio/hugetlb/network/rdma limits) are errors, never silently dropped: a
  container must not run with less isolation than its config asked for.
- Without a new mount namespace (none listed: the caller's, as runc allows;
  or one joined by path) the rootfs is prepared in that namespace and entered
  with ``chroot`` — its mounts are visible there, and ``delete`` detaches them
  from the caller's namespace. Supported for conformance; engines should
  always ask for a new one.
- A new user namespace needs ``uidMappings`` and ``gidMappings`` (the caller
  writes them, as root, into ``/proc/<pid>/uid_map``: no newuidmap helper).
- Capability names the kernel does not know yet (above ``cap_last_cap``) are
  dropped later by the init; names nobody knows are errors (runc only warns).
- Relative ``root.path`` and bind sources are relative to the bundle.
"""

from __future__ import annotations

import os

from runtime import errors
from runtime.oci import config_process, config_resources, mountopts
from runtime.oci.config_process import Process, want
from runtime.oci.config_resources import DeviceRule, Resources, int_or_none
from runtime.shim import jsonio

TYPE_CHECKING = False
if TYPE_CHECKING:
    from runtime.oci import hooks, seccomp

__all__ = [
    "Device",
    "DeviceRule",
    "IdMap",
    "Mount",
    "Process",
    "Resources",
    "Spec",
    "load",
    "parse",
]

NAMESPACES = {
    "pid": "pid",
    "network": "net",
    "mount": "mnt",
    "ipc": "ipc",
    "uts": "uts",
    "cgroup": "cgroup",
    "user": "user",
    "time": "time",
}
_IPC_SYSCTLS = (
    "kernel.msgmax",
    "kernel.msgmnb",
    "kernel.msgmni",
    "kernel.sem",
    "kernel.shmall",
    "kernel.shmmax",
    "kernel.shmmni",
    "kernel.shm_rmid_forced",
)


class Mount:
    __slots__ = ("destination", "options", "source", "type")

    def __init__(self, destination: str, fstype: str, source: str, options: list[str]) -> None:
        self.destination = destination
        self.type = fstype
        self.source = source
        self.options = mountopts.parse(options, fstype)


class Device:
    """A node of ``linux.devices`` to create in the container's /dev."""

    __slots__ = ("file_mode", "gid", "major", "minor", "path", "type", "uid")

    def __init__(self) -> None:
        self.path = ""
        self.type = "c"
        self.major = 0
        self.minor = 0
        self.file_mode = 0o666
        self.uid = 0
        self.gid = 0


class IdMap:
    """One line of a uid_map/gid_map: container id, host id, count."""

    __slots__ = ("container_id", "host_id", "size")

    def __init__(self, container_id: int, host_id: int, size: int) -> None:
        self.container_id = container_id
        self.host_id = host_id
        self.size = size


class Spec:
    """A validated config.json. ``namespaces`` maps a type to a path or None (new)."""

    def __init__(self) -> None:
        self.oci_version = ""
        self.bundle = ""
        self.root_path = ""
        self.root_readonly = False
        self.hostname: str | None = None
        self.domainname: str | None = None
        self.process = Process()
        self.has_process = True
        self.mounts: list[Mount] = []
        self.namespaces: dict[str, str | None] = {}
        self.cgroups_path = ""
        self.resources = Resources()
        self.devices: list[Device] = []
        self.masked_paths: list[str] = []
        self.readonly_paths: list[str] = []
        self.sysctl: dict[str, str] = {}
        self.rootfs_propagation = mountopts.PROPAGATION["rslave"]
        self.annotations: dict[str, str] = {}
        self.uid_mappings: list[IdMap] = []
        self.gid_mappings: list[IdMap] = []
        self.time_offsets: dict[str, tuple[int, int]] = {}  # clock -> (secs, nanosecs)
        self.personality: int | None = None
        self.seccomp: seccomp.Profile | None = None
        self.hooks: dict[str, list[hooks.Hook]] = {}

    @property
    def private_mounts(self) -> bool:
        """A new mount namespace of its own (else: the caller's, or one joined by path)."""
        return "mount" in self.namespaces and self.namespaces["mount"] is None

    @property
    def new_userns(self) -> bool:
        return "user" in self.namespaces and self.namespaces["user"] is None


#: What a known seccomp section is replaced with before decoding (see :func:`load`):
#: a string no config.json can hold (NUL and a token of this process's).
_SENTINEL = "\0seccomp-known-" + os.urandom(8).hex()


def load(bundle: str) -> Spec:
    """Read ``bundle/config.json`` and validate it.

    When its ``linux.seccomp`` is, byte for byte, a section this process knows
    already (the default profile the shims' fork server warmed, as the engine
    writes it: :func:`runtime.oci.seccomp.known_in`), those bytes are swapped
    for a sentinel string before decoding and the known parsed profile is
    used: the same value, without decoding and checking ~10 KB of JSON again
    in every shim's helper. The sentinel must come out exactly at
    ``linux.seccomp``, else the file is decoded as it is.
    """
    path = os.path.join(bundle, "config.json")
    try:
        with open(path, "rb") as f:
            text = f.read()
        doc, known = _decode(text)
    except FileNotFoundError:
        raise errors.InvalidSpec(f"{path} does not exist: is {bundle} an OCI bundle?") from None
    except (OSError, ValueError) as exc:
        raise errors.InvalidSpec(f"cannot read {path}: {exc}") from None
    return parse(doc, os.path.abspath(bundle), known_seccomp=known)


def _decode(text: bytes) -> tuple[object, seccomp.Profile | None]:
    from runtime.oci import seccomp

    found = seccomp.known_in(text)
    if found is not None:
        raw, prof = found
        value = b'"seccomp":' + raw
        if text.count(value) == 1:
            sentinel = b'"seccomp":' + jsonio.dumps(_SENTINEL).encode()
            doc = jsonio.loads(text.replace(value, sentinel))
            linux = doc.get("linux") if isinstance(doc, dict) else None
            if isinstance(linux, dict) and linux.get("seccomp") == _SENTINEL:
                return doc, prof
    return jsonio.loads(text), None


def parse(doc: object, bundle: str, *, known_seccomp: seccomp.Profile | None = None) -> Spec:
    """Validate a decoded config.json; ``bundle`` anchors relative paths.
    ``known_seccomp``: the parsed profile ``linux.seccomp`` stands for (see :func:`load`)."""
    top = want(doc, dict, "config.json")
    spec = Spec()
    spec.bundle = bundle
    spec.oci_version = want(top.get("ociVersion", ""), str, "ociVersion")
    root = want(top.get("root"), dict, "root")
    rpath = want(root.get("path"), str, "root.path")
    if not rpath:
        raise errors.InvalidSpec("config.json: root.path must not be empty")
    spec.root_path = os.path.normpath(os.path.join(bundle, rpath))
    spec.root_readonly = want(root.get("readonly", False), bool, "root.readonly")
    spec.hostname = _opt_str(top, "hostname")
    spec.domainname = _opt_str(top, "domainname")
    spec.annotations = _str_map(top.get("annotations"), "annotations")
    if top.get("process") is None:
        spec.has_process = False  # OPTIONAL in the spec: create works, start refuses
        spec.process.cwd = "/"
    else:
        spec.process = config_process.parse(top.get("process"))
    spec.mounts = [
        _mount(m, f"mounts[{i}]", bundle)
        for i, m in enumerate(want(top.get("mounts", []), list, "mounts"))
    ]
    if top.get("hooks"):
        from runtime.oci import hooks

        spec.hooks = hooks.parse(top.get("hooks"))
    _linux(want(top.get("linux", {}), dict, "linux"), spec, known_seccomp)
    if spec.hostname is not None and "uts" not in spec.namespaces:
        raise errors.InvalidSpec(
            "config.json: hostname needs a private uts namespace: add {type: uts} to "
            "linux.namespaces"
        )
    _check_sysctls(spec)
    _check_userns(spec)
    return spec


def _opt_str(obj: dict[str, object], key: str) -> str | None:
    value = obj.get(key)
    return None if value is None else want(value, str, key)


def _str_map(value: object, where: str) -> dict[str, str]:
    out = {}
    for key, item in want(value if value is not None else {}, dict, where).items():
        out[key] = want(item, str, f"{where}.{key}")
    return out


def _abs_path(value: object, where: str) -> str:
    """An absolute path, normalised (``/dev/`` and ``//dev`` are ``/dev``)."""
    path = want(value, str, where)
    if not path.startswith("/"):
        raise errors.InvalidSpec(f"config.json: {where}: {path!r} must be an absolute path")
    return "/" + os.path.normpath(path).lstrip("/")


def _mount(value: object, where: str, bundle: str) -> Mount:
    m = want(value, dict, where)
    dest = _abs_path(m.get("destination"), f"{where}.destination")
    fstype = want(m.get("type", ""), str, f"{where}.type")
    source = want(m.get("source", ""), str, f"{where}.source")
    options = [
        want(o, str, f"{where}.options[{i}]")
        for i, o in enumerate(want(m.get("options", []), list, f"{where}.options"))
    ]
    mount = Mount(dest, fstype, source, options)
    if mount.options.bind:
        if not source:
            raise errors.InvalidSpec(f"config.json: {where}.source: a bind mount needs a source")
        mount.source = os.path.normpath(os.path.join(bundle, source))
    elif not fstype:
        raise errors.InvalidSpec(f"config.json: {where}.type: needed unless it is a bind mount")
    return mount


def _linux(
    linux: dict[str, object], spec: Spec, known_seccomp: seccomp.Profile | None = None
) -> None:
    for i, ns in enumerate(want(linux.get("namespaces", []), list, "linux.namespaces")):
        where = f"linux.namespaces[{i}]"
        entry = want(ns, dict, where)
        kind = want(entry.get("type"), str, f"{where}.type")
        if kind not in NAMESPACES:
            raise errors.InvalidSpec(f"config.json: {where}.type: unknown namespace type {kind!r}")
        if kind in spec.namespaces:
            raise errors.InvalidSpec(f"config.json: {where}: namespace {kind} is listed twice")
        path = entry.get("path")
        spec.namespaces[kind] = None if not path else _abs_path(path, f"{where}.path")
    spec.uid_mappings = _id_maps(linux.get("uidMappings"), "linux.uidMappings")
    spec.gid_mappings = _id_maps(linux.get("gidMappings"), "linux.gidMappings")
    spec.time_offsets = _time_offsets(linux.get("timeOffsets"))
    if known_seccomp is not None and linux.get("seccomp") == _SENTINEL:
        spec.seccomp = known_seccomp
    elif linux.get("seccomp") is not None:
        from runtime.oci import seccomp

        spec.seccomp = seccomp.parse_cached(linux.get("seccomp"))
    if linux.get("personality") is not None:
        spec.personality = _personality(linux.get("personality"))
    for key in ("intelRdt", "mountLabel"):
        if linux.get(key):
            raise errors.InvalidSpec(
                f"config.json: linux.{key} is not supported by pyreconcile-runc yet: remove it"
            )
    spec.cgroups_path = want(linux.get("cgroupsPath", ""), str, "linux.cgroupsPath")
    config_resources.parse(
        want(linux.get("resources", {}), dict, "linux.resources"), spec.resources
    )
    spec.devices = [
        _device(d, f"linux.devices[{i}]")
        for i, d in enumerate(want(linux.get("devices", []), list, "linux.devices"))
    ]
    for key, attr in (("maskedPaths", "masked_paths"), ("readonlyPaths", "readonly_paths")):
        items = want(linux.get(key, []), list, f"linux.{key}")
        setattr(spec, attr, [_abs_path(p, f"linux.{key}[{i}]") for i, p in enumerate(items)])
    spec.sysctl = _str_map(linux.get("sysctl"), "linux.sysctl")
    prop = linux.get("rootfsPropagation")
    if prop:
        word = want(prop, str, "linux.rootfsPropagation")
        if word not in mountopts.PROPAGATION:
            raise errors.InvalidSpec(
                f"config.json: linux.rootfsPropagation: unknown value {word!r}; use one of "
                + ", ".join(sorted(mountopts.PROPAGATION))
            )
        spec.rootfs_propagation = mountopts.PROPAGATION[word]


def _device(value: object, where: str) -> Device:
    d = want(value, dict, where)
    dev = Device()
    dev.path = _abs_path(d.get("path"), f"{where}.path")
    if not dev.path.startswith("/dev/"):
        raise errors.InvalidSpec(f"config.json: {where}.path: {dev.path!r} must be under /dev")
    dev.type = want(d.get("type"), str, f"{where}.type")
    if dev.type not in ("c", "b", "u", "p"):
        raise errors.InvalidSpec(f"config.json: {where}.type must be c, b, u or p")
    if dev.type != "p":
        dev.major = want(d.get("major"), int, f"{where}.major")
        dev.minor = want(d.get("minor"), int, f"{where}.minor")
    mode = int_or_none(d, "fileMode", where)
    dev.file_mode = 0o666 if mode is None else mode & 0o7777
    dev.uid = want(d.get("uid", 0), int, f"{where}.uid")
    dev.gid = want(d.get("gid", 0), int, f"{where}.gid")
    return dev


def _id_maps(value: object, where: str) -> list[IdMap]:
    out = []
    for i, item in enumerate(want(value if value is not None else [], list, where)):
        m = want(item, dict, f"{where}[{i}]")
        ids = [want(m.get(k), int, f"{where}[{i}].{k}") for k in ("containerID", "hostID", "size")]
        if ids[2] <= 0 or min(ids) < 0 or max(ids[0], ids[1]) + ids[2] > 2**32:
            raise errors.InvalidSpec(f"config.json: {where}[{i}]: ids out of range")
        out.append(IdMap(*ids))
    if len(out) > 340:
        raise errors.InvalidSpec(f"config.json: {where}: at most 340 ranges")
    return out


def _time_offsets(value: object) -> dict[str, tuple[int, int]]:
    out = {}
    for clock, item in want(value if value is not None else {}, dict, "linux.timeOffsets").items():
        if clock not in ("monotonic", "boottime"):
            raise errors.InvalidSpec(
                f"config.json: linux.timeOffsets.{clock}: use monotonic or boottime"
            )
        o = want(item, dict, f"linux.timeOffsets.{clock}")
        secs = want(o.get("secs", 0), int, f"linux.timeOffsets.{clock}.secs")
        nanos = want(o.get("nanosecs", 0), int, f"linux.timeOffsets.{clock}.nanosecs")
        if not 0 <= nanos < 1_000_000_000:
            raise errors.InvalidSpec(
                f"config.json: linux.timeOffsets.{clock}.nanosecs must be within 0..999999999"
            )
        out[clock] = (secs, nanos)
    return out


def _personality(value: object) -> int:
    p = want(value, dict, "linux.personality")
    domain = want(p.get("domain"), str, "linux.personality.domain")
    domains = {"LINUX": 0x0000, "LINUX32": 0x0008}
    if domain not in domains:
        raise errors.InvalidSpec("config.json: linux.personality.domain must be LINUX or LINUX32")
    if p.get("flags"):
        raise errors.InvalidSpec("config.json: linux.personality.flags are not supported")
    return domains[domain]


def _check_userns(spec: Spec) -> None:
    """Mappings need a new user namespace, and a new one needs mappings."""
    maps = spec.uid_mappings or spec.gid_mappings
    if maps and not spec.new_userns:
        raise errors.InvalidSpec(
            "config.json: linux.uidMappings/gidMappings need a new user namespace: add "
            "{type: user} (without a path) to linux.namespaces"
        )
    if spec.new_userns and not (spec.uid_mappings and spec.gid_mappings):
        raise errors.InvalidSpec(
            "config.json: a new user namespace needs linux.uidMappings and linux.gidMappings"
        )
    if spec.time_offsets and spec.namespaces.get("time", "") is not None:
        raise errors.InvalidSpec(
            "config.json: linux.timeOffsets need a new time namespace: add {type: time}"
        )


def _check_sysctls(spec: Spec) -> None:
    """Only namespaced sysctls, and only with the namespace that scopes them."""
    for key in spec.sysctl:
        if key in _IPC_SYSCTLS or key.startswith("fs.mqueue."):
            needed = "ipc"
        elif key in ("kernel.hostname", "kernel.domainname"):
            needed = "uts"
        elif key.startswith("net."):
            needed = "network"
        else:
            raise errors.InvalidSpec(
                f"config.json: linux.sysctl: {key} is not namespaced and cannot be set in a "
                "container"
            )
        if needed not in spec.namespaces:
            raise errors.InvalidSpec(
                f"config.json: linux.sysctl: {key} needs a {needed} namespace of the container's "
                f"own: add {{type: {needed}}} to linux.namespaces"
            )
