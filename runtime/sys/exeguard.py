"""A copy of the Python interpreter that a container cannot overwrite (CVE-2019-5736).

A process that joins a container (``exec``) becomes visible inside it, and
its ``/proc/<pid>/exe`` is a magic link to the binary it runs. If that is the
host's interpreter on a writable mount, a container process can open it
(``O_PATH``), wait for the runtime to exit, and reopen it for writing — the
next ``python3`` on the host runs the attacker's code. The same happens when
the container's program is a script whose interpreter line is
``#!/proc/self/exe``: the kernel re-executes *our* binary inside the container.

So such processes are started from :func:`guarded_interpreter`: the real
interpreter file, bind-mounted on a *detached, read-only* mount
(``open_tree(OPEN_TREE_CLONE)`` + ``mount_setattr(MOUNT_ATTR_RDONLY)``) and
executed through that fd (``fexecve``). Its ``/proc/<pid>/exe`` then resolves
to an inode on a read-only mount that exists in no mount namespace: an open
for writing fails (``EROFS``, or ``ETXTBSY`` while it runs), and the mount
cannot be made writable from inside the container (it is not in the
container's mount namespace, and changing it needs ``CAP_SYS_ADMIN`` over the
host's). This is runc ≥ 1.2's "read-only bind" choice; it costs two syscalls
and no copy. Kernels older than 5.12 (no ``mount_setattr``) fall back to
runc's older choice, a sealed ``memfd`` copy (``F_SEAL_WRITE|SHRINK|GROW|SEAL``:
writes fail with ``EPERM``), which costs a copy of the binary (17 KiB for a
shared-libpython build, a few MiB for a static one).

Shared libraries (libpython, libc) are mapped, not executed: reaching them
needs ``/proc/<pid>/map_files`` (``CAP_SYS_ADMIN`` in the host's user
namespace) and those processes are non-dumpable until their final exec.

The fd is made once per process and cached; it is close-on-exec.
"""

from __future__ import annotations

import errno
import fcntl
import os
import sys

import runtime.sys as rsys

__all__ = ["guarded_interpreter", "is_guarded_fd", "kind"]

_cache: tuple[int, str] | None = None
_SEALS = fcntl.F_SEAL_SEAL | fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE


def guarded_interpreter() -> tuple[int, str]:
    """(fd, kind) of the guarded interpreter; kind is ``ro-bind`` or ``memfd``.

    ``os.execve(fd, [sys.executable, …], env)`` runs it (argv[0] should stay
    the real path: Python finds its standard library from it).
    """
    global _cache
    if _cache is None:
        real = os.path.realpath(sys.executable)
        try:
            fd = _ro_bind(real)
            _cache = (fd, "ro-bind")
        except OSError as exc:
            if exc.errno not in (errno.ENOSYS, errno.EPERM, errno.EINVAL):
                raise
            _cache = (_sealed_copy(real), "memfd")
    return _cache


def kind() -> str:
    return guarded_interpreter()[1]


def _ro_bind(path: str) -> int:
    fd = rsys.open_tree(path, rsys.OPEN_TREE_CLONE)
    try:
        rsys.mount_setattr(
            fd, rsys.MOUNT_ATTR_RDONLY | rsys.MOUNT_ATTR_NOSUID | rsys.MOUNT_ATTR_NODEV
        )
    except BaseException:
        os.close(fd)
        raise
    return fd


def _sealed_copy(path: str) -> int:
    fd = os.memfd_create("pyreconcile-python", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
    try:
        with open(path, "rb") as src:
            size = os.fstat(src.fileno()).st_size
            offset = 0
            while offset < size:
                sent = os.sendfile(fd, src.fileno(), offset, size - offset)
                if sent == 0:
                    break
                offset += sent
        os.fchmod(fd, 0o555)
        fcntl.fcntl(fd, fcntl.F_ADD_SEALS, _SEALS)
    except BaseException:
        os.close(fd)
        raise
    return fd


def is_guarded_fd(fd: int) -> bool:
    """Whether the file open at ``fd`` cannot be written: a read-only mount,
    or a memfd sealed against writes."""
    try:
        if fcntl.fcntl(fd, fcntl.F_GET_SEALS) & fcntl.F_SEAL_WRITE:
            return True
    except OSError:
        pass
    return bool(os.fstatvfs(fd).f_flag & os.ST_RDONLY)
