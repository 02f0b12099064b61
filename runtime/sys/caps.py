"""Linux capabilities: names, the five sets, and the calls that change them.

The container's init drops privileges in the order the kernel requires:
bounding set first (needs CAP_SETPCAP, so while still fully privileged), then
``PR_SET_KEEPCAPS`` around the uid change so the permitted set survives it,
then ``capset`` for effective/permitted/inheritable, and ambient last (the
kernel only lets a capability be ambient when it is both permitted and
inheritable). Sets are plain ``int`` bit masks (bit n = capability n).

Stdlib only (ctypes through :mod:`runtime.sys`); raises ``OSError``.
"""

from __future__ import annotations

import ctypes

import runtime.sys as rsys

__all__ = [
    "NAMES",
    "ambient_raise",
    "capget",
    "capset",
    "drop_bounding",
    "last_cap",
    "mask_of",
    "number",
    "set_keepcaps",
]

#: Capability names in kernel order: ``NAMES[n]`` is capability number n
#: (include/uapi/linux/capability.h).
NAMES = (
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
)
_NUMBERS = {name: i for i, name in enumerate(NAMES)}

_LINUX_CAPABILITY_VERSION_3 = 0x20080522


class _Header(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _Data(ctypes.Structure):
    _fields_ = [
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    ]


def number(name: str) -> int:
    """The number of a capability name (``CAP_KILL`` → 5); ``KeyError`` if unknown."""
    return _NUMBERS[name]


def mask_of(numbers: list[int] | set[int] | tuple[int, ...]) -> int:
    mask = 0
    for n in numbers:
        mask |= 1 << n
    return mask


def last_cap() -> int:
    """The highest capability this kernel knows (``/proc/sys/kernel/cap_last_cap``)."""
    try:
        with open("/proc/sys/kernel/cap_last_cap", "rb") as f:
            return int(f.read())
    except OSError:
        return len(NAMES) - 1


def drop_bounding(keep: int, last: int) -> None:
    """Drop every capability up to ``last`` that is not in the mask ``keep``."""
    for cap in range(last + 1):
        if not keep & (1 << cap):
            rsys.prctl(rsys.PR_CAPBSET_DROP, cap)


def set_keepcaps(on: bool) -> None:
    rsys.prctl(rsys.PR_SET_KEEPCAPS, 1 if on else 0)


def capset(effective: int, permitted: int, inheritable: int) -> None:
    """Set this thread's effective, permitted and inheritable sets (masks)."""
    header = _Header(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_Data * 2)()
    for i in range(2):
        shift = 32 * i
        data[i].effective = (effective >> shift) & 0xFFFFFFFF
        data[i].permitted = (permitted >> shift) & 0xFFFFFFFF
        data[i].inheritable = (inheritable >> shift) & 0xFFFFFFFF
    nr = rsys.syscall_number("capset")
    if rsys.libc.syscall(nr, ctypes.byref(header), ctypes.byref(data)) < 0:
        err = ctypes.get_errno()
        raise OSError(err, "capset failed")


def capget(pid: int = 0) -> tuple[int, int, int]:
    """(effective, permitted, inheritable) masks of ``pid`` (0: this thread)."""
    header = _Header(_LINUX_CAPABILITY_VERSION_3, pid)
    data = (_Data * 2)()
    nr = rsys.syscall_number("capget")
    if rsys.libc.syscall(nr, ctypes.byref(header), ctypes.byref(data)) < 0:
        err = ctypes.get_errno()
        raise OSError(err, "capget failed")
    eff = data[0].effective | (data[1].effective << 32)
    perm = data[0].permitted | (data[1].permitted << 32)
    inh = data[0].inheritable | (data[1].inheritable << 32)
    return eff, perm, inh


def ambient_raise(mask: int, last: int) -> None:
    """Clear the ambient set, then raise each capability of ``mask``."""
    rsys.prctl(rsys.PR_CAP_AMBIENT, rsys.PR_CAP_AMBIENT_CLEAR_ALL)
    for cap in range(last + 1):
        if mask & (1 << cap):
            rsys.prctl(rsys.PR_CAP_AMBIENT, rsys.PR_CAP_AMBIENT_RAISE, cap)
