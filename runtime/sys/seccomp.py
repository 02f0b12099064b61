"""libseccomp through ctypes: build a filter, load it, get its notify fd.

Why libseccomp and not hand-written BPF: it knows every architecture's
syscall numbers (including the multiplexed ``socketcall``/``ipc`` of 32-bit
x86), adds the architecture check and the x32 ABI guard, and sorts the rules
into an efficient tree — the same library runc and crun use, so the same
profile means the same filter. It is loaded on first use only (``dlopen`` of
``libseccomp.so.2``, Debian package ``libseccomp2``), so containers without a
seccomp section never pay for it.

Action values and compare operators are libseccomp's (``seccomp.h``); the
OCI names (``SCMP_ACT_ERRNO``, ``SCMP_CMP_MASKED_EQ`` …) map onto them
one-to-one. Every call raises ``OSError`` with libseccomp's negative errno.
Stdlib only: this runs in the container's init between fork and exec.
"""

from __future__ import annotations

import ctypes
import os

import runtime.sys as rsys

__all__ = [
    "ACTIONS",
    "ATTR_CTL_LOG",
    "ATTR_CTL_NNP",
    "ATTR_CTL_OPTIMIZE",
    "ATTR_CTL_SSB",
    "ATTR_CTL_TSYNC",
    "COMPARE",
    "Filter",
    "action_value",
    "arch_token",
    "available",
    "load_program",
    "native_arch",
    "resolve_syscall",
    "version",
]

#: OCI action name -> libseccomp base value (ERRNO and TRACE carry a 16-bit datum).
ACTIONS = {
    "SCMP_ACT_KILL": 0x00000000,
    "SCMP_ACT_KILL_THREAD": 0x00000000,
    "SCMP_ACT_KILL_PROCESS": 0x80000000,
    "SCMP_ACT_TRAP": 0x00030000,
    "SCMP_ACT_ERRNO": 0x00050000,
    "SCMP_ACT_TRACE": 0x7FF00000,
    "SCMP_ACT_LOG": 0x7FFC0000,
    "SCMP_ACT_ALLOW": 0x7FFF0000,
    "SCMP_ACT_NOTIFY": 0x7FC00000,
}
#: OCI operator name -> ``enum scmp_compare``.
COMPARE = {
    "SCMP_CMP_NE": 1,
    "SCMP_CMP_LT": 2,
    "SCMP_CMP_LE": 3,
    "SCMP_CMP_EQ": 4,
    "SCMP_CMP_GE": 5,
    "SCMP_CMP_GT": 6,
    "SCMP_CMP_MASKED_EQ": 7,
}
# enum scmp_filter_attr
ATTR_ACT_BADARCH = 2
ATTR_CTL_NNP = 3
ATTR_CTL_TSYNC = 4
ATTR_CTL_LOG = 6
ATTR_CTL_SSB = 7
ATTR_CTL_OPTIMIZE = 8  # libseccomp 2.5: 2 = a binary tree of syscall numbers

_NR_SCMP_ERROR = -1
_lib: ctypes.CDLL | None = None


class _ArgCmp(ctypes.Structure):
    _fields_ = [
        ("arg", ctypes.c_uint),
        ("op", ctypes.c_int),
        ("datum_a", ctypes.c_uint64),
        ("datum_b", ctypes.c_uint64),
    ]


def _load() -> ctypes.CDLL:
    global _lib
    if _lib is None:
        try:
            lib = ctypes.CDLL("libseccomp.so.2", use_errno=True)
        except OSError as exc:
            raise OSError(
                38, "libseccomp.so.2 is not installed (Debian: apt-get install libseccomp2)"
            ) from exc
        lib.seccomp_init.argtypes = [ctypes.c_uint32]
        lib.seccomp_init.restype = ctypes.c_void_p
        lib.seccomp_release.argtypes = [ctypes.c_void_p]
        lib.seccomp_release.restype = None
        lib.seccomp_arch_add.argtypes = [ctypes.c_void_p, ctypes.c_uint32]
        lib.seccomp_arch_resolve_name.argtypes = [ctypes.c_char_p]
        lib.seccomp_arch_resolve_name.restype = ctypes.c_uint32
        lib.seccomp_arch_native.restype = ctypes.c_uint32
        lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
        lib.seccomp_rule_add_array.argtypes = [
            ctypes.c_void_p,
            ctypes.c_uint32,
            ctypes.c_int,
            ctypes.c_uint,
            ctypes.POINTER(_ArgCmp),
        ]
        lib.seccomp_attr_set.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_uint32]
        lib.seccomp_load.argtypes = [ctypes.c_void_p]
        lib.seccomp_notify_fd.argtypes = [ctypes.c_void_p]
        lib.seccomp_version.restype = ctypes.POINTER(ctypes.c_uint * 3)
        lib.seccomp_export_bpf.argtypes = [ctypes.c_void_p, ctypes.c_int]
        _lib = lib
    return _lib


def available() -> bool:
    """Whether libseccomp can be loaded on this host."""
    try:
        _load()
    except OSError:
        return False
    return True


def version() -> tuple[int, int, int]:
    v = _load().seccomp_version().contents
    return int(v[0]), int(v[1]), int(v[2])


def _check(rc: int, what: str) -> int:
    if rc < 0:
        raise OSError(-rc, f"{what}: {os.strerror(-rc)}")
    return rc


def action_value(name: str, datum: int | None = None) -> int:
    """The libseccomp value of an OCI action (``SCMP_ACT_ERRNO`` with ``datum``,
    default EPERM; ``SCMP_ACT_TRACE`` with ``datum``, default EPERM too, as runc).
    ``KeyError`` for unknown names."""
    base = ACTIONS[name]
    if name in ("SCMP_ACT_ERRNO", "SCMP_ACT_TRACE"):
        return base | ((1 if datum is None else datum) & 0xFFFF)
    return base


def arch_token(oci_name: str) -> int:
    """``SCMP_ARCH_X86_64`` -> libseccomp's token; 0 when unknown."""
    name = oci_name.removeprefix("SCMP_ARCH_").lower()
    return int(_load().seccomp_arch_resolve_name(name.encode()))


def native_arch() -> int:
    return int(_load().seccomp_arch_native())


def resolve_syscall(name: str) -> int | None:
    """The syscall number for the native architecture (negative pseudo numbers
    for calls that exist on other architectures only); None if nobody knows it."""
    nr = int(_load().seccomp_syscall_resolve_name(name.encode()))
    return None if nr == _NR_SCMP_ERROR else nr


class Filter:
    """One libseccomp filter context; :meth:`load` installs it on this thread."""

    def __init__(self, default_action: int) -> None:
        self._lib = _load()
        ctx = self._lib.seccomp_init(default_action)
        if not ctx:
            raise OSError(22, "seccomp_init failed: invalid default action")
        self._ctx: int | None = ctx

    def _handle(self) -> int:
        if self._ctx is None:
            raise OSError(9, "seccomp filter already released")
        return self._ctx

    def add_arch(self, token: int) -> None:
        rc = self._lib.seccomp_arch_add(self._handle(), token)
        if rc != -17:  # EEXIST: the native one is there from seccomp_init
            _check(rc, "seccomp_arch_add")

    def set_attr(self, attr: int, value: int) -> None:
        _check(self._lib.seccomp_attr_set(self._handle(), attr, value), "seccomp_attr_set")

    def add_rule(self, action: int, syscall: int, args: list[tuple[int, int, int, int]]) -> None:
        """``args`` are (index, operator, value, value_two) comparisons, all of
        which must hold (libseccomp allows one comparison per argument index)."""
        array = (_ArgCmp * max(len(args), 1))()
        for i, (index, op, a, b) in enumerate(args):
            array[i] = _ArgCmp(index, op, a & 0xFFFFFFFFFFFFFFFF, b & 0xFFFFFFFFFFFFFFFF)
        rc = self._lib.seccomp_rule_add_array(self._handle(), action, syscall, len(args), array)
        _check(rc, f"seccomp_rule_add for syscall {syscall}")

    def load(self) -> None:
        _check(self._lib.seccomp_load(self._handle()), "seccomp_load")

    def export_bpf(self) -> bytes:
        """The BPF program :meth:`load` would install (``struct sock_filter``
        array), for :func:`load_program` — generating it is most of the cost
        of loading a large profile, and the bytes can be cached."""
        fd = os.memfd_create("seccomp-bpf", os.MFD_CLOEXEC)
        try:
            _check(self._lib.seccomp_export_bpf(self._handle(), fd), "seccomp_export_bpf")
            size = os.fstat(fd).st_size
            return os.pread(fd, size, 0)
        finally:
            os.close(fd)

    def notify_fd(self) -> int:
        """The user-notification fd of a loaded filter with SCMP_ACT_NOTIFY rules."""
        return _check(self._lib.seccomp_notify_fd(self._handle()), "seccomp_notify_fd")

    def release(self) -> None:
        if self._ctx is not None:
            self._lib.seccomp_release(self._ctx)
            self._ctx = None


# seccomp(2)
_SECCOMP_SET_MODE_FILTER = 1
FILTER_FLAG_TSYNC = 1
FILTER_FLAG_LOG = 2
FILTER_FLAG_SPEC_ALLOW = 4
FILTER_FLAG_NEW_LISTENER = 8


class _Fprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def load_program(program: bytes, flags: int = 0) -> int:
    """Install a BPF program (as exported by :meth:`Filter.export_bpf`) with
    seccomp(2); returns the notify fd with ``FILTER_FLAG_NEW_LISTENER``, else 0.
    Needs no_new_privs or CAP_SYS_ADMIN, like any filter."""
    if not program or len(program) % 8:
        raise OSError(22, "seccomp program is empty or not whole instructions")
    buf = ctypes.create_string_buffer(program, len(program))
    prog = _Fprog(len(program) // 8, ctypes.addressof(buf))
    nr = rsys.syscall_number("seccomp")
    rc = int(
        rsys.libc.syscall(nr, _SECCOMP_SET_MODE_FILTER, ctypes.c_uint(flags), ctypes.byref(prog))
    )
    if rc < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"seccomp(SET_MODE_FILTER): {os.strerror(err)}")
    return rc
