"""Filesystem helpers that keep volume data safe: paths resolved inside a
volume, removal that never crosses a mount, emptiness.

* ``open_inside`` resolves a ``subPath`` one component at a time from an
  ``O_PATH`` fd of the volume, never letting the kernel follow a symlink. A
  relative symlink is followed by us, inside the volume; one that climbs above
  the volume (``a -> ../../etc``) or is absolute is refused, as Kubernetes
  refuses such a subPath (CVE-2017-1002101). The caller binds the result
  through its fd (``/proc/self/fd/N``), so a container that swaps a directory
  for a symlink after the check gains nothing.
* ``remove_tree`` refuses to run while anything is mounted at or below the
  path: ``shutil.rmtree`` would otherwise delete the content of a bind mount
  (a host directory) or of a still-mounted device.
"""

from __future__ import annotations

import os
import shutil
import stat

from runtime import errors
from runtime.engine import mounts

_PATH = os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC
STAGING_DIR = "volumes"  # in a bundle: the staging points of subPath mounts
MAX_SYMLINK_HOPS = 40


def _unescape(field: str) -> str:
    for escape, char in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        field = field.replace(escape, char)
    return field


def mounts_at_or_below(path: str) -> list[str]:
    """Mount points at or below ``path`` in this mount namespace."""
    real = os.path.realpath(path)
    prefix = real.rstrip("/") + "/"
    with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as f:
        points = [_unescape(line.split()[4]) for line in f]
    return [p for p in points if p == real or p.startswith(prefix)]


def remove_tree(path: str) -> None:
    """Remove ``path`` and everything below it, unless something is mounted there."""
    if not os.path.lexists(path):
        return
    busy = mounts_at_or_below(path)
    if busy:
        raise errors.FailedPrecondition(
            f"refusing to remove {path}: {busy[0]} is still mounted (its data would go too); "
            "unmount it first"
        )
    with errors.map_os_errors(f"remove {path}"):
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)  # fd-based on Linux: immune to symlinks inside
        else:
            os.unlink(path)


def is_empty(path: str) -> bool:
    with errors.map_os_errors(f"read {path}"), os.scandir(path) as entries:
        return next(entries, None) is None


def open_inside(root: str, relative: str, *, what: str, create: bool = True) -> int:
    """An ``O_PATH`` fd of ``relative`` inside the directory ``root``.

    Missing directories are created (0755, root) when ``create`` is set; the
    last component may be an existing file. Raises ``InvalidSpec`` when the path
    escapes ``root`` (``..`` above it, an absolute symlink, a symlink climbing
    out) and ``NotFound`` when a component is missing and ``create`` is off.
    """
    with errors.map_os_errors(f"open {root}"):
        fds = [os.open(root, _PATH | os.O_DIRECTORY)]
    todo = list(reversed([p for p in relative.split("/") if p not in ("", ".")]))
    hops = 0
    try:
        while todo:
            name = todo.pop()
            if name == "..":
                if len(fds) == 1:
                    raise errors.InvalidSpec(f"{what}: {relative!r} escapes {root}")
                os.close(fds.pop())
                continue
            try:
                st: os.stat_result | None = os.stat(name, dir_fd=fds[-1], follow_symlinks=False)
            except FileNotFoundError:
                st = None
            if st is None:
                if not create:
                    raise errors.NotFound(f"{what}: {relative!r} does not exist in {root}")
                with errors.map_os_errors(f"{what}: create {name} in {root}"):
                    os.mkdir(name, 0o755, dir_fd=fds[-1])
                    st = os.stat(name, dir_fd=fds[-1], follow_symlinks=False)
            if stat.S_ISLNK(st.st_mode):
                hops += 1
                target = os.readlink(name, dir_fd=fds[-1])
                if target.startswith("/") or hops > MAX_SYMLINK_HOPS:
                    raise errors.InvalidSpec(
                        f"{what}: {relative!r} escapes {root} through the symlink {name} -> "
                        f"{target}; a subPath must stay inside its volume"
                    )
                todo.extend(reversed([p for p in target.split("/") if p not in ("", ".")]))
                continue
            if not stat.S_ISDIR(st.st_mode) and todo:
                raise errors.InvalidSpec(f"{what}: {name} in {relative!r} is not a directory")
            with errors.map_os_errors(f"{what}: open {name} in {root}"):
                fds.append(os.open(name, _PATH, dir_fd=fds[-1]))
        return fds.pop()
    finally:
        for fd in fds:
            os.close(fd)


def release_staging(bundle_dir: str) -> None:
    """Unmount and remove a bundle's subPath staging points (idempotent); called by
    the task's clean-up (:func:`runtime.engine.tasks.clean_up_bundle`)."""
    staging = os.path.join(bundle_dir, STAGING_DIR)
    if not os.path.isdir(staging):
        return
    for name in os.listdir(staging):
        mounts.unmount(os.path.join(staging, name))
    remove_tree(staging)
