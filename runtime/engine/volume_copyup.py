"""Copy-up: an empty volume gets the image's content at its mount path, as Docker does.

When a container first starts with a volume (named or anonymous, without
``noCopy``, without ``subPath``) mounted at a path where its image has a
directory, and the volume is empty, the directory's content is copied into
the volume with owners, modes (setuid and sticky bits too), extended
attributes, hardlinks, symlinks, device nodes, fifos and mtimes; the volume's
own directory takes the owner, mode and xattrs of the image's directory (so an
image's ``/data`` owned by uid 1000 makes a volume its non-root user can write).
A volume that holds anything at all is never touched.

The source is the container's mounted rootfs. Its path is resolved as a
chroot would (an absolute symlink starts again at the rootfs, ``..`` stops at
it), one component at a time with ``O_NOFOLLOW``: an image cannot point the
copy at a host path. Every entry is created relative to directory fds,
exclusively (``O_EXCL``), never following a symlink.
"""

from __future__ import annotations

import errno
import os
import stat

from runtime import errors

_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_PATH = os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC
_SKIPPED_XATTRS = ("trusted.overlay.", "user.overlay.")
_CHUNK = 1 << 20
MAX_SYMLINK_HOPS = 40


def open_in_root(root: str, path: str) -> int | None:
    """A directory fd of ``path`` inside ``root`` with chroot semantics, or None when
    the path is missing or not a directory."""
    fds = [os.open(root, _DIR)]
    todo = list(reversed([p for p in path.split("/") if p not in ("", ".")]))
    hops = 0
    try:
        while todo:
            name = todo.pop()
            if name == "..":
                if len(fds) > 1:
                    os.close(fds.pop())
                continue
            try:
                st = os.stat(name, dir_fd=fds[-1], follow_symlinks=False)
            except (FileNotFoundError, NotADirectoryError):
                return None
            if stat.S_ISLNK(st.st_mode):
                hops += 1
                if hops > MAX_SYMLINK_HOPS:
                    return None
                target = os.readlink(name, dir_fd=fds[-1])
                if target.startswith("/"):
                    while len(fds) > 1:
                        os.close(fds.pop())
                todo.extend(reversed([p for p in target.split("/") if p not in ("", ".")]))
                continue
            if not stat.S_ISDIR(st.st_mode):
                return None
            fds.append(os.open(name, _DIR, dir_fd=fds[-1]))
        return fds.pop()
    finally:
        for fd in fds:
            os.close(fd)


def copy_up(rootfs: str, path: str, volume_dir: str) -> bool:
    """Copy the image's ``path`` (inside the mounted ``rootfs``) into ``volume_dir``
    if that is empty; True when something was copied."""
    what = f"copy {path} of the image into volume directory {volume_dir}"
    with errors.map_os_errors(what):
        src = open_in_root(rootfs, path)
        if src is None:
            return False
        try:
            dst = os.open(volume_dir, _DIR)
            try:
                with os.scandir(dst) as entries:
                    if next(entries, None) is not None:
                        return False
                _Copier(dst).copy_dir(src, dst, "")
                _copy_meta_fd(src, dst)
            finally:
                os.close(dst)
        finally:
            os.close(src)
    return True


def _copy_xattrs(src: str, dst: str) -> None:
    """Extended attributes from one ``/proc/self/fd`` path to another."""
    try:
        keys = os.listxattr(src)
    except OSError as exc:
        if exc.errno in (errno.ENOTSUP, errno.EOPNOTSUPP):
            return
        raise
    for key in keys:
        if key.startswith(_SKIPPED_XATTRS):
            continue
        try:
            os.setxattr(dst, key, os.getxattr(src, key))
        except OSError as exc:
            if exc.errno not in (errno.ENOTSUP, errno.EOPNOTSUPP):
                raise


def _copy_meta_fd(src_fd: int, dst_fd: int) -> None:
    """Owner, mode, xattrs (chown clears security.capability, so after it) and times."""
    st = os.fstat(src_fd)
    os.fchown(dst_fd, st.st_uid, st.st_gid)
    os.fchmod(dst_fd, stat.S_IMODE(st.st_mode))
    _copy_xattrs(f"/proc/self/fd/{src_fd}", f"/proc/self/fd/{dst_fd}")
    os.utime(dst_fd, ns=(st.st_atime_ns, st.st_mtime_ns))


class _Copier:
    def __init__(self, dst_root: int) -> None:
        self.dst_root = dst_root
        self.links: dict[tuple[int, int], str] = {}  # (dev, ino) -> path of its first copy

    def copy_dir(self, src: int, dst: int, rel: str) -> None:
        with os.scandir(src) as it:
            names = sorted(e.name for e in it)
        for name in names:
            st = os.stat(name, dir_fd=src, follow_symlinks=False)
            self.copy_entry(src, dst, name, st, f"{rel}{name}")

    def copy_entry(self, src: int, dst: int, name: str, st: os.stat_result, rel: str) -> None:
        mode = st.st_mode
        if stat.S_ISDIR(mode):
            os.mkdir(name, 0o700, dir_fd=dst)
            s = os.open(name, _DIR, dir_fd=src)
            try:
                d = os.open(name, _DIR, dir_fd=dst)
                try:
                    self.copy_dir(s, d, rel + "/")
                    _copy_meta_fd(s, d)
                finally:
                    os.close(d)
            finally:
                os.close(s)
            return
        if stat.S_ISSOCK(mode):
            return  # a socket is not content
        key = (st.st_dev, st.st_ino)
        if not stat.S_ISLNK(mode) and st.st_nlink > 1:
            first = self.links.get(key)
            if first is not None:
                os.link(
                    first, name, src_dir_fd=self.dst_root, dst_dir_fd=dst, follow_symlinks=False
                )
                return
            self.links[key] = rel
        if stat.S_ISREG(mode):
            self._copy_file(src, dst, name)
        elif stat.S_ISLNK(mode):
            os.symlink(os.readlink(name, dir_fd=src), name, dir_fd=dst)
        elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
            os.mknod(name, stat.S_IFMT(mode) | 0o600, st.st_rdev, dir_fd=dst)
        elif stat.S_ISFIFO(mode):
            os.mkfifo(name, 0o600, dir_fd=dst)
        else:
            return
        os.chown(name, st.st_uid, st.st_gid, dir_fd=dst, follow_symlinks=False)
        if not stat.S_ISLNK(mode):
            os.chmod(name, stat.S_IMODE(mode), dir_fd=dst, follow_symlinks=False)
            s = os.open(name, _PATH, dir_fd=src)
            try:
                d = os.open(name, _PATH, dir_fd=dst)
                try:
                    _copy_xattrs(f"/proc/self/fd/{s}", f"/proc/self/fd/{d}")
                finally:
                    os.close(d)
            finally:
                os.close(s)
        os.utime(name, ns=(st.st_atime_ns, st.st_mtime_ns), dir_fd=dst, follow_symlinks=False)

    @staticmethod
    def _copy_file(src: int, dst: int, name: str) -> None:
        s = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=src)
        try:
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
            d = os.open(name, flags, 0o600, dir_fd=dst)
            try:
                while True:
                    chunk = os.read(s, _CHUNK)
                    if not chunk:
                        break
                    view = memoryview(chunk)
                    while view:
                        view = view[os.write(d, view) :]
            finally:
                os.close(d)
        finally:
            os.close(s)
