"""The only place that calls libc through ctypes.

Python 3.11 has no ``os.unshare``, ``os.setns``, ``mount`` or ``pivot_root``;
these thin wrappers raise ``OSError`` with the real errno (mapped to the
runtime's categories by callers at their edge). Stdlib only: the shim and the
container's init import this with ``python -I -S``.

Submodules add families of calls (capabilities, seccomp …); this module holds
the core: namespaces, mounts, pivot_root, prctl, host names.
"""

from __future__ import annotations

import ctypes
import os

__all__ = [
    "CLONE_NEWCGROUP",
    "CLONE_NEWIPC",
    "CLONE_NEWNET",
    "CLONE_NEWNS",
    "CLONE_NEWPID",
    "CLONE_NEWTIME",
    "CLONE_NEWUSER",
    "CLONE_NEWUTS",
    "MNT_DETACH",
    "MNT_FORCE",
    "MS_BIND",
    "MS_NODEV",
    "MS_NOEXEC",
    "MS_NOSUID",
    "MS_PRIVATE",
    "MS_RDONLY",
    "MS_REC",
    "MS_RELATIME",
    "MS_REMOUNT",
    "MS_SHARED",
    "MS_SLAVE",
    "MS_STRICTATIME",
    "MS_UNBINDABLE",
    "MS_MOVE",
    "MS_NOATIME",
    "MS_NODIRATIME",
    "PR_SET_CHILD_SUBREAPER",
    "PR_SET_DUMPABLE",
    "PR_SET_NO_NEW_PRIVS",
    "PR_SET_PDEATHSIG",
    "PR_SET_NAME",
    "PR_CAPBSET_DROP",
    "PR_CAPBSET_READ",
    "libc",
    "mount",
    "pivot_root",
    "prctl",
    "sethostname",
    "setdomainname",
    "setns",
    "umount2",
    "unshare",
    "syscall_number",
    "CLOSE_RANGE_CLOEXEC",
    "PR_SET_KEEPCAPS",
    "PR_CAP_AMBIENT",
    "PR_CAP_AMBIENT_RAISE",
    "PR_CAP_AMBIENT_CLEAR_ALL",
    "MS_SYNCHRONOUS",
    "MS_DIRSYNC",
    "MS_MANDLOCK",
    "MS_NOSYMFOLLOW",
    "MS_LAZYTIME",
    "MS_SILENT",
    "PROC_SUPER_MAGIC",
    "close_range",
    "fstatfs_type",
    "setrlimit",
    "reset_signals",
    "pidfd_send_signal",
    "open_tree",
    "mount_setattr",
    "openat2",
    "syncfs",
    "RESOLVE_IN_ROOT",
    "RESOLVE_NO_MAGICLINKS",
    "RESOLVE_NO_SYMLINKS",
    "personality",
    "OPEN_TREE_CLONE",
    "MOUNT_ATTR_RDONLY",
    "MOUNT_ATTR_NOSUID",
    "MOUNT_ATTR_NODEV",
]

CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
CLONE_NEWTIME = 0x00000080

MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_SYNCHRONOUS = 16
MS_REMOUNT = 32
MS_MANDLOCK = 64
MS_DIRSYNC = 128
MS_NOSYMFOLLOW = 256
MS_NOATIME = 1024
MS_NODIRATIME = 2048
MS_BIND = 4096
MS_MOVE = 8192
MS_REC = 16384
MS_SILENT = 32768
MS_UNBINDABLE = 1 << 17
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MS_SHARED = 1 << 20
MS_RELATIME = 1 << 21
MS_STRICTATIME = 1 << 24
MS_LAZYTIME = 1 << 25

MNT_FORCE = 1
MNT_DETACH = 2
MNT_EXPIRE = 4
UMOUNT_NOFOLLOW = 8

PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_SET_KEEPCAPS = 8
PR_SET_NAME = 15
PR_CAPBSET_READ = 23
PR_CAPBSET_DROP = 24
PR_SET_SECUREBITS = 28
PR_SET_NO_NEW_PRIVS = 38
PR_SET_CHILD_SUBREAPER = 36
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_RAISE = 2
PR_CAP_AMBIENT_CLEAR_ALL = 4

CLOSE_RANGE_CLOEXEC = 1 << 2
OPEN_TREE_CLONE = 1
_OPEN_TREE_CLOEXEC = 0o2000000
_AT_FDCWD = -100
_AT_EMPTY_PATH = 0x1000
MOUNT_ATTR_RDONLY = 0x1
MOUNT_ATTR_NOSUID = 0x2
MOUNT_ATTR_NODEV = 0x4
PROC_SUPER_MAGIC = 0x9FA0

_SYSCALLS = {
    "x86_64": {
        "pivot_root": 155,
        "setns": 308,
        "unshare": 272,
        "close_range": 436,
        "openat2": 437,
        "capget": 125,
        "capset": 126,
        "seccomp": 317,
        "memfd_create": 319,
        "open_tree": 428,
        "move_mount": 429,
        "fsopen": 430,
        "fsmount": 432,
        "pidfd_send_signal": 424,
        "mount_setattr": 442,
        "bpf": 321,
    },
    "aarch64": {
        "pivot_root": 41,
        "setns": 268,
        "unshare": 97,
        "close_range": 436,
        "openat2": 437,
        "capget": 90,
        "capset": 91,
        "seccomp": 277,
        "memfd_create": 279,
        "open_tree": 428,
        "move_mount": 429,
        "fsopen": 430,
        "fsmount": 432,
        "pidfd_send_signal": 424,
        "mount_setattr": 442,
        "bpf": 280,
    },
}

libc = ctypes.CDLL(None, use_errno=True)
libc.mount.argtypes = [
    ctypes.c_char_p,
    ctypes.c_char_p,
    ctypes.c_char_p,
    ctypes.c_ulong,
    ctypes.c_char_p,
]
libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
libc.unshare.argtypes = [ctypes.c_int]
libc.setns.argtypes = [ctypes.c_int, ctypes.c_int]
libc.sethostname.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
libc.setdomainname.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
libc.syscall.restype = ctypes.c_long


def syscall_number(name: str) -> int:
    # os.uname() rather than platform.machine(): platform costs ~6 ms to import
    # and this module is on the shim's hot path.
    machine = os.uname().machine
    try:
        return _SYSCALLS[machine][name]
    except KeyError:
        raise OSError(38, f"syscall {name} is not known on {machine}") from None


def _check(result: int, what: str, path: str | None = None) -> int:
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}", path)
    return result


def _b(value: str | bytes | None) -> bytes | None:
    if value is None:
        return None
    return value if isinstance(value, bytes) else os.fsencode(value)


def mount(
    source: str | None, target: str, fstype: str | None, flags: int = 0, data: str | None = None
) -> None:
    _check(libc.mount(_b(source), _b(target), _b(fstype), flags, _b(data)), "mount", target)


def umount2(target: str, flags: int = 0) -> None:
    _check(libc.umount2(_b(target), flags), "umount2", target)


def unshare(flags: int) -> None:
    _check(libc.unshare(flags), "unshare")


def setns(fd: int, nstype: int = 0) -> None:
    _check(libc.setns(fd, nstype), "setns")


def pivot_root(new_root: str, put_old: str) -> None:
    nr = syscall_number("pivot_root")
    _check(libc.syscall(nr, _b(new_root), _b(put_old)), "pivot_root", new_root)


def prctl(option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0, arg5: int = 0) -> int:
    return _check(libc.prctl(option, arg2, arg3, arg4, arg5), "prctl")


def sethostname(name: str) -> None:
    raw = name.encode()
    _check(libc.sethostname(raw, len(raw)), "sethostname")


def setdomainname(name: str) -> None:
    raw = name.encode()
    _check(libc.setdomainname(raw, len(raw)), "setdomainname")


def close_range(first: int, last: int = 0xFFFFFFFF, flags: int = 0) -> None:
    """close_range(2): with ``CLOSE_RANGE_CLOEXEC`` mark the fds close-on-exec
    instead of closing them (Linux 5.11); raises ``OSError`` (ENOSYS, EINVAL)
    where the kernel lacks it, so callers can fall back to a loop."""
    nr = syscall_number("close_range")
    _check(
        libc.syscall(nr, ctypes.c_uint(first), ctypes.c_uint(last), ctypes.c_uint(flags)),
        "close_range",
    )


class _Statfs(ctypes.Structure):
    # Only f_type is read; the buffer is sized generously for struct statfs.
    _fields_ = [("f_type", ctypes.c_long), ("rest", ctypes.c_byte * 120)]


def fstatfs_type(fd: int) -> int:
    """The filesystem magic number (``f_type``) of the file open at ``fd``."""
    buf = _Statfs()
    _check(libc.fstatfs(fd, ctypes.byref(buf)), "fstatfs")
    return int(buf.f_type)


class _Rlimit(ctypes.Structure):
    _fields_ = [("cur", ctypes.c_uint64), ("max", ctypes.c_uint64)]


def setrlimit(resource: int, soft: int, hard: int) -> None:
    """prlimit(2) on this process; values are unsigned (2**64-1 is unlimited).

    ctypes rather than the ``resource`` module: the numbers come from
    config.json as u64 and ``resource`` maps them through signed longs.
    """
    new = _Rlimit(soft, hard)
    _check(libc.prlimit(0, resource, ctypes.byref(new), None), "prlimit")


_SIGSET = ctypes.c_ubyte * 128  # sizeof(sigset_t) in glibc
libc.signal.argtypes = [ctypes.c_int, ctypes.c_void_p]
libc.signal.restype = ctypes.c_void_p


def reset_signals() -> None:
    """Default disposition for every signal and an empty signal mask.

    For a forked child right before ``execve``: handlers are reset by exec
    anyway, but *ignored* signals (Python ignores SIGPIPE and SIGXFSZ) and the
    blocked mask (a shim blocks SIGTERM) would be inherited by the container.
    Goes through libc, not the ``signal`` module (4 ms of enum imports), and
    leaves Python's own view of its handlers stale: call it only just before exec.
    """
    for sig in range(1, 65):
        if sig not in (9, 19, 32, 33):  # SIGKILL, SIGSTOP, glibc-internal RT signals
            libc.signal(sig, None)  # SIG_DFL
    empty = _SIGSET()
    _check(libc.sigprocmask(2, ctypes.byref(empty), None), "sigprocmask")  # SIG_SETMASK


def pidfd_send_signal(pidfd: int, sig: int) -> None:
    """Signal the process a pidfd refers to: unlike kill(2), never a recycled pid.

    (``signal.pidfd_send_signal`` exists, but the ``signal`` module costs ~4 ms.)
    """
    nr = syscall_number("pidfd_send_signal")
    _check(libc.syscall(nr, pidfd, sig, None, 0), "pidfd_send_signal")


def open_tree(path: str, flags: int = OPEN_TREE_CLONE) -> int:
    """open_tree(2) (Linux 5.2): with ``OPEN_TREE_CLONE``, an fd of a detached
    bind mount of ``path`` (close-on-exec); it lives as long as the fd."""
    nr = syscall_number("open_tree")
    return _check(
        libc.syscall(nr, _AT_FDCWD, _b(path), ctypes.c_uint(flags | _OPEN_TREE_CLOEXEC)),
        "open_tree",
        path,
    )


class _MountAttr(ctypes.Structure):
    _fields_ = [
        ("attr_set", ctypes.c_uint64),
        ("attr_clr", ctypes.c_uint64),
        ("propagation", ctypes.c_uint64),
        ("userns_fd", ctypes.c_uint64),
    ]


def mount_setattr(fd: int, attr_set: int, attr_clr: int = 0) -> None:
    """mount_setattr(2) (Linux 5.12) on the mount open at ``fd``."""
    nr = syscall_number("mount_setattr")
    attr = _MountAttr(attr_set, attr_clr, 0, 0)
    _check(
        libc.syscall(nr, fd, b"", _AT_EMPTY_PATH, ctypes.byref(attr), ctypes.sizeof(attr)),
        "mount_setattr",
    )


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_IN_ROOT = 0x10


def openat2(dir_fd: int, path: str, flags: int, resolve: int) -> int:
    """openat2(2) (Linux 5.6): ``path`` opened relative to ``dir_fd`` with the
    ``RESOLVE_*`` restrictions in ``resolve``; raises OSError (ENOSYS before 5.6)."""
    nr = syscall_number("openat2")
    how = _OpenHow(flags, 0, resolve)
    return _check(
        libc.syscall(nr, dir_fd, _b(path), ctypes.byref(how), ctypes.sizeof(how)), "openat2", path
    )


def syncfs(path: str) -> None:
    """syncfs(2): write out the dirty data of the filesystem holding ``path`` (only
    that one: ``sync()`` waits for every filesystem's, other processes' included)."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        _check(libc.syncfs(fd), "syncfs", path)
    finally:
        os.close(fd)


def personality(persona: int) -> int:
    """personality(2): set the execution domain; returns the previous one."""
    return _check(libc.personality(ctypes.c_ulong(persona)), "personality")
