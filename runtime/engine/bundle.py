"""config.json for a container, from its image config and its ContainerConfig.

Docker's semantics, so that a Docker user gets what they expect:

- args: an Entrypoint given by the spec replaces the image's and drops the
  image's Cmd; a Command replaces the image's Cmd. Nothing to run is an error.
- env: the image's Env, then the spec's (same key: the spec wins); ``PATH``
  defaults to Docker's, ``HOSTNAME`` is set, ``HOME`` comes from /etc/passwd.
- user: ``name``, ``uid``, ``name:group`` or ``uid:gid`` resolved in the
  container's own /etc/passwd and /etc/group (read without following a
  symlink out of the rootfs); supplementary groups from /etc/group.
- capabilities, masked and read-only paths, and seccomp: Docker's defaults
  (the default seccomp profile is the builtin runtime's data,
  :func:`runtime.oci.seccomp.default_profile`, resolved for the capabilities
  and this host's architecture and kernel, as dockerd resolves its own).
- stop signal: the spec's, else the image's ``StopSignal``, else SIGTERM.
- ``init: true``: Debian's static ``tini`` (:data:`INIT_BINARY`) is bound
  read-only at :data:`INIT_PATH` and put in front of the args
  (``/sbin/docker-init -- args…``), as Docker does with ``docker-init``: PID 1
  then reaps orphaned zombies and forwards signals to the command.
- /etc/hostname, /etc/hosts and /etc/resolv.conf are files the engine writes
  in the container's directory and binds in, as Docker does.
"""

from __future__ import annotations

import dataclasses
import os
import resource
import stat
from typing import Any

from runtime import client, errors

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
DEFAULT_STOP_SIGNAL = "SIGTERM"
INIT_BINARY = "/usr/bin/tini-static"
INIT_PATH = "/sbin/docker-init"

DEFAULT_CAPABILITIES = (
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
)
MASKED_PATHS = (
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
)
READONLY_PATHS = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")

# Docker's default device cgroup allow list (after a deny-all): null, zero, full,
# random, urandom, tty, console, ptmx, pts, plus mknod of any char/block device.
DEFAULT_DEVICE_RULES: tuple[dict[str, Any], ...] = (
    {"allow": False, "access": "rwm"},
    {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
    {"allow": True, "type": "c", "major": 1, "minor": 5, "access": "rwm"},
    {"allow": True, "type": "c", "major": 1, "minor": 7, "access": "rwm"},
    {"allow": True, "type": "c", "major": 1, "minor": 8, "access": "rwm"},
    {"allow": True, "type": "c", "major": 1, "minor": 9, "access": "rwm"},
    {"allow": True, "type": "c", "major": 5, "minor": 0, "access": "rwm"},
    {"allow": True, "type": "c", "major": 5, "minor": 1, "access": "rwm"},
    {"allow": True, "type": "c", "major": 5, "minor": 2, "access": "rwm"},
    {"allow": True, "type": "c", "major": 136, "access": "rwm"},
    {"allow": True, "type": "c", "access": "m"},
    {"allow": True, "type": "b", "access": "m"},
)


@dataclasses.dataclass(frozen=True)
class ResolvedUser:
    uid: int
    gid: int
    additional_gids: tuple[int, ...]
    home: str


@dataclasses.dataclass(frozen=True)
class BundleInputs:
    """Everything config.json is made from; paths are host paths."""

    container_id: str
    config: client.ContainerConfig
    image: client.ImageConfig
    rootfs: str  # the mounted rootfs (read for /etc/passwd)
    cgroups_path: str
    etc_files: dict[str, str]  # container path (/etc/hosts…) -> host file to bind
    network_namespace: str | None  # None: a new one; "host": the host's; else a path to join
    # the container's volume, bind and tmpfs mounts as OCI mounts, resolved by
    # runtime.engine.volume_mounts (volumes mounted, subPaths staged), in order
    user_mounts: tuple[dict[str, Any], ...] = ()
    rootfs_propagation: str = "rprivate"  # rslave/rshared when a bind mount asks for it


def build_args(config: client.ContainerConfig, image: client.ImageConfig) -> list[str]:
    if config.entrypoint is not None:
        entrypoint = list(config.entrypoint)
        cmd = list(config.command) if config.command is not None else []
    else:
        entrypoint = list(image.entrypoint or ())
        cmd = list(config.command) if config.command is not None else list(image.cmd or ())
    args = entrypoint + cmd
    if not args:
        raise errors.InvalidSpec(
            f"container {config.name!r}: no command specified; "
            "the image has no Entrypoint or Cmd, so set command (or entrypoint)"
        )
    return args


def stop_signal(config: client.ContainerConfig, image: client.ImageConfig) -> str:
    """The signal that asks the container to stop: the spec's, the image's, or SIGTERM."""
    return config.stop_signal or image.stop_signal or DEFAULT_STOP_SIGNAL


def init_args(args: list[str], init_binary: str = INIT_BINARY) -> list[str]:
    """``args`` behind the init (``init: true``); FailedPrecondition without tini."""
    if not os.access(init_binary, os.X_OK):
        raise errors.FailedPrecondition(
            f"init: true needs {init_binary} on the host: install Debian's tini package "
            "(apt-get install tini), or set init: false"
        )
    return [INIT_PATH, "--", *args]


def build_env(
    config: client.ContainerConfig, image: client.ImageConfig, hostname: str, home: str
) -> list[str]:
    env: dict[str, str] = {}
    for item in image.env:
        key, _, value = item.partition("=")
        env[key] = value
    env.setdefault("PATH", DEFAULT_PATH)
    env["HOSTNAME"] = hostname
    for key, value in config.env:
        env[key] = value
    env.setdefault("HOME", home)
    return [f"{k}={v}" for k, v in env.items()]


def _open_in_root(rootfs: str, relpath: str) -> int | None:
    """An fd of a regular file inside rootfs, never following a symlink, or None."""
    parts = [p for p in relpath.split("/") if p]
    try:
        fd = os.open(rootfs, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | (0 if last else os.O_DIRECTORY)
            try:
                nfd = os.open(part, flags, dir_fd=fd)
            except OSError:
                return None
            os.close(fd)
            fd = nfd
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        result, fd = fd, -1
        return result
    finally:
        if fd >= 0:
            os.close(fd)


def _read_table(rootfs: str, relpath: str, limit: int = 4 << 20) -> list[list[str]]:
    fd = _open_in_root(rootfs, relpath)
    if fd is None:
        return []
    with os.fdopen(fd, "rb") as f:
        data = f.read(limit)
    rows = []
    for line in data.decode(errors="replace").splitlines():
        if line and not line.startswith("#"):
            rows.append(line.split(":"))
    return rows


def resolve_user(rootfs: str, user: str) -> ResolvedUser:
    """``user`` as ``name|uid[:group|gid]``, looked up in the container's files."""
    name, _, group = user.partition(":")
    passwd = [r for r in _read_table(rootfs, "etc/passwd") if len(r) >= 7]
    groups = [r for r in _read_table(rootfs, "etc/group") if len(r) >= 4]
    entry = next((r for r in passwd if r[0] == name), None)
    if entry is None and name.isdigit():
        entry = next((r for r in passwd if r[2] == name), None)
    if entry is not None:
        uid, gid, home, username = int(entry[2]), int(entry[3]), entry[5] or "/", entry[0]
    elif name.isdigit():
        uid, gid, home, username = int(name), 0, "/", ""
    else:
        raise errors.InvalidSpec(
            f"unable to find user {name}: no matching entries in the image's /etc/passwd"
        )
    if group:
        g = next((r for r in groups if r[0] == group), None)
        if g is not None:
            gid = int(g[2])
        elif group.isdigit():
            gid = int(group)
        else:
            raise errors.InvalidSpec(
                f"unable to find group {group}: no matching entries in the image's /etc/group"
            )
    extra = tuple(
        sorted({int(r[2]) for r in groups if username and username in r[3].split(",")} - {gid})
    )
    return ResolvedUser(uid, gid, extra, home)


def _mount(dest: str, kind: str, source: str, options: list[str]) -> dict[str, Any]:
    return {"destination": dest, "type": kind, "source": source, "options": options}


def default_mounts() -> list[dict[str, Any]]:
    return [
        _mount("/proc", "proc", "proc", ["nosuid", "noexec", "nodev"]),
        _mount("/dev", "tmpfs", "tmpfs", ["nosuid", "strictatime", "mode=755", "size=65536k"]),
        _mount(
            "/dev/pts",
            "devpts",
            "devpts",
            ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"],
        ),
        _mount(
            "/dev/shm", "tmpfs", "shm", ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]
        ),
        _mount("/dev/mqueue", "mqueue", "mqueue", ["nosuid", "noexec", "nodev"]),
        _mount("/sys", "sysfs", "sysfs", ["nosuid", "noexec", "nodev", "ro"]),
        _mount(
            "/sys/fs/cgroup", "cgroup", "cgroup", ["nosuid", "noexec", "nodev", "relatime", "ro"]
        ),
    ]


def build_config(inputs: BundleInputs) -> dict[str, Any]:
    """The OCI runtime config (config.json) as a dict."""
    config, image = inputs.config, inputs.image
    hostname = config.hostname or inputs.container_id[:12]
    user_spec = config.user or image.user
    user = (
        resolve_user(inputs.rootfs, user_spec)
        if user_spec
        else ResolvedUser(0, 0, (), _home_of(inputs.rootfs, 0))
    )
    args = build_args(config, image)
    if config.init:
        args = init_args(args)
    process = {
        "terminal": False,
        "user": {"uid": user.uid, "gid": user.gid, "additionalGids": list(user.additional_gids)},
        "args": args,
        "env": build_env(config, image, hostname, user.home),
        "cwd": config.working_dir or image.working_dir or "/",
        "capabilities": {
            name: list(DEFAULT_CAPABILITIES) for name in ("bounding", "effective", "permitted")
        },
        "rlimits": [nofile_limit()],
        "noNewPrivileges": False,
        "oomScoreAdj": 0,
    }
    namespaces: list[dict[str, str]] = [{"type": t} for t in ("pid", "ipc", "uts", "mount")]
    if inputs.network_namespace is None:
        namespaces.append({"type": "network"})
    elif inputs.network_namespace != "host":
        namespaces.append({"type": "network", "path": inputs.network_namespace})
    mounts = default_mounts()
    for dest, source in sorted(inputs.etc_files.items()):
        mounts.append(_mount(dest, "bind", source, ["rbind", "rprivate", "rw"]))
    mounts.extend(dict(m) for m in inputs.user_mounts)
    if config.init:
        mounts.append(_mount(INIT_PATH, "bind", INIT_BINARY, ["rbind", "rprivate", "ro"]))
    resources: dict[str, Any] = {"devices": [dict(r) for r in DEFAULT_DEVICE_RULES]}
    if config.resources.memory is not None:
        resources["memory"] = {"limit": config.resources.memory}
    if config.resources.cpus is not None:
        resources["cpu"] = {"quota": int(config.resources.cpus * 100000), "period": 100000}
    if config.resources.pids is not None:
        resources["pids"] = {"limit": config.resources.pids}
    return {
        "ociVersion": "1.0.2",
        "process": process,
        "root": {"path": inputs.rootfs, "readonly": False},
        "hostname": hostname,
        "mounts": mounts,
        "annotations": {"io.pyreconcile.container.name": config.name},
        "linux": {
            "namespaces": namespaces,
            "cgroupsPath": inputs.cgroups_path,
            "resources": resources,
            "maskedPaths": list(MASKED_PATHS),
            "readonlyPaths": list(READONLY_PATHS),
            "rootfsPropagation": inputs.rootfs_propagation,
            "seccomp": seccomp_profile(DEFAULT_CAPABILITIES),
        },
    }


_PROFILES: dict[tuple[str, ...], dict[str, Any]] = {}


def seccomp_profile(capabilities: tuple[str, ...]) -> dict[str, Any]:
    """Docker's default seccomp profile for a process with ``capabilities``.

    Resolved once per capability set and process (the data file is read and
    its ~400 rules filtered: ~0.5 ms a start otherwise). The result is a new
    dict whose lists are shared with the next call's: do not modify them.
    """
    profile = _PROFILES.get(capabilities)
    if profile is None:
        from runtime.oci import seccomp  # data and a pure resolver: no libseccomp call

        profile = _PROFILES[capabilities] = dict(seccomp.default_profile(list(capabilities)))
    return dict(profile)


def nofile_limit() -> dict[str, Any]:
    """RLIMIT_NOFILE as the engine has it, as Docker's containers inherit dockerd's.

    Raising a hard limit needs CAP_SYS_RESOURCE, which a host (or a sandbox)
    may not grant, so the container gets the engine's own hard limit.
    """
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = 1048576
    return {"type": "RLIMIT_NOFILE", "hard": hard, "soft": hard}


def _home_of(rootfs: str, uid: int) -> str:
    for row in _read_table(rootfs, "etc/passwd"):
        if len(row) >= 7 and row[2] == str(uid):
            return row[5] or "/"
    return "/root" if uid == 0 else "/"
