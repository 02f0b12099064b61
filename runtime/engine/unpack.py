"""Unpack an image layer (a tar stream) into a directory, safely.

This is where a malicious layer is stopped. The rules:

* **Parsing and names** are ``tarstream``'s: bounded extended headers, no
  member list kept, ``..`` refused or clamped at the root, NUL refused. A
  non-directory entry naming the root itself (a symlink ``.`` or ``/``,
  CVE-2021-29136) is refused here; so are sparse files and unknown entry types.
* **Resolution.** Every operation happens relative to directory fds opened
  with ``O_PATH|O_NOFOLLOW|O_DIRECTORY``, one component at a time. The kernel
  never follows a symlink: when a *parent* component is a symlink made by the
  layer, we resolve its target ourselves *inside the root*, as a chroot would
  (containerd's semantics: ``a -> /`` then ``a/etc/x`` writes ``<root>/etc/x``).
  The last component is never followed: an existing entry there is unlinked
  (or, when it is a directory and the new entry is not, removed recursively
  with fd-based ``rmtree``) and created afresh, so writing over a hardlink
  never changes the other name's content.
* **Hardlinks** point at a non-directory inside the same tree, resolved the
  same way; ``linkat`` without ``AT_SYMLINK_FOLLOW`` links a symlink itself.
  A hardlink entry's owner and mode are not applied (they belong to the
  target: CVE-2021-32760 chmod-through-symlink).
* **Metadata** (owner, then mode incl. setuid/setgid/sticky, then PAX
  ``SCHILY.xattr.*``, then mtime) is applied with ``*at(…, AT_SYMLINK_NOFOLLOW)``
  calls; a symlink's mode is never touched. ``trusted.overlay.*`` and
  ``user.overlay.*`` xattrs from the layer are dropped. Directories get their
  mode and mtime at the end, deepest first, after their content is written,
  and only if the path still leads to the same directory without symlinks.
* **Whiteouts** become overlayfs's format: ``.wh.NAME`` → a 0:0 character
  device NAME (unless this layer made NAME itself: a whiteout only hides lower
  layers; a directory of this layer is then marked opaque instead);
  ``.wh..wh..opq`` → ``trusted.overlay.opaque=y`` on its directory; other
  ``.wh..wh.*`` (aufs bookkeeping) are ignored; ``.wh.``, ``.wh..``,
  ``.wh...`` and a ``.wh.`` prefix on a directory component are refused.
* **Missing parents** are created; when lower layers (``parents``, top first)
  have that directory, its owner, mode and mtime are copied from the first,
  so a layer that omits ``usr/`` does not turn ``usr`` 0755-root in the upper.
* **Limits** and the **diff_id** (sha256 of the whole uncompressed stream,
  read to EOF) come from ``tarstream``; the caller compares the diff_id with
  the image config's ``rootfs.diff_ids``.

Device nodes and whiteouts need ``CAP_MKNOD``: the engine unpacks as root into
``snapshots/<id>/fs`` below 0700 directories, so a setuid file or a device in
a layer is never reachable by other host users (CVE-2021-41091).
"""

from __future__ import annotations

import dataclasses
import errno
import os
import shutil
import stat
import tarfile
from collections.abc import Sequence

from runtime import errors
from runtime.engine import tarstream, unpack_writer

WHITEOUT_PREFIX = ".wh."
WHITEOUT_META_PREFIX = ".wh..wh."
WHITEOUT_OPAQUE = ".wh..wh..opq"
OPAQUE_XATTR = "trusted.overlay.opaque"
MAX_SYMLINK_HOPS = 40
DIR_CACHE_SIZE = 256  # resolved directories kept open (O_PATH fds)
_DIR_FLAGS = os.O_PATH | os.O_NOFOLLOW | os.O_DIRECTORY | os.O_CLOEXEC
_DROPPED_XATTRS = ("trusted.overlay.", "user.overlay.")
# errnos that a layer's content provokes (a name too long, a file where a
# directory is expected…): the layer is invalid, not the host.
_LAYER_ERRNOS = {
    errno.ELOOP, errno.ENOTDIR, errno.EISDIR, errno.ENAMETOOLONG, errno.EEXIST,
    errno.EMLINK, errno.EXDEV, errno.EINVAL, errno.ENOENT, errno.ENOTEMPTY,
}  # fmt: skip


# -- applying entries -----------------------------------------------------------


def _lstat(dir_fd: int, name: str) -> os.stat_result | None:
    try:
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None


def _strict_open(dir_fd: int, parts: Sequence[str]) -> int | None:
    """Open a directory below ``dir_fd`` refusing every symlink; None when absent."""
    fd = os.dup(dir_fd)
    try:
        for part in parts:
            nxt = os.open(part, _DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = nxt
    except OSError:
        os.close(fd)
        return None
    return fd


def _set_xattr(dir_fd: int, name: str, key: str, value: bytes) -> None:
    """``lsetxattr`` relative to a dir fd, through an O_PATH fd of the entry itself."""
    fd = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
    try:
        os.setxattr(f"/proc/self/fd/{fd}", key, value)
    finally:
        os.close(fd)


@dataclasses.dataclass
class _DirMeta:
    mode: int
    mtime_ns: int
    ino: tuple[int, int]


class _Applier:
    def __init__(self, root: str, parents: Sequence[str], what: str) -> None:
        self.root = root
        self.what = what
        self.root_fd = os.open(root, _DIR_FLAGS)
        self.parent_fds: list[int] = []
        self.dirs: dict[tuple[str, ...], _DirMeta] = {}
        self.newest_mtime: float | None = None
        # tar name of a directory -> (O_PATH fd, its symlink-free path); see ``_dir``
        self._cache: dict[tuple[str, ...], tuple[int, list[str]]] = {}
        self._retired: list[int] = []
        self._creator: dict[int, tuple[int, int]] = {}  # cached dir fd -> a new file's owner
        # read once: the engine never changes its umask; a stricter one set meanwhile by
        # another thread could only leave a file with fewer permissions than its layer's
        self._umask = _umask()
        # Names are looked up (``lstat``) only where something may exist: a lookup of an
        # absent name waits for the directory's lock while the writer creates files in
        # it. ``_fresh``: directories (symlink-free paths) that were empty when this
        # unpack began or made them; ``_made``: every name this unpack made in them.
        # A name missing from ``_made`` in a fresh directory is absent: were it not, the
        # O_EXCL create (mkdir, symlink, mknod, link) would fail loudly, never clobber.
        self._fresh: set[tuple[str, ...]] = set()
        self._made: set[tuple[str, ...]] = set()
        self.writer = unpack_writer.Writer()
        try:
            for parent in parents:
                self.parent_fds.append(os.open(parent, _DIR_FLAGS))
            if not os.listdir(root):
                self._fresh.add(())
        except OSError:
            self.close()
            raise

    def close(self) -> None:
        """Wait for the file writers, then close every fd (also after a failure)."""
        self.writer.close()
        self._forget_dirs()
        self._close_retired(force=True)
        for fd in [self.root_fd, *self.parent_fds]:
            os.close(fd)
        self.parent_fds = []

    def _forget_dirs(self) -> None:
        """Drop the remembered directories; their fds are closed once the entry being
        applied (which may hold one) is done and no queued file needs them."""
        self._retired += [fd for fd, _ in self._cache.values()]
        self._cache.clear()

    def _close_retired(self, force: bool = False) -> None:
        if not self._retired:
            return
        if len(self._retired) > 64:
            self.writer.barrier()
        elif not force and self.writer.busy():
            return
        while self._retired:
            fd = self._retired.pop()
            self._creator.pop(fd, None)
            os.close(fd)

    def _removing(self) -> None:
        """Before an existing entry is removed or replaced: queued files are written
        first, and no resolved directory is trusted afterwards."""
        self.writer.barrier()
        self._forget_dirs()

    def _dir(self, parts: Sequence[str]) -> tuple[int, list[str]]:
        """``open_dir(parts, create=True)``, remembered: consecutive entries of one
        directory resolve it once. A resolution stays true until an existing entry
        is removed or replaced (``_removing`` forgets them all): entries created
        since cannot change a path made only of entries that existed. The fd is
        borrowed (closed by the cache)."""
        key = tuple(parts)
        found = self._cache.get(key)
        if found is not None:
            return found
        found = self.open_dir(parts, create=True)
        if len(self._cache) >= DIR_CACHE_SIZE:
            oldest = next(iter(self._cache))
            self._retired.append(self._cache.pop(oldest)[0])
        self._cache[key] = found
        return found

    def _creation_owner(self, dir_fd: int) -> tuple[int, int]:
        """The owner the kernel gives a file created in ``dir_fd`` (a cached directory):
        our fsuid, and the directory's group when it is setgid, else our fsgid.
        Remembered until a directory entry changes an owner (``_own``)."""
        found = self._creator.get(dir_fd)
        if found is None:
            st = os.fstat(dir_fd)
            gid = st.st_gid if st.st_mode & stat.S_ISGID else os.getegid()
            found = self._creator[dir_fd] = (os.geteuid(), gid)
        return found

    # directories ---------------------------------------------------------------

    def open_dir(self, parts: Sequence[str], *, create: bool) -> tuple[int, list[str]]:
        """An O_PATH fd of the directory ``parts``, symlinks resolved inside the root,
        and its symlink-free path. Missing directories are made when ``create``."""
        fds = [os.dup(self.root_fd)]
        canon: list[str] = []
        todo = list(reversed(parts))
        hops = 0
        try:
            while todo:
                name = todo.pop()
                if name in ("", "."):
                    continue
                if name == "..":
                    if canon:
                        os.close(fds.pop())
                        canon.pop()
                    continue
                st = _lstat(fds[-1], name)
                if st is None and self.writer.busy():  # a queued file may be this name
                    self.writer.barrier()
                    st = _lstat(fds[-1], name)
                if st is None:
                    if not create:
                        raise errors.InvalidSpec(
                            f"{self.what}: {'/'.join([*canon, name])} does not exist"
                        )
                    self._make_parent(fds[-1], name, [*canon, name])
                    st = os.stat(name, dir_fd=fds[-1], follow_symlinks=False)
                if stat.S_ISLNK(st.st_mode):
                    hops += 1
                    if hops > MAX_SYMLINK_HOPS:
                        raise errors.InvalidSpec(f"{self.what}: too many levels of symlinks")
                    target = os.readlink(name, dir_fd=fds[-1])
                    if target.startswith("/"):
                        while len(fds) > 1:
                            os.close(fds.pop())
                        canon.clear()
                    todo.extend(reversed(target.split("/")))
                    continue
                if not stat.S_ISDIR(st.st_mode):
                    raise errors.InvalidSpec(
                        f"{self.what}: {'/'.join([*canon, name])} is not a directory"
                    )
                fds.append(os.open(name, _DIR_FLAGS, dir_fd=fds[-1]))
                canon.append(name)
            return fds.pop(), canon
        finally:
            for fd in fds:
                os.close(fd)

    def _make_parent(self, dir_fd: int, name: str, canon: list[str]) -> None:
        """A directory the layer did not list: copy a lower layer's, else 0755 root."""
        os.mkdir(name, 0o755, dir_fd=dir_fd)
        self._made.add(tuple(canon))
        self._fresh.add(tuple(canon))
        for parent_fd in self.parent_fds:
            fd = _strict_open(parent_fd, canon)
            if fd is None:
                continue
            try:
                st = os.fstat(fd)
            finally:
                os.close(fd)
            os.chown(name, st.st_uid, st.st_gid, dir_fd=dir_fd, follow_symlinks=False)
            mine = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
            self.dirs[tuple(canon)] = _DirMeta(
                stat.S_IMODE(st.st_mode), st.st_mtime_ns, (mine.st_dev, mine.st_ino)
            )
            return
        os.chmod(name, 0o755, dir_fd=dir_fd, follow_symlinks=False)

    def finish(self) -> None:
        """Modes and mtimes of directories, deepest first, once their content is in."""
        self.writer.barrier()
        for parts in sorted(self.dirs, key=len, reverse=True):
            meta = self.dirs[parts]
            if not parts:  # the root: our own directory, opened O_NOFOLLOW at the start
                os.chmod(self.root, meta.mode)
                os.utime(self.root, ns=(meta.mtime_ns, meta.mtime_ns))
                continue
            fd = _strict_open(self.root_fd, parts[:-1])
            if fd is None:
                continue  # replaced by a symlink or removed later in the layer
            try:
                found = _lstat(fd, parts[-1])
                if (
                    found is None
                    or not stat.S_ISDIR(found.st_mode)
                    or (found.st_dev, found.st_ino) != meta.ino
                ):
                    continue
                os.chmod(parts[-1], meta.mode, dir_fd=fd, follow_symlinks=False)
                ns = (meta.mtime_ns, meta.mtime_ns)
                os.utime(parts[-1], ns=ns, dir_fd=fd, follow_symlinks=False)
            finally:
                os.close(fd)

    # entries -------------------------------------------------------------------

    def apply(self, tar: tarfile.TarFile, member: tarfile.TarInfo) -> None:
        if member.type not in tarstream.ENTRY_TYPES:
            raise errors.InvalidSpec(
                f"{self.what}: entry {member.name!r} has unsupported type {member.type!r}"
            )
        if member.sparse is not None:
            raise errors.InvalidSpec(f"{self.what}: sparse file {member.name!r} is not supported")
        parts = tarstream.clean_name(member.name)
        if any(p.startswith(WHITEOUT_PREFIX) for p in parts[:-1]):
            raise errors.InvalidSpec(
                f"{self.what}: entry {member.name!r} has a whiteout prefix on a directory"
            )
        if not member.islnk():
            mtime = float(member.mtime)
            if self.newest_mtime is None or mtime > self.newest_mtime:
                self.newest_mtime = mtime
        if parts and parts[-1].startswith(WHITEOUT_PREFIX):
            self._whiteout(parts, member.name)
            return
        if not parts:
            if not member.isdir():
                raise errors.InvalidSpec(f"{self.what}: entry {member.name!r} replaces the root")
            self._own(None, "", member)
            st = os.stat(self.root, follow_symlinks=False)
            self.dirs[()] = _DirMeta(member.mode & 0o7777, _ns(member), (st.st_dev, st.st_ino))
            return
        dir_fd, canon = self._dir(parts[:-1])
        try:
            self._entry(tar, member, dir_fd, canon, parts[-1])
        finally:
            self._close_retired()

    def _entry(
        self, tar: tarfile.TarFile, m: tarfile.TarInfo, dir_fd: int, canon: list[str], name: str
    ) -> None:
        key = (*canon, name)
        if self.writer.pending(key):  # the same name twice: the first one is written first
            self.writer.barrier()
        existing: os.stat_result | None = None
        if key in self._made or tuple(canon) not in self._fresh:
            existing = _lstat(dir_fd, name)
        self._made.add(key)
        if m.isdir():
            if existing is not None and not stat.S_ISDIR(existing.st_mode):
                self._removing()
                os.unlink(name, dir_fd=dir_fd)
                existing = None
            if existing is None:
                os.mkdir(name, 0o700, dir_fd=dir_fd)
                self._fresh.add(key)
            self._own(dir_fd, name, m)
            st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
            self.dirs[(*canon, name)] = _DirMeta(m.mode & 0o7777, _ns(m), (st.st_dev, st.st_ino))
            return
        if m.islnk():
            self._hardlink(m, dir_fd, canon, name)
            return
        if existing is not None:
            self._removing()
            _remove(dir_fd, name, existing)
        if m.isreg():
            self._regular(tar, m, dir_fd, key, name)
            return
        if m.issym():
            if not m.linkname or len(os.fsencode(m.linkname)) >= tarstream.PATH_MAX:
                raise errors.InvalidSpec(f"{self.what}: symlink {m.name!r} has an invalid target")
            os.symlink(m.linkname, name, dir_fd=dir_fd)
        elif m.ischr() or m.isblk():
            kind = stat.S_IFCHR if m.ischr() else stat.S_IFBLK
            try:
                device = os.makedev(m.devmajor, m.devminor)
            except (OverflowError, ValueError) as exc:
                raise errors.InvalidSpec(f"{self.what}: device {m.name!r}: {exc}") from exc
            os.mknod(name, kind | 0o600, device, dir_fd=dir_fd)
        elif m.isfifo():
            os.mkfifo(name, 0o600, dir_fd=dir_fd)
        self._own(dir_fd, name, m)
        ns = (_ns(m), _ns(m))
        os.utime(name, ns=ns, dir_fd=dir_fd, follow_symlinks=False)

    def _regular(
        self, tar: tarfile.TarFile, m: tarfile.TarInfo, dir_fd: int, key: tuple[str, ...],
        name: str,
    ) -> None:  # fmt: skip
        """A regular file (absent now): small ones go to the writer's threads with their
        bytes, large ones are streamed here; all metadata through the file's fd."""
        created = None
        if self._umask is not None:
            created = (*self._creation_owner(dir_fd), m.mode & 0o777 & ~self._umask)
        meta = unpack_writer.FileMeta(
            *self._owner(m), m.mode & 0o7777, tuple(self._xattrs(m)), _ns(m), created
        )
        data = tar.extractfile(m)
        if m.size <= unpack_writer.ASYNC_MAX_SIZE:
            content = data.read() if data is not None else b""
            if len(content) != m.size:
                raise tarfile.ReadError(f"unexpected end of data in {m.name!r}")
            self.writer.submit(dir_fd, key, name, content, meta, m.name)
            return
        chunks = iter(lambda: data.read(tarstream.CHUNK), b"") if data is not None else iter(())
        unpack_writer.write_file(dir_fd, name, chunks, meta)

    def _owner(self, m: tarfile.TarInfo) -> tuple[int, int]:
        if not (0 <= m.uid < 0xFFFFFFFF and 0 <= m.gid < 0xFFFFFFFF):
            raise errors.InvalidSpec(f"{self.what}: entry {m.name!r} has an invalid uid/gid")
        return m.uid, m.gid

    @staticmethod
    def _xattrs(m: tarfile.TarInfo) -> list[tuple[str, bytes]]:
        """The entry's PAX ``SCHILY.xattr.*`` headers, without overlayfs's own."""
        found = []
        for key, value in m.pax_headers.items():
            if not key.startswith("SCHILY.xattr."):
                continue
            xattr = key[len("SCHILY.xattr.") :]
            if xattr.startswith(_DROPPED_XATTRS):
                continue
            found.append((xattr, value.encode("utf-8", "surrogateescape")))
        return found

    def _own(self, dir_fd: int | None, name: str, m: tarfile.TarInfo) -> None:
        """Owner, then mode (chown clears setuid), then xattrs (chown clears
        security.capability). Mode and mtime of directories come in ``finish``."""
        uid, gid = self._owner(m)
        if dir_fd is None or m.isdir():
            st = os.stat(self.root if dir_fd is None else name, dir_fd=dir_fd,
                         follow_symlinks=False)  # fmt: skip
            if st.st_mode & stat.S_ISGID:  # its group is given to the files created in it:
                self.writer.barrier()  # the queued ones were promised the current group
                self._creator.clear()
        if dir_fd is None:  # the root itself
            os.chown(self.root, uid, gid, follow_symlinks=False)
            dir_fd, name = self.root_fd, "."
        else:
            os.chown(name, uid, gid, dir_fd=dir_fd, follow_symlinks=False)
            if not m.issym() and not m.isdir():
                os.chmod(name, m.mode & 0o7777, dir_fd=dir_fd, follow_symlinks=False)
        for xattr, raw in self._xattrs(m):
            try:
                _set_xattr(dir_fd, name, xattr, raw)
            except OSError as exc:
                if exc.errno not in (errno.ENOTSUP, errno.EOPNOTSUPP):
                    raise

    def _hardlink(self, m: tarfile.TarInfo, dir_fd: int, canon: list[str], name: str) -> None:
        target = tarstream.clean_name(m.linkname, "hardlink target")
        if not target:
            raise errors.InvalidSpec(f"{self.what}: hardlink {m.name!r} points at the root")
        self.writer.barrier()  # the target may be a queued file
        src_fd, src_canon = self.open_dir(target[:-1], create=False)
        try:
            src = _lstat(src_fd, target[-1])
            if src is None:
                raise errors.InvalidSpec(
                    f"{self.what}: hardlink {m.name!r} points at {m.linkname!r}, "
                    "which is not in this layer"
                )
            if stat.S_ISDIR(src.st_mode):
                raise errors.InvalidSpec(f"{self.what}: hardlink {m.name!r} points at a directory")
            if (*src_canon, target[-1]) == (*canon, name):
                return  # a link to itself: nothing to do
            existing = _lstat(dir_fd, name)
            if existing is not None:
                self._removing()
                _remove(dir_fd, name, existing)
            os.link(target[-1], name, src_dir_fd=src_fd, dst_dir_fd=dir_fd, follow_symlinks=False)
        finally:
            os.close(src_fd)

    def _whiteout(self, parts: list[str], raw_name: str) -> None:
        base = parts[-1]
        self.writer.barrier()  # the name it hides may be a queued file of this layer
        dir_fd, canon = self.open_dir(parts[:-1], create=True)
        try:
            if base == WHITEOUT_OPAQUE:
                _set_xattr(dir_fd, ".", OPAQUE_XATTR, b"y")
            elif base.startswith(WHITEOUT_META_PREFIX):
                return  # aufs bookkeeping (.wh..wh.plnk…): meaningless here
            else:
                hidden = base[len(WHITEOUT_PREFIX) :]
                if hidden in ("", ".", ".."):
                    raise errors.InvalidSpec(f"{self.what}: invalid whiteout {raw_name!r}")
                existing = _lstat(dir_fd, hidden)
                if existing is None:
                    os.mknod(hidden, stat.S_IFCHR, os.makedev(0, 0), dir_fd=dir_fd)
                    self._made.add((*canon, hidden))
                elif stat.S_ISDIR(existing.st_mode):
                    _set_xattr(dir_fd, hidden, OPAQUE_XATTR, b"y")
                # else: this layer made the file; it already hides the lower one
        finally:
            os.close(dir_fd)


def _umask() -> int | None:
    """This process's umask, read without changing it (``Umask:`` in its status); None
    when the kernel does not say (every file then gets an explicit ``chmod``)."""
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return None


def _ns(m: tarfile.TarInfo) -> int:
    try:
        return int(float(m.mtime) * 1_000_000_000)
    except (OverflowError, ValueError) as exc:
        raise errors.InvalidSpec(f"entry {m.name!r} has an invalid mtime") from exc


def _remove(dir_fd: int, name: str, st: os.stat_result) -> None:
    if stat.S_ISDIR(st.st_mode):
        shutil.rmtree(name, dir_fd=dir_fd)  # fd-based: immune to symlinks inside
    else:
        os.unlink(name, dir_fd=dir_fd)


def unpack(
    stream: tarstream.Readable | tarstream.Prefetch,
    dest: str,
    *,
    parents: Sequence[str] = (),
    limits: tarstream.Limits | None = None,
    what: str | None = None,
) -> tarstream.Summary:
    """Apply the layer ``stream`` (plain, gzip, zstd, bzip2 or xz tar; or a
    ``tarstream.Prefetch`` of one) to ``dest``.

    ``dest`` is an existing directory, normally an empty snapshot; ``parents``
    are the directories of the lower layers, top first (read only, to copy the
    metadata of directories the layer omits). Raises ``InvalidSpec`` for a
    malformed or malicious layer and leaves ``dest`` half-written: the caller
    throws the snapshot away.
    """
    what = what or f"layer unpacked into {dest}"
    with errors.map_os_errors(f"open {dest}"):
        applier = _Applier(dest, parents, what)
    entries = 0
    try:
        reader: tarstream.HashingReader | None = None
        members = tarstream.iter_members(stream, limits or tarstream.Limits(), what)
        for tar, member, reader in members:  # noqa: B007 - the last one is used below
            entries += 1
            try:
                applier.apply(tar, member)
            except OSError as exc:
                raise _layer_error(f"{what}: entry {member.name!r}", exc) from exc
            except tarfile.TarError as exc:
                raise errors.InvalidSpec(f"{what}: entry {member.name!r}: {exc}") from exc
        with errors.map_os_errors(f"{what}: set directory modes"):
            applier.finish()
    except unpack_writer.Failed as exc:  # a file written by a worker thread
        raise _layer_error(f"{what}: entry {exc.entry!r}", exc.error) from exc.error
    finally:
        applier.close()
    if reader is None:  # pragma: no cover - tarfile refuses an empty stream
        raise errors.InvalidSpec(f"{what}: the layer is empty")
    return tarstream.Summary(
        diff_id=f"sha256:{reader.hash.hexdigest()}",
        size=reader.size,
        entries=entries,
        newest_mtime=applier.newest_mtime,
    )


def _layer_error(what: str, exc: OSError) -> errors.RuntimeError_:
    detail = (exc.strerror or str(exc)).lower()
    if exc.errno in _LAYER_ERRNOS:
        return errors.InvalidSpec(f"{what}: {detail}")
    if exc.errno == errno.EPERM:
        return errors.FailedPrecondition(f"{what}: {detail} (unpacking needs root)")
    return errors.category_for_errno(exc.errno)(f"{what}: {detail}")
