"""Resolve a path inside a container's root without ever leaving it.

A mount destination, a device node or a masked path names a place *inside*
the rootfs, and the rootfs is the container's (an image's) tree: any
component may be a symlink, and ``/`` or ``..`` in it must mean the
container's root, never the host's (CVE-2021-30465, CVE-2024-45310).

The walk is fd-based: each component is opened with
``openat(parent, name, O_PATH|O_NOFOLLOW)``, so the kernel never follows a
symlink on its own. A symlink's target is read from the link's own fd and its
components are pushed in front of the rest; an absolute target restarts from
the root fd; ``..`` pops the stack of directory fds and stops at the root.
That is the semantics of ``openat2(RESOLVE_IN_ROOT)``, done in user space so
that missing components can be created on the way (``mkdirat`` on the parent
fd — never ``mkdir -p`` by path across a container-controlled tree) and so it
runs on any kernel. Where the kernel has ``openat2`` (5.6) it is asked first,
in one call (an init resolves ~50 paths: the walk's ~150 opens were a third
of its setup); whatever it refuses — a missing component to create, a
symlink where none may be, an old kernel — is walked as above, which gives
the verdict and its message. Callers mount onto the result through
``/proc/self/fd/N`` (see :func:`fd_path`), so nothing is resolved twice.

Stdlib only; raises ``OSError`` with the in-root path in ``filename``.
"""

from __future__ import annotations

import errno
import os
import stat

import runtime.sys as rsys

__all__ = ["MAX_SYMLINKS", "fd_path", "open_in_root", "resolve"]

MAX_SYMLINKS = 40
_OPEN = os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC


def fd_path(fd: int) -> str:
    """A path that names the object open at ``fd`` (the ``/proc`` magic link)."""
    return f"/proc/self/fd/{fd}"


def _components(path: str) -> list[str]:
    return [c for c in path.split("/") if c and c != "."]


def open_in_root(
    root_fd: int,
    path: str,
    *,
    create: str | None = None,
    no_symlinks: bool = False,
    mode: int = 0o755,
) -> int:
    """Open ``path`` (relative to the directory ``root_fd``) as an ``O_PATH`` fd.

    ``create`` is None (a missing component is ENOENT), ``"dir"`` (create
    missing directories) or ``"file"`` (missing parents become directories,
    a missing last component an empty file). ``no_symlinks`` makes any symlink
    on the way an ``ELOOP`` error (for ``/proc`` and ``/sys`` destinations).
    The caller owns (and closes) the returned fd.
    """
    pending = _components(path)
    if pending:
        resolve = rsys.RESOLVE_IN_ROOT | rsys.RESOLVE_NO_MAGICLINKS
        if no_symlinks:
            resolve |= rsys.RESOLVE_NO_SYMLINKS
        try:
            return rsys.openat2(root_fd, "/".join(pending), os.O_PATH | os.O_CLOEXEC, resolve)
        except OSError:
            pass  # to create, refused, or no openat2: the walk decides (and says why)
    pending.reverse()  # a stack: the next component is pending[-1]
    stack = [os.dup(root_fd)]
    names: list[str] = []
    links = 0
    try:
        while pending:
            name = pending.pop()
            if name == "..":
                if len(stack) > 1:
                    os.close(stack.pop())
                    names.pop()
                continue
            here = stack[-1]
            try:
                fd = os.open(name, _OPEN, dir_fd=here)
            except FileNotFoundError:
                if create is None:
                    raise _error(errno.ENOENT, names, name) from None
                _create(here, name, "dir" if pending or create == "dir" else "file", mode)
                fd = os.open(name, _OPEN, dir_fd=here)
            st = os.fstat(fd)
            if stat.S_ISLNK(st.st_mode):
                try:
                    target = os.readlink("", dir_fd=fd)
                finally:
                    os.close(fd)
                links += 1
                if no_symlinks or links > MAX_SYMLINKS:
                    raise _error(errno.ELOOP, names, name)
                if target.startswith("/"):
                    while len(stack) > 1:
                        os.close(stack.pop())
                    names.clear()
                pending.extend(reversed(_components(target)))
                continue
            if pending and not stat.S_ISDIR(st.st_mode):
                os.close(fd)
                raise _error(errno.ENOTDIR, names, name)
            stack.append(fd)
            names.append(name)
        result = stack.pop()
    finally:
        for fd in stack:
            os.close(fd)
    return result


def resolve(root: str, path: str) -> str:
    """The host path that ``path`` inside ``root`` resolves to (existing paths only).

    For messages and tests; the runtime itself works on the fds.
    """
    root_fd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fd = open_in_root(root_fd, path)
    finally:
        os.close(root_fd)
    try:
        return os.readlink(fd_path(fd))
    finally:
        os.close(fd)


def _create(dir_fd: int, name: str, kind: str, mode: int) -> None:
    try:
        if kind == "dir":
            os.mkdir(name, mode, dir_fd=dir_fd)
        else:
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
            os.close(os.open(name, flags, 0o644, dir_fd=dir_fd))
    except FileExistsError:
        pass  # raced with another creator (or a dangling symlink): the next open decides


def _error(code: int, names: list[str], name: str) -> OSError:
    where = "/" + "/".join([*names, name])
    return OSError(code, os.strerror(code), where)
