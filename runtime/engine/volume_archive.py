"""A volume's content as a tar stream, and back: ``volume backup`` / ``volume restore``.

**Backup** writes a POSIX (pax) tar of the volume's directory to a stream:
the directory itself as ``./``, then its content in name order, with numeric
owners (no user names: ids are what the container sees), modes (setuid,
setgid and sticky bits too), extended attributes (``SCHILY.xattr.*``, as GNU
tar and containerd write them), hardlinks (a later name of a file is a link
entry), symlinks, device nodes, fifos and mtimes in whole seconds (so a
backup of a restored volume is the same bytes). Sockets are skipped (not
content); so is anything mounted below the directory (another filesystem).
The walk goes through directory fds with ``O_NOFOLLOW``: a symlink in the
volume is stored as a symlink and never followed. A file that shrinks while
it is read (only possible when its writers were not paused) is padded with
zeros to the size announced in its header, so the archive stays readable.

**Restore** unpacks with :func:`runtime.engine.unpack.unpack`, the unpacker
built for hostile image layers: a name that climbs out (``../x``) or
anything else it refuses fails the restore, and nothing is ever written
outside the volume (absolute names, symlinked parents are resolved inside
it). It unpacks into a staging directory *inside* the volume (same
filesystem, so the swap is renames), and only when the whole archive is in
does it swap: the old content moves aside into ``.pyreconcile-old-*``, the
new content moves in, the old is deleted. A failure before the swap leaves
the volume as it was; a crash during it leaves the old content in
``.pyreconcile-old-*`` — never lost: the next restore refuses to run until
an operator has looked at it.
"""

from __future__ import annotations

import errno
import os
import stat
import tarfile
import tempfile
from typing import BinaryIO

from runtime import errors
from runtime.engine import tarstream, unpack, volume_fs

STAGING_PREFIX = ".pyreconcile-restore-"
OLD_PREFIX = ".pyreconcile-old-"
_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_PATH = os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC
_CHUNK = 1 << 20
_SKIPPED_XATTRS = ("trusted.overlay.", "user.overlay.")
LIMITS = tarstream.Limits(max_bytes=1 << 50, max_entries=100_000_000, max_ratio=1 << 20)


# -- backup --------------------------------------------------------------------------


def _xattrs(fd: int) -> dict[str, str]:
    """The extended attributes of the entry at the O_PATH ``fd``, as pax headers."""
    path = f"/proc/self/fd/{fd}"
    try:
        keys = sorted(os.listxattr(path))
    except OSError as exc:
        if exc.errno in (errno.ENOTSUP, errno.EOPNOTSUPP):
            return {}
        raise
    headers = {}
    for key in keys:
        if key.startswith(_SKIPPED_XATTRS):
            continue
        value = os.getxattr(path, key)
        headers[f"SCHILY.xattr.{key}"] = value.decode("utf-8", "surrogateescape")
    return headers


class _Exactly:
    """``size`` bytes of ``fd``: short reads (a file that shrank) padded with zeros."""

    def __init__(self, fd: int, size: int) -> None:
        self.fd, self.left = fd, size

    def read(self, n: int = -1) -> bytes:
        if self.left <= 0:
            return b""
        want = self.left if n < 0 else min(n, self.left)
        data = os.read(self.fd, min(want, _CHUNK))
        if not data:
            data = bytes(min(want, _CHUNK))
        self.left -= len(data)
        return data


class _Writer:
    def __init__(self, tar: tarfile.TarFile, dev: int) -> None:
        self.tar = tar
        self.dev = dev
        self.links: dict[tuple[int, int], str] = {}
        self.entries = 0

    def info(self, name: str, st: os.stat_result, kind: bytes) -> tarfile.TarInfo:
        info = tarfile.TarInfo(name)
        info.type = kind
        info.mode = stat.S_IMODE(st.st_mode)
        info.uid, info.gid = st.st_uid, st.st_gid
        info.uname = info.gname = ""
        info.mtime = st.st_mtime_ns // 1_000_000_000
        return info

    def add(self, info: tarfile.TarInfo, data: _Exactly | None = None) -> None:
        self.tar.addfile(info, data)
        self.entries += 1

    def root(self, fd: int) -> None:
        info = self.info(".", os.fstat(fd), tarfile.DIRTYPE)
        info.pax_headers = _xattrs(fd)
        self.add(info)
        self.walk(fd, "")

    def walk(self, dir_fd: int, prefix: str) -> None:
        for name in sorted(os.listdir(dir_fd)):
            st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
            self.entry(dir_fd, name, st, prefix + name)

    def entry(self, dir_fd: int, name: str, st: os.stat_result, arcname: str) -> None:
        mode = st.st_mode
        if stat.S_ISSOCK(mode) or st.st_dev != self.dev:
            return  # not content / another filesystem mounted here
        if stat.S_ISLNK(mode):
            info = self.info(arcname, st, tarfile.SYMTYPE)
            info.linkname = os.readlink(name, dir_fd=dir_fd)
            self.add(info)
            return
        key = (st.st_dev, st.st_ino)
        if not stat.S_ISDIR(mode) and st.st_nlink > 1 and key in self.links:
            info = self.info(arcname, st, tarfile.LNKTYPE)
            info.linkname = self.links[key]
            self.add(info)
            return
        handle = os.open(name, _PATH, dir_fd=dir_fd)
        try:
            xattrs = _xattrs(handle)
        finally:
            os.close(handle)
        if stat.S_ISDIR(mode):
            info = self.info(arcname, st, tarfile.DIRTYPE)
            info.pax_headers = xattrs
            self.add(info)
            fd = os.open(name, _DIR, dir_fd=dir_fd)
            try:
                self.walk(fd, arcname + "/")
            finally:
                os.close(fd)
            return
        if stat.S_ISREG(mode):
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
            try:
                st = os.fstat(fd)
                info = self.info(arcname, st, tarfile.REGTYPE)
                info.size = st.st_size
                info.pax_headers = xattrs
                if st.st_nlink > 1:
                    self.links[key] = arcname
                self.add(info, _Exactly(fd, st.st_size))
            finally:
                os.close(fd)
            return
        if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
            kind = tarfile.CHRTYPE if stat.S_ISCHR(mode) else tarfile.BLKTYPE
            info = self.info(arcname, st, kind)
            info.devmajor, info.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
        elif stat.S_ISFIFO(mode):
            info = self.info(arcname, st, tarfile.FIFOTYPE)
        else:
            return
        info.pax_headers = xattrs
        if st.st_nlink > 1:
            self.links[key] = arcname
        self.add(info)


def backup(directory: str, out: BinaryIO, what: str) -> int:
    """Write ``directory`` as a tar to ``out``; the number of entries written."""
    with errors.map_os_errors(f"{what}: read {directory}"):
        fd = os.open(directory, _DIR)
        try:
            with tarfile.open(
                fileobj=out,
                mode="w|",
                format=tarfile.PAX_FORMAT,
                encoding="utf-8",
                errors="surrogateescape",
                bufsize=_CHUNK,
            ) as tar:
                writer = _Writer(tar, os.fstat(fd).st_dev)
                writer.root(fd)
        finally:
            os.close(fd)
    return writer.entries


# -- restore ---------------------------------------------------------------------------


def leftovers(directory: str) -> list[str]:
    """What an interrupted restore left: old content set aside (never deleted by us)."""
    with errors.map_os_errors(f"read {directory}"):
        return sorted(n for n in os.listdir(directory) if n.startswith(OLD_PREFIX))


def _entries(directory: str, *skip: str) -> list[str]:
    return sorted(n for n in os.listdir(directory) if n not in skip)


def restore(directory: str, archive: BinaryIO, what: str, *, replace: bool) -> int:
    """Make ``directory`` hold exactly the archive's content; the entries unpacked."""
    kept = leftovers(directory)
    if kept:
        raise errors.FailedPrecondition(
            f"{what}: an earlier restore was interrupted and left the previous content in "
            f"{os.path.join(directory, kept[0])}; move it back or delete it, then restore again"
        )
    with errors.map_os_errors(f"{what}: read {directory}"):
        for stale in os.listdir(directory):
            if stale.startswith(STAGING_PREFIX):  # a half-unpacked archive: nobody's data
                volume_fs.remove_tree(os.path.join(directory, stale))
        if _entries(directory) and not replace:
            raise errors.FailedPrecondition(
                f"{what}: the volume is not empty; restore --replace replaces its content "
                "(back it up first if you may need it)"
            )
        staging = tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=directory)
    try:
        try:
            summary = unpack.unpack(archive, staging, limits=LIMITS, what=f"{what}: archive")
        except errors.InvalidSpec as exc:
            raise errors.InvalidSpec(f"{exc}; refused, the volume was not changed") from exc
    except BaseException:
        volume_fs.remove_tree(staging)
        raise
    _swap(directory, staging, what)
    return summary.entries


def _swap(directory: str, staging: str, what: str) -> None:
    """Old content aside, the staging content in, the root's metadata, old content gone."""
    with errors.map_os_errors(f"{what}: set the old content of {directory} aside"):
        old = tempfile.mkdtemp(prefix=OLD_PREFIX, dir=directory)
        root_st = os.stat(staging, follow_symlinks=False)
        moved_out: list[str] = []
        moved_in: list[str] = []
        top = os.open(directory, _DIR)
    try:
        old_fd = os.open(old, _DIR)
        new_fd = os.open(staging, _DIR)
        try:
            keep = (os.path.basename(old), os.path.basename(staging))
            try:
                for name in _entries(directory, *keep):
                    os.rename(name, name, src_dir_fd=top, dst_dir_fd=old_fd)
                    moved_out.append(name)
                for name in _entries(staging):
                    os.rename(name, name, src_dir_fd=new_fd, dst_dir_fd=top)
                    moved_in.append(name)
            except OSError as exc:
                if _undo(top, old_fd, new_fd, moved_out, moved_in, exc):
                    _discard(old, staging, exc)
                raise errors.category_for_errno(exc.errno)(
                    f"{what}: swap the restored content in: {(exc.strerror or '').lower()}; "
                    "the previous content was put back"
                ) from exc
            with errors.map_os_errors(f"{what}: set the owner and mode of {directory}"):
                _copy_root_meta(new_fd, top, root_st)
        finally:
            os.close(old_fd)
            os.close(new_fd)
        with errors.map_os_errors(f"{what}: remove {staging}"):
            os.rmdir(staging)
        volume_fs.remove_tree(old)
        with errors.map_os_errors(f"{what}: set the times of {directory}"):
            os.utime(top, ns=(root_st.st_atime_ns, root_st.st_mtime_ns))  # after the removals
    finally:
        os.close(top)


def _undo(
    top: int,
    old_fd: int,
    new_fd: int,
    moved_out: list[str],
    moved_in: list[str],
    exc: BaseException,
) -> bool:
    """Put the previous content back; False (and a note) when that failed too."""
    try:
        for name in moved_in:
            os.rename(name, name, src_dir_fd=top, dst_dir_fd=new_fd)
        for name in moved_out:
            os.rename(name, name, src_dir_fd=old_fd, dst_dir_fd=top)
    except OSError as undo:
        exc.add_note(f"putting the previous content back failed too: {undo}")
        return False
    return True


def _discard(old: str, staging: str, exc: BaseException) -> None:
    """After an undone swap: the (empty) old directory and the unpacked archive go."""
    try:
        os.rmdir(old)
        volume_fs.remove_tree(staging)
    except (OSError, errors.RuntimeError_) as cleanup:
        exc.add_note(f"removing {old} or {staging} failed: {cleanup}")


def _copy_root_meta(src: int, dst: int, st: os.stat_result) -> None:
    """The archive root's owner, mode and xattrs onto the volume's directory."""
    os.fchown(dst, st.st_uid, st.st_gid)
    os.fchmod(dst, stat.S_IMODE(st.st_mode))
    src_path, dst_path = f"/proc/self/fd/{src}", f"/proc/self/fd/{dst}"
    try:
        wanted = {k: os.getxattr(src_path, k) for k in os.listxattr(src_path)}
        for key in os.listxattr(dst_path):
            if key not in wanted and not key.startswith(_SKIPPED_XATTRS):
                os.removexattr(dst_path, key)
        for key, value in wanted.items():
            os.setxattr(dst_path, key, value)
    except OSError as exc:
        if exc.errno not in (errno.ENOTSUP, errno.EOPNOTSUPP):
            raise
