"""``fork()`` with the flags only ``clone3(2)`` takes: a child born into a cgroup.

Moving a process into a cgroup by writing its pid to ``cgroup.procs`` takes
the kernel's global ``cgroup_threadgroup_rwsem`` for writing, and that waits
for an RCU grace period whenever no other migration happened a moment before:
measured on this 2-CPU VM, 8 ms median and up to 15 ms for one write, the
slowest single step of a container's create (runc pays it too). Two ways
around it, both used by :mod:`runtime.oci.init`:

- ``CLONE_INTO_CGROUP`` (Linux 5.7, cgroup v2 only): the child starts in the
  cgroup of a directory fd — the hybrid ``unified`` tree or pure v2 — and
  the kernel only takes the lock for reading;
- on v1, a single-threaded process writing ``0`` to a hierarchy's ``tasks``
  file moves its only thread without the global lock (done by the init
  itself, see :mod:`runtime.oci.init`).

:func:`fork` is ``os.fork()`` with the interpreter's own bookkeeping
(``PyOS_BeforeFork``/``PyOS_AfterFork_*``: the import lock, the
``os.register_at_fork`` hooks, the thread state) around a raw ``clone3``
instead of glibc's ``fork()``. glibc's own fork bookkeeping is skipped, which
is sound for what the callers here are: single-threaded processes (nothing
can hold malloc's or stdio's locks across the call) whose child does not
start threads. The one piece of glibc state a child must not inherit as is,
the thread id cached in its thread descriptor, is written by the kernel
(``CLONE_CHILD_SETTID``, as glibc's fork does) once its place has been found
and checked (it holds our own tid); ``raise`` never used it anyway (glibc
asks the kernel for the caller's tid). The call goes through a ``PyDLL`` so
the GIL stays held, exactly as ``os.fork()`` holds it.

``CLONE_PARENT`` makes the child a sibling of the caller: the shims' fork
server (itself detached, its parent PID 1 or a subreaper) makes a detached
shim with one clone instead of a double fork.

Stdlib only (the shim imports it under ``python -I -S``).
"""

from __future__ import annotations

import ctypes
import os

__all__ = ["CLONE_INTO_CGROUP", "CLONE_PARENT", "fork"]

CLONE_PARENT = 0x00008000
CLONE_INTO_CGROUP = 0x200000000
_CLONE_CHILD_SETTID = 0x01000000
_SIGCHLD = 17
_TID_OFFSET = 0x2D0  # of ``tid`` in glibc's struct pthread (x86_64, aarch64; checked below)
_SYS_CLONE3 = 435  # the same number on every architecture (asm-generic and x86)


class _CloneArgs(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_uint64)
        for name in (
            "flags", "pidfd", "child_tid", "parent_tid", "exit_signal", "stack",
            "stack_size", "tls", "set_tid", "set_tid_size", "cgroup",
        )
    ]  # fmt: skip


# Resolved now, in the parent: the child of a fork must not look anything up.
_syscall = ctypes.PyDLL(None, use_errno=True).syscall  # PyDLL: the GIL stays held
_syscall.restype = ctypes.c_long
_syscall.argtypes = (ctypes.c_long, ctypes.c_void_p, ctypes.c_size_t)
_before = ctypes.pythonapi.PyOS_BeforeFork
_after_child = ctypes.pythonapi.PyOS_AfterFork_Child
_after_parent = ctypes.pythonapi.PyOS_AfterFork_Parent
for _f in (_before, _after_child, _after_parent):
    _f.restype = None
    _f.argtypes = ()


_tid: list[int] = []  # the address found by _tid_address (the same in every fork)


def _tid_address() -> int:
    """Where glibc keeps the calling thread's id, if it is where we expect it:
    the word at that offset of our thread descriptor holds our tid (the main
    thread's, which is our pid). 0 when it does not (then it is left alone)."""
    if _tid:
        return _tid[0]
    try:
        self = ctypes.CDLL(None).pthread_self
        self.restype = ctypes.c_void_p
        address = int(self() or 0) + _TID_OFFSET
        if address > _TID_OFFSET and ctypes.c_int.from_address(address).value == os.getpid():
            _tid.append(address)
            return address
    except (AttributeError, OSError, ValueError):
        pass
    return 0


def fork(flags: int = 0, cgroup_fd: int = -1) -> int:
    """Fork through ``clone3`` with ``flags`` (and ``cgroup_fd``, a directory of
    a cgroup v2 tree, for :data:`CLONE_INTO_CGROUP`); returns 0 in the child,
    the child's pid in the parent, like :func:`os.fork`.

    Raises ``OSError`` with the kernel's errno when it refuses (``ENOSYS``
    before Linux 5.3; ``EINVAL`` for flags it does not know; ``EACCES`` or
    ``ENOENT`` when the cgroup may not be entered from here): the caller then
    falls back to :func:`os.fork`. Only for single-threaded callers whose
    child execs or exits without starting threads (see the module docstring).
    """
    # with CLONE_PARENT the child signals the caller's parent as the caller does:
    # clone3 wants no exit signal of its own then (EINVAL)
    args = _CloneArgs(flags=flags, exit_signal=0 if flags & CLONE_PARENT else _SIGCHLD)
    if cgroup_fd >= 0:
        args.cgroup = cgroup_fd
    tid = _tid_address()
    if tid:
        args.flags |= _CLONE_CHILD_SETTID
        args.child_tid = tid
    _before()
    pid = _syscall(_SYS_CLONE3, ctypes.addressof(args), ctypes.sizeof(args))
    if pid == 0:
        _after_child()
        return 0
    err = ctypes.get_errno()
    _after_parent()
    if pid < 0:
        raise OSError(err, os.strerror(err))
    return int(pid)
