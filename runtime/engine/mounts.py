"""Mount descriptions, and performing them.

A snapshotter returns ``Mount`` values and never mounts anything itself
(containerd's model), so it can be swapped and tested without privileges;
``mount_all`` performs them through ``runtime.sys`` and ``unmount`` undoes
them. ``writable_dir``/``lower_dirs`` read a description back, so a layer can
be applied straight into an overlay upper directory without mounting.

Options are Linux's ``mount(8)`` words, read by the OCI runtime's parser
(``runtime.oci.mountopts``): flags (``ro``, ``rbind``, ``nosuid``, propagation
``rprivate``…) become mount flags, anything else (``lowerdir=…``,
``index=off``) goes into the filesystem's data string.

Overlay data is limited to one page by the kernel. A long ``lowerdir`` chain
(about 100 layers under /var/lib/pyreconcile) is shortened without ``chdir``:
the common parent directory is opened and the paths are rewritten as
``/proc/self/fd/N/<id>/fs``, which the kernel resolves at mount time; the fd
is closed afterwards. Beyond that the mount fails with a clear error.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import os
from collections.abc import Iterator, Sequence

import runtime.sys as rsys
from runtime import errors
from runtime.oci import mountopts

MAX_STACKED = 64
_PATH_OPTIONS = ("lowerdir=", "upperdir=", "workdir=")


@dataclasses.dataclass(frozen=True)
class Mount:
    """One mount to perform: ``mount -t TYPE -o OPTIONS SOURCE TARGET``.

    ``target`` is relative to the directory given to ``mount_all`` (None: that
    directory itself).
    """

    type: str
    source: str
    target: str | None = None
    options: tuple[str, ...] = ()


def _option_value(mount: Mount, prefix: str) -> str | None:
    for option in mount.options:
        if option.startswith(prefix):
            return option[len(prefix) :]
    return None


def writable_dir(mounts: Sequence[Mount]) -> str:
    """The directory that receives writes (an overlay's upperdir, a rw bind's source)."""
    if len(mounts) == 1:
        m = mounts[0]
        if m.type == "overlay":
            upper = _option_value(m, "upperdir=")
            if upper:
                return upper
        elif m.type == "bind" and "ro" not in m.options:
            return m.source
    raise errors.InvalidSpec(f"mounts {mounts!r} have no single writable directory")


def lower_dirs(mounts: Sequence[Mount]) -> list[str]:
    """The read-only layers below, top first (an overlay's lowerdir chain)."""
    if len(mounts) == 1 and mounts[0].type == "overlay":
        lower = _option_value(mounts[0], "lowerdir=")
        return lower.split(":") if lower else []
    return []


def page_size() -> int:
    return os.sysconf("SC_PAGE_SIZE")


@contextlib.contextmanager
def _fitted_overlay_data(data: str) -> Iterator[str]:
    """``data`` as is when it fits in a page, else with /proc/self/fd paths."""
    limit = page_size() - 1
    if len(os.fsencode(data)) <= limit:
        yield data
        return
    paths = []
    for option in data.split(","):
        for prefix in _PATH_OPTIONS:
            if option.startswith(prefix):
                paths += option[len(prefix) :].split(":")
    common = os.path.commonpath(paths) if paths else ""
    if not common or common == "/":
        raise errors.InvalidSpec(f"overlay options are {len(data)} bytes, over one page")
    fd = os.open(common, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        short = f"/proc/self/fd/{fd}"
        fitted = []
        for option in data.split(","):
            for prefix in _PATH_OPTIONS:
                if option.startswith(prefix):
                    dirs = option[len(prefix) :].split(":")
                    option = prefix + ":".join(short + d[len(common) :] for d in dirs)
            fitted.append(option)
        shortened = ",".join(fitted)
        if len(os.fsencode(shortened)) > limit:
            raise errors.InvalidSpec(
                f"overlay options are {len(shortened)} bytes even shortened, over one page: "
                "the image has too many layers for one overlay mount"
            )
        yield shortened
    finally:
        os.close(fd)


def _mount_one(m: Mount, target: str) -> str:
    dest = target if m.target is None else os.path.join(target, m.target.lstrip("/"))
    opts = mountopts.parse(list(m.options), m.type)
    what = f"mount {m.type} {m.source} at {dest}"
    with errors.map_os_errors(what):
        if opts.bind:
            bind = rsys.MS_BIND | (rsys.MS_REC if opts.recursive else 0)
            rsys.mount(m.source, dest, None, bind, None)
            if opts.flags:  # a bind mount ignores other flags until it is remounted
                remount = rsys.MS_REMOUNT | rsys.MS_BIND | opts.flags
                rsys.mount(None, dest, None, remount, None)
        elif m.type == "overlay":
            with _fitted_overlay_data(opts.data) as data:
                rsys.mount(m.source or "overlay", dest, "overlay", opts.flags, data)
        else:
            rsys.mount(m.source, dest, m.type, opts.flags, opts.data or None)
        for propagation in opts.propagation:  # the kernel takes one word per call
            rsys.mount(None, dest, None, propagation, None)
    return dest


def mount_all(mounts: Sequence[Mount], target: str) -> None:
    """Perform ``mounts`` in order at ``target``; on failure undo what was done."""
    done: list[str] = []
    try:
        for m in mounts:
            done.append(_mount_one(m, target))
    except BaseException as exc:
        for dest in reversed(done):
            try:
                unmount(dest)
            except errors.RuntimeError_ as cleanup:
                exc.add_note(f"undoing the mount at {dest} failed too: {cleanup}")
        raise


def unmount(target: str) -> None:
    """Detach every mount stacked at ``target``; nothing mounted (or no such path) is fine."""
    flags = rsys.MNT_DETACH | rsys.UMOUNT_NOFOLLOW
    for _ in range(MAX_STACKED):
        try:
            rsys.umount2(target, flags)
        except OSError as exc:
            if exc.errno in (errno.EINVAL, errno.ENOENT):
                return  # not a mount point (any more), or absent
            raise errors.category_for_errno(exc.errno)(
                f"unmount {target}: {(exc.strerror or str(exc)).lower()}"
            ) from exc
    raise errors.FailedPrecondition(f"unmount {target}: still mounted after {MAX_STACKED} tries")


def _unescape(field: str) -> str:
    for escape, char in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        field = field.replace(escape, char)
    return field


def _mountinfo() -> list[list[str]]:
    with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as f:
        return [line.split() for line in f]


def is_mounted(target: str) -> bool:
    """Whether ``target`` is a mount point in this mount namespace."""
    real = os.path.realpath(target)
    return any(_unescape(fields[4]) == real for fields in _mountinfo())


def overlay_upper_dirs() -> set[str]:
    """The upper directories of the overlay mounts in this mount namespace."""
    found = set()
    for fields in _mountinfo():
        sep = fields.index("-")
        if fields[sep + 1] != "overlay":
            continue
        for option in fields[sep + 3].split(","):
            if option.startswith("upperdir="):
                found.add(_unescape(option[len("upperdir=") :]))
    return found
