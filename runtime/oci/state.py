"""The runtime's state directory and the container status it re-derives.

Layout (``root`` is like ``runc --root``)::

    <root>/<id>/state.json   what create recorded (written atomically)
    <root>/<id>/exec.fifo    exists from create until start: the init blocks on it

``state.json`` holds what cannot be observed later: the init's pid *and its
start time* (field 22 of ``/proc/<pid>/stat``), the bundle, annotations and the
cgroup directories. The status is never read from it: it is re-derived each
time from the process itself, so a dead init, a zombie waiting for its reaper,
or a recycled pid (same number, other start time) all read as ``stopped``;
a live init is ``created`` while its exec.fifo exists and ``running`` after.

Stdlib only.
"""

from __future__ import annotations

import os
import time

from runtime import errors
from runtime.shim import jsonio

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import TypeVar

    T = TypeVar("T")

__all__ = [
    "FIFO",
    "OCI_VERSION",
    "Record",
    "check_id",
    "container_dir",
    "list_containers",
    "load",
    "observe_status",
    "proc_stat",
    "remove_dir",
    "save",
    "write_file",
    "state",
]

OCI_VERSION = "1.0.2"
STATE_FILE = "state.json"
FIFO = "exec.fifo"
_ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_+-.")


class Record:
    """The content of state.json."""

    def __init__(self, container_id: str, bundle: str, rootfs: str) -> None:
        self.id = container_id
        self.bundle = bundle
        self.rootfs = rootfs
        self.pid = 0
        self.start_time = 0
        self.created = _rfc3339(time.time_ns())
        self.annotations: dict[str, str] = {}
        self.cgroup_dirs: list[str] = []
        self.freezer = ""  # v1 freezer dir, or the v2 dir (cgroup.freeze)
        self.hooks: dict[str, object] = {}  # poststart/poststop … as in config.json
        self.host_mounts = False  # mounts made in the caller's namespace (no mount ns)
        self.has_process = True  # config.json had a process (start needs one)

    def to_json(self) -> dict[str, object]:
        return {
            "ociVersion": OCI_VERSION,
            "id": self.id,
            "pid": self.pid,
            "init_start_time": self.start_time,
            "bundle": self.bundle,
            "rootfs": self.rootfs,
            "created": self.created,
            "annotations": self.annotations,
            "cgroup_dirs": self.cgroup_dirs,
            "freezer": self.freezer,
            "hooks": self.hooks,
            "host_mounts": self.host_mounts,
            "has_process": self.has_process,
        }

    @classmethod
    def from_json(cls, doc: dict[str, object]) -> Record:
        """Rebuild from state.json; ``TypeError``/``KeyError`` when it is malformed."""
        rec = cls(_typed(doc, "id", str), _typed(doc, "bundle", str), _typed(doc, "rootfs", str))
        rec.pid = _typed(doc, "pid", int)
        rec.start_time = _typed(doc, "init_start_time", int)
        rec.created = _typed(doc, "created", str)
        rec.annotations = _typed(doc, "annotations", dict)
        rec.cgroup_dirs = _typed(doc, "cgroup_dirs", list)
        rec.freezer = str(doc.get("freezer", ""))  # absent in state files of older versions
        hooks = doc.get("hooks", {})
        rec.hooks = hooks if isinstance(hooks, dict) else {}
        rec.host_mounts = doc.get("host_mounts") is True
        rec.has_process = doc.get("has_process") is not False
        return rec


def _typed(doc: dict[str, object], key: str, kind: type[T]) -> T:
    value = doc[key]
    if not isinstance(value, kind):
        raise TypeError(f"{key} is not a {kind.__name__}")
    return value


def check_id(container_id: str) -> None:
    """runc's id rule: letters, digits and ``_+-.``, not ``.``/``..``."""
    if (
        not container_id
        or len(container_id) > 1024
        or container_id in (".", "..")
        or not _ID_CHARS.issuperset(container_id)
    ):
        raise errors.InvalidSpec(
            f"invalid container id {container_id!r}: use letters, digits and _+-. only"
        )


def container_dir(root: str, container_id: str) -> str:
    check_id(container_id)
    return os.path.join(root, container_id)


def save(root: str, rec: Record) -> None:
    """Write state.json atomically (see :func:`write_file`)."""
    directory = container_dir(root, rec.id)
    with errors.map_os_errors(f"write the state of container {rec.id} in {directory}"):
        data = jsonio.dumps(rec.to_json()).encode()
        write_file(os.path.join(directory, STATE_FILE), data, 0o600)


def write_file(path: str, data: bytes, mode: int) -> None:
    """Replace ``path`` with ``data`` by a rename, so a reader (or a writer that
    crashes) never leaves half a file — but without fsync: what the runtime
    writes (state.json, pid files) lives in the run root, describes processes
    that a power loss ends anyway, and is wiped with /run at boot. runc does not
    fsync them either; here an fsync pair costs ~3.5 ms when /run is on disk.
    (Durable writes use ``runtime.shim.statedir.write_atomic``.)
    """
    tmp = os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
    try:
        try:
            os.write(fd, data)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def load(root: str, container_id: str) -> Record:
    path = os.path.join(container_dir(root, container_id), STATE_FILE)
    try:
        with open(path, "rb") as f:
            doc = jsonio.loads(f.read())
        if not isinstance(doc, dict):
            raise TypeError("state.json is not an object")
        return Record.from_json(doc)
    except FileNotFoundError:
        raise errors.NotFound(f"container {container_id} does not exist in {root}") from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise errors.Terminal(
            f"state of container {container_id} ({path}) is unreadable: {exc}; "
            "delete it with --force"
        ) from None


def proc_stat(pid: int) -> tuple[str, int] | None:
    """(state letter, start time in clock ticks) of ``pid``, None if there is none."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = raw[raw.rindex(b")") + 2 :].split()
    return fields[0].decode(), int(fields[19])


def observe_status(root: str, rec: Record) -> str:
    """created | running | paused | stopped, read from the kernel (see the module doc)."""
    if rec.pid <= 0:
        return "stopped"
    seen = proc_stat(rec.pid)
    if seen is None or seen[1] != rec.start_time or seen[0] in ("Z", "X", "x"):
        return "stopped"
    if os.path.lexists(os.path.join(root, rec.id, FIFO)):
        return "created"
    if rec.freezer and is_frozen(rec.freezer):
        return "paused"
    return "running"


def is_frozen(directory: str) -> bool:
    """Whether the cgroup ``directory`` is frozen (v1 ``freezer.state`` FROZEN or
    FREEZING, v2 ``cgroup.freeze`` 1)."""
    for name, frozen in (("freezer.state", (b"FROZEN", b"FREEZING")), ("cgroup.freeze", (b"1",))):
        try:
            with open(os.path.join(directory, name), "rb") as f:
                return f.read().strip() in frozen
        except FileNotFoundError:
            continue
    return False


def oci_state(rec: Record, status: str) -> dict[str, object]:
    """The OCI state document (the pid is 0 once stopped, as runc reports it)."""
    return {
        "ociVersion": OCI_VERSION,
        "id": rec.id,
        "status": status,
        "pid": rec.pid if status != "stopped" else 0,
        "bundle": rec.bundle,
        "annotations": dict(rec.annotations),
    }


def state(root: str, container_id: str) -> dict[str, object]:
    rec = load(root, container_id)
    return oci_state(rec, observe_status(root, rec))


def list_containers(root: str) -> list[dict[str, object]]:
    """The state of every container under ``root``, by id; half-made ones are skipped."""
    try:
        names = sorted(os.listdir(root))
    except FileNotFoundError:
        return []
    out = []
    for name in names:
        try:
            out.append(state(root, name))
        except errors.RuntimeError_:
            continue  # not a container dir, or one whose create is still writing it
    return out


def remove_dir(cdir: str) -> None:
    """Remove a container's state dir (only files in it, never a tree walk
    across links)."""
    try:
        names = os.listdir(cdir)
    except FileNotFoundError:
        return
    with errors.map_os_errors(f"remove the state dir {cdir}"):
        for name in names:
            try:
                os.unlink(os.path.join(cdir, name))
            except FileNotFoundError:
                pass
        os.rmdir(cdir)


def _rfc3339(ns: int) -> str:
    secs, frac = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{frac:09d}Z"


def detach_rootfs(rootfs: str) -> None:
    """Lazily unmount the rootfs bind (and every mount under it) that a
    container without a mount namespace left in ours."""
    import runtime.sys as rsys

    with open("/proc/self/mountinfo", "rb") as f:
        points = [line.split()[4].decode().replace("\\040", " ") for line in f]
    if rootfs in points:
        with errors.map_os_errors(f"unmount the container's mounts at {rootfs}"):
            rsys.umount2(rootfs, rsys.MNT_DETACH)
