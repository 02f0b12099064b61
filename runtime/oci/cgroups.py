"""A container's cgroup: create it, apply limits, join it, kill what is in it,
remove it — on cgroup v1 (with or without the hybrid ``unified`` mount) and on
pure cgroup v2.

Where the hierarchies are is read from ``/proc/self/mountinfo``, not assumed
(controllers may be co-mounted, e.g. ``cpu,cpuacct``). ``linux.cgroupsPath``
is taken relative to each hierarchy's root whether or not it starts with
``/`` (so ``/pyreconcile-x/<id>`` is ``/sys/fs/cgroup/memory/pyreconcile-x/<id>``
on v1). Missing parents are created; delete removes only the container's own
directory and leaves the (shared) parent, which other containers may be using.

v1 joins ``memory cpu cpuacct pids devices freezer`` (``cpuset`` only when
the config sets ``cpus``/``mems``: its new directories start empty and must be
filled from the parent's before they take tasks; never ``blkio`` or
``name=systemd``) and the hybrid ``unified`` v2 tree, which is then the one
used to list the container's processes. v1 gets a devices-cgroup allow list
(deny all, then the config's rules and the runtime's default nodes); pure v2
gets the same rules as an eBPF program attached to the container's cgroup
(:mod:`runtime.oci.devicefilter`). On a hybrid layout the v1 devices
controller is the one in force and no program is attached (it would cost a
BPF load on every create for a second, identical check). Raises
``runtime.errors`` categories.
"""

from __future__ import annotations

import errno
import os
import time

from runtime import errors
from runtime.oci import config

__all__ = [
    "Cgroup",
    "DEFAULT_DEVICE_RULES",
    "V1_CONTROLLERS",
    "discover",
    "join_fds",
    "kill_all",
    "oom_counter",
    "pids",
    "plan",
    "remove",
    "v2_dir",
]

_SIGKILL = 9  # not signal.SIGKILL: the signal module (enum) costs ~4 ms to import

V1_CONTROLLERS = ("memory", "cpu", "cpuacct", "pids", "devices", "freezer")
_V2_CONTROLLERS = ("cpu", "memory", "pids")

#: The nodes every container may use (those the init creates, plus ptys and
#: mknod of anything; using a node still needs an allow rule).
DEFAULT_DEVICE_RULES = (
    config.DeviceRule(True, "c", -1, -1, "m"),
    config.DeviceRule(True, "b", -1, -1, "m"),
    config.DeviceRule(True, "c", 1, 3, "rwm"),  # null
    config.DeviceRule(True, "c", 1, 5, "rwm"),  # zero
    config.DeviceRule(True, "c", 1, 7, "rwm"),  # full
    config.DeviceRule(True, "c", 1, 8, "rwm"),  # random
    config.DeviceRule(True, "c", 1, 9, "rwm"),  # urandom
    config.DeviceRule(True, "c", 5, 0, "rwm"),  # tty
    config.DeviceRule(True, "c", 5, 2, "rwm"),  # ptmx
    config.DeviceRule(True, "c", 136, -1, "rwm"),  # /dev/pts/*
)


class Hierarchies:
    """The cgroup mounts of this host: ``v2`` (a single tree) or v1 controllers."""

    def __init__(self) -> None:
        self.v2: str | None = None  # mount point when /sys/fs/cgroup is pure v2
        self.unified: str | None = None  # the hybrid v2 mount next to v1 controllers
        self.v1: dict[str, str] = {}  # controller -> mount point


class Cgroup:
    """The directories of one container, each with the controller it is for.

    ``entries`` are ``(kind, mount point, directory)``; kind is a v1
    controller name, ``unified`` (hybrid v2 tree) or ``v2``. Co-mounted
    controllers share a directory.
    """

    def __init__(self, entries: list[tuple[str, str, str]]) -> None:
        self.entries = entries

    @property
    def is_v2(self) -> bool:
        return self.entries[0][0] == "v2"

    @property
    def dirs(self) -> list[str]:
        """Each directory once, the one to list processes from first."""
        return list(dict.fromkeys(d for _, _, d in self.entries))

    def hierarchies(self) -> list[tuple[str, str]]:
        """(name of the hierarchy's mount point, directory) once per hierarchy:
        what the container sees under /sys/fs/cgroup on v1."""
        seen: dict[str, str] = {}
        for _, point, d in self.entries:
            seen.setdefault(d, os.path.basename(point))
        return [(name, d) for d, name in seen.items()]

    def dir_for(self, kind: str) -> str | None:
        for k, _, d in self.entries:
            if k == kind:
                return d
        return None


def discover(mountinfo: str = "/proc/self/mountinfo") -> Hierarchies:
    found = Hierarchies()
    with open(mountinfo) as f:
        for line in f:
            left, _, right = line.partition(" - ")
            fstype, _, super_opts = [*right.split(), "", "", ""][:3]
            point = left.split()[4].replace("\\040", " ")
            if fstype == "cgroup2":
                if point == "/sys/fs/cgroup":
                    found.v2 = point
                elif found.unified is None:
                    found.unified = point
            elif fstype == "cgroup":
                for opt in super_opts.split(","):
                    if (opt in V1_CONTROLLERS or opt == "cpuset") and opt not in found.v1:
                        found.v1[opt] = point
    if found.v2 is None and not found.v1 and found.unified is not None:
        found.v2, found.unified = found.unified, None  # pure v2 mounted elsewhere
    return found


def plan(hier: Hierarchies, cgroups_path: str, container_id: str, cpuset: bool = False) -> Cgroup:
    """The directories a container with this ``linux.cgroupsPath`` uses (no I/O);
    ``cpuset``: join the v1 cpuset hierarchy too."""
    rel = (cgroups_path or container_id).strip("/")
    if not rel or ".." in rel.split("/"):
        raise errors.InvalidSpec(
            f"config.json: linux.cgroupsPath {cgroups_path!r} must name a cgroup below the root"
        )
    if hier.v2 is not None:
        return Cgroup([("v2", hier.v2, os.path.join(hier.v2, rel))])
    entries = []
    if hier.unified is not None:
        entries.append(("unified", hier.unified, os.path.join(hier.unified, rel)))
    for ctrl in (*V1_CONTROLLERS, "cpuset") if cpuset else V1_CONTROLLERS:
        if ctrl in hier.v1:
            entries.append((ctrl, hier.v1[ctrl], os.path.join(hier.v1[ctrl], rel)))
    if not entries:
        raise errors.Unavailable("no cgroup hierarchy is mounted under /sys/fs/cgroup")
    return Cgroup(entries)


def ensure(cg: Cgroup, res: config.Resources, devices: list[config.Device] | None = None) -> None:
    """Create the directories and apply ``res``; ``devices`` (``linux.devices``)
    are allowed in the devices cgroup too. Idempotent."""
    cpuset = res.cpu_cpus is not None or res.cpu_mems is not None
    for kind, point, d in cg.entries:
        with errors.map_os_errors(f"create cgroup {d}"):
            if kind == "v2":
                _enable_v2_controllers(point, d, cpuset)
            elif kind == "cpuset":
                _make_cpuset_dirs(point, d)
            os.makedirs(d, mode=0o755, exist_ok=True)
    if cg.is_v2:
        _apply_v2(cg.dirs[0], res)  # devices: runtime.oci.devicefilter, by create
    else:
        _apply_v1(cg, res, device_rules(res.devices, devices or []))


def _make_cpuset_dirs(mount: str, leaf: str) -> None:
    """Create the v1 cpuset directories down to ``leaf``, each new one given its
    parent's cpus and mems (a new cpuset is empty and refuses tasks)."""
    here = mount
    for part in os.path.relpath(leaf, mount).split("/"):
        parent, here = here, os.path.join(here, part)
        try:
            os.mkdir(here, 0o755)
        except FileExistsError:
            continue
        for name in ("cpuset.cpus", "cpuset.mems"):
            with open(os.path.join(parent, name)) as f:
                _write(here, name, f.read().strip())


def _enable_v2_controllers(mount: str, leaf: str, cpuset: bool = False) -> None:
    """Create the ancestors of ``leaf`` and delegate cpu/memory/pids (and cpuset
    when asked) down to it."""
    with open(os.path.join(mount, "cgroup.controllers")) as f:
        available = set(f.read().split())
    names = (*_V2_CONTROLLERS, "cpuset") if cpuset else _V2_CONTROLLERS
    wanted = " ".join(f"+{c}" for c in names if c in available)
    parts = os.path.relpath(leaf, mount).split("/")
    here = mount
    for part in parts:
        if wanted:
            _write(here, "cgroup.subtree_control", wanted)
        here = os.path.join(here, part)
        os.makedirs(here, mode=0o755, exist_ok=True)


def _apply_v2(d: str, res: config.Resources) -> None:
    if res.memory_limit is not None:
        _write(d, "memory.max", _v2_max(res.memory_limit))
    if res.memory_reservation is not None:
        _write(d, "memory.low", _v2_max(res.memory_reservation))
    if res.memory_swap is not None:
        swap = res.memory_swap
        if swap > 0 and res.memory_limit is not None and res.memory_limit > 0:
            swap = max(swap - res.memory_limit, 0)  # OCI swap is memory+swap; v2 is swap only
        _write(d, "memory.swap.max", _v2_max(swap))
    if res.cpu_shares is not None:
        weight = 1 + ((res.cpu_shares - 2) * 9999) // 262142
        _write(d, "cpu.weight", str(min(max(weight, 1), 10000)))
    if res.cpu_quota is not None or res.cpu_period is not None:
        quota = "max" if res.cpu_quota is None or res.cpu_quota <= 0 else str(res.cpu_quota)
        _write(d, "cpu.max", f"{quota} {res.cpu_period or 100000}")
    if res.pids_limit is not None:
        _write(d, "pids.max", "max" if res.pids_limit <= 0 else str(res.pids_limit))
    if res.cpu_cpus is not None:
        _write(d, "cpuset.cpus", res.cpu_cpus)
    if res.cpu_mems is not None:
        _write(d, "cpuset.mems", res.cpu_mems)


def device_rules(
    configured: list[config.DeviceRule], devices: list[config.Device]
) -> list[config.DeviceRule]:
    """The devices-cgroup rules in the order they are written: the config's
    (``runc spec`` starts with deny-all), then the default nodes, then an
    allow rule for each node of ``linux.devices`` (as runc does)."""
    rules = [*configured, *DEFAULT_DEVICE_RULES]
    for d in devices:
        if d.type != "p":  # a fifo needs no device access
            kind = "b" if d.type == "b" else "c"
            rules.append(config.DeviceRule(True, kind, d.major, d.minor, "rwm"))
    return rules


def _apply_v1(cg: Cgroup, res: config.Resources, rules: list[config.DeviceRule]) -> None:
    mem = cg.dir_for("memory")
    _apply_v1_memory_extras(mem, res)
    if res.memory_limit is not None or res.memory_reservation is not None or res.memory_swap:
        mem = _need(mem, "memory", "linux.resources.memory")
        if res.memory_limit is not None:
            _write(mem, "memory.limit_in_bytes", str(res.memory_limit))
        if res.memory_reservation is not None:
            _write(mem, "memory.soft_limit_in_bytes", str(res.memory_reservation))
        if res.memory_swap is not None:
            if not os.path.exists(os.path.join(mem, "memory.memsw.limit_in_bytes")):
                raise errors.Unavailable(
                    "linux.resources.memory.swap needs swap accounting, which this kernel has "
                    "off (boot with swapaccount=1) — or remove the swap limit"
                )
            _write(mem, "memory.memsw.limit_in_bytes", str(res.memory_swap))
    if res.cpu_shares is not None or res.cpu_quota is not None or res.cpu_period is not None:
        cpu = _need(cg.dir_for("cpu"), "cpu", "linux.resources.cpu")
        if res.cpu_shares is not None:
            _write(cpu, "cpu.shares", str(res.cpu_shares))
        if res.cpu_period is not None:
            _write(cpu, "cpu.cfs_period_us", str(res.cpu_period))
        if res.cpu_quota is not None:
            _write(cpu, "cpu.cfs_quota_us", str(res.cpu_quota if res.cpu_quota > 0 else -1))
    if res.pids_limit is not None:
        pid_dir = _need(cg.dir_for("pids"), "pids", "linux.resources.pids")
        _write(pid_dir, "pids.max", "max" if res.pids_limit <= 0 else str(res.pids_limit))
    if res.cpu_cpus is not None or res.cpu_mems is not None:
        cs = _need(cg.dir_for("cpuset"), "cpuset", "linux.resources.cpu.cpus")
        if res.cpu_cpus is not None:
            _write(cs, "cpuset.cpus", res.cpu_cpus)
        if res.cpu_mems is not None:
            _write(cs, "cpuset.mems", res.cpu_mems)
    dev = cg.dir_for("devices")
    if dev is not None:
        _write_device_rules(dev, rules)


def _write_device_rules(dev: str, rules: list[config.DeviceRule]) -> None:
    """Deny all, then ``rules`` in order — each one only once: a rule written
    again before any rule of the other kind changes nothing (the config's
    deny-all repeats ours, and its allow list the default one)."""
    _write(dev, "devices.deny", "a")
    since_other = {False: {"a"}, True: set[str]()}  # lines written since the other kind
    for rule in rules:
        if rule.type == "a":
            line = "a"
        else:
            major = "*" if rule.major < 0 else str(rule.major)
            minor = "*" if rule.minor < 0 else str(rule.minor)
            line = f"{rule.type} {major}:{minor} {rule.access}"
        if line in since_other[rule.allow]:
            continue
        _write(dev, "devices.allow" if rule.allow else "devices.deny", line)
        since_other[rule.allow].add(line)
        since_other[not rule.allow].clear()


def _apply_v1_memory_extras(mem: str | None, res: config.Resources) -> None:
    """swappiness, the OOM killer switch, and the deprecated kernel memory
    limits — the latter only where this kernel still has the files (Linux 6.x
    dropped kmem limits; runc ignores them too)."""
    extras = res.memory_swappiness is not None or res.oom_kill_disable
    if not extras and res.memory_kernel is None and res.memory_kernel_tcp is None:
        return
    if extras:
        mem = _need(mem, "memory", "linux.resources.memory")
        if res.memory_swappiness is not None:
            _write(mem, "memory.swappiness", str(res.memory_swappiness))
        if res.oom_kill_disable:
            _write(mem, "memory.oom_control", "1")
    if mem is None:
        return
    for name, value in (
        ("memory.kmem.limit_in_bytes", res.memory_kernel),
        ("memory.kmem.tcp.limit_in_bytes", res.memory_kernel_tcp),
    ):
        if value is not None and os.path.exists(os.path.join(mem, name)):
            try:
                _write(mem, name, str(value))
            except errors.Unavailable:
                pass  # EOPNOTSUPP: the file is kept for compatibility, the limit is gone


def _need(d: str | None, controller: str, field: str) -> str:
    if d is None:
        raise errors.Unavailable(
            f"config.json: {field} needs the {controller} cgroup controller, which is not "
            "mounted on this host"
        )
    return d


def _v2_max(value: int) -> str:
    return "max" if value < 0 else str(value)


def write(d: str, name: str, value: str) -> None:
    """Write ``value`` to the control file ``d/name`` (errors mapped)."""
    _write(d, name, value)


def _write(d: str, name: str, value: str) -> None:
    path = os.path.join(d, name)
    with errors.map_os_errors(f"write {value!r} to {path}"):
        fd = os.open(path, os.O_WRONLY | os.O_TRUNC | os.O_CLOEXEC)
        try:
            os.write(fd, value.encode())
        finally:
            os.close(fd)


def freezer_of(cg: Cgroup) -> str:
    """The directory whose freezer pauses the container: v1 ``freezer``, else
    the v2 one (``cgroup.freeze``, Linux 5.2); "" when there is none."""
    for kind in ("freezer", "v2", "unified"):
        d = cg.dir_for(kind)
        if d is not None:
            return d
    return ""


def v2_dir(cg: Cgroup) -> str | None:
    """The container's directory in the cgroup v2 tree (pure v2 or the hybrid
    ``unified`` mount), or None on a v1-only host."""
    return cg.dir_for("v2") or cg.dir_for("unified")


def oom_counter(cg: Cgroup) -> str | None:
    """The file whose ``oom_kill N`` line counts the container's OOM kills: v1's
    ``memory.oom_control``, else v2's ``memory.events``; None when neither exists."""
    memory, v2 = cg.dir_for("memory"), v2_dir(cg)
    for candidate in (
        os.path.join(memory, "memory.oom_control") if memory else "",
        os.path.join(v2, "memory.events") if v2 else "",
    ):
        if candidate and os.path.exists(candidate):
            return candidate
    return None


def join_fds(cg: Cgroup) -> list[tuple[str, int]]:
    """What a new init needs to join ``cg``, opened now (a joined mount namespace
    cannot hide them later), as ``(kind, fd)``:

    - ``dir``: the v2 directory (``O_PATH``), to be born in with
      ``CLONE_INTO_CGROUP`` (:mod:`runtime.sys.clone`);
    - ``procs``: its ``cgroup.procs``, to move the init there by pid when the
      kernel refuses that;
    - ``tasks``: each v1 hierarchy's ``tasks`` file, which the init writes ``0``
      to itself: a single thread moving itself needs no global lock.
    """
    fds: list[tuple[str, int]] = []
    v2 = v2_dir(cg)
    try:
        for d in cg.dirs:
            if d == v2:
                with errors.map_os_errors(f"open {d}"):
                    fds.append(("dir", os.open(d, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)))
                    procs = os.path.join(d, "cgroup.procs")
                    fds.append(("procs", os.open(procs, os.O_WRONLY | os.O_CLOEXEC)))
            else:
                with errors.map_os_errors(f"open {d}/tasks"):
                    tasks = os.path.join(d, "tasks")
                    fds.append(("tasks", os.open(tasks, os.O_WRONLY | os.O_CLOEXEC)))
    except BaseException:
        for _, fd in fds:
            os.close(fd)
        raise
    return fds


def pids(dirs: list[str]) -> list[int]:
    """The processes in the container's cgroup (from its first directory)."""
    for d in dirs:
        try:
            with open(os.path.join(d, "cgroup.procs")) as f:
                return [int(p) for p in f.read().split()]
        except FileNotFoundError:
            continue
    return []


def kill_all(dirs: list[str], sig: int) -> None:
    for pid in pids(dirs):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def remove(dirs: list[str], timeout: float = 10.0) -> None:
    """SIGKILL whatever is left in the directories and remove them (and any
    sub-cgroups), retrying while the kernel is still tearing tasks down."""
    deadline = time.monotonic() + timeout
    for d in dirs:
        while True:
            try:
                _rmdir_tree(d)
                break
            except FileNotFoundError:
                break
            except OSError as exc:
                if exc.errno not in (errno.EBUSY, errno.ENOTEMPTY) or time.monotonic() > deadline:
                    raise errors.FailedPrecondition(
                        f"remove cgroup {d}: {exc.strerror.lower() if exc.strerror else exc}; "
                        f"processes left: {pids([d])}"
                    ) from None
                kill_all([d], _SIGKILL)
                time.sleep(0.005)


def _rmdir_tree(d: str) -> None:
    for entry in os.scandir(d):
        if entry.is_dir(follow_symlinks=False):
            _rmdir_tree(entry.path)
    os.rmdir(d)
