"""Writing a layer's regular files: through their own fd, on a few worker threads.

Creating a file is the most expensive thing an unpack does: the kernel's
inode and directory work costs far more than parsing the tar header (on the
VM the benchmarks run on, ~120 µs per empty file, against ~2 µs for a
``chown``). A layer of a language runtime has thousands of small files, so the
unpacker hands each small regular file (its bytes already read from the tar
stream) to a worker thread and goes on parsing; the GIL is released during the
syscalls, so file creation overlaps parsing, decompression and hashing, and the
creations of two workers overlap each other.

Every worker does exactly what the single-threaded path does, on the file's
own descriptor (no path is resolved twice): ``openat(dir_fd, name,
O_CREAT|O_EXCL|O_NOFOLLOW)`` (the name was checked absent by the unpacker, and
``O_EXCL`` refuses anything that appeared since), the content, then owner,
mode (after the owner: ``chown`` clears setuid), xattrs (after the owner:
``chown`` clears ``security.capability``) and mtime, with ``fchown``,
``fchmod``, ``fsetxattr`` and ``futimens``. The owner and mode a new file
already has (``FileMeta.created``: root's files in a plain directory, modes
the umask leaves alone) are not set again: every syscall of a worker costs a
GIL hand-over with the parsing thread.

Ordering is the unpacker's job, with two tools from here: ``pending(key)``
says whether a file of that (directory, name) is queued or being written, and
``barrier()`` waits for every queued file. The unpacker calls the barrier
before anything that could observe or change a queued file: an entry of the
same name, a hardlink, a whiteout, a removal, a missing parent directory, and
the final directory modes and mtimes. The memory held by queued files is
bounded (``max_pending_bytes``, ``max_pending_files``): past either, the
unpacker waits for the oldest file. A failure is raised (as ``Failed``, naming
the entry) at the next submit or barrier; ``close`` waits for every worker
before the unpacker returns, so nothing writes into the snapshot after it.
"""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import errno
import os
from collections.abc import Hashable, Iterable

WORKERS = 1  # measured: a second worker does not help (one journal, one disk), the GIL costs
ASYNC_MAX_SIZE = 1 << 20  # larger files are streamed by the unpacker itself
MAX_PENDING_BYTES = 32 << 20
MAX_PENDING_FILES = 256
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


class Failed(Exception):
    """Writing the regular file of tar entry ``entry`` failed with ``error``."""

    def __init__(self, entry: str, error: OSError) -> None:
        super().__init__(f"entry {entry!r}: {error}")
        self.entry = entry
        self.error = error


@dataclasses.dataclass(frozen=True)
class FileMeta:
    uid: int
    gid: int
    mode: int  # permission bits incl. setuid/setgid/sticky
    xattrs: tuple[tuple[str, bytes], ...]
    mtime_ns: int
    # (uid, gid, mode) the kernel gives the file when it is created with ``mode & 0o777``
    # (our fsuid; the directory's gid when it is setgid, else our fsgid; the umask
    # applied), when the caller knows them: a ``chown``/``chmod`` to the same values
    # is skipped. None: always set both.
    created: tuple[int, int, int] | None = None


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def apply_meta(fd: int, meta: FileMeta) -> None:
    """Owner, mode, xattrs, mtime of an open file (see the module docstring for the order);
    an owner or mode the file was created with is not set again."""
    created = meta.created
    chowned = created is None or (meta.uid, meta.gid) != created[:2]
    if chowned:
        os.chown(fd, meta.uid, meta.gid)
    if chowned or created is None or meta.mode != created[2]:
        os.chmod(fd, meta.mode)
    for key, value in meta.xattrs:
        try:
            os.setxattr(fd, key, value)
        except OSError as exc:
            if exc.errno not in (errno.ENOTSUP, errno.EOPNOTSUPP):
                raise
    os.utime(fd, ns=(meta.mtime_ns, meta.mtime_ns))


def write_file(dir_fd: int, name: str, chunks: Iterable[bytes], meta: FileMeta) -> None:
    """Create ``name`` (absent) in ``dir_fd`` with the content ``chunks`` and ``meta``."""
    fd = os.open(name, _CREATE, meta.mode & 0o777, dir_fd=dir_fd)
    try:
        for chunk in chunks:
            _write_all(fd, chunk)
        apply_meta(fd, meta)
    finally:
        os.close(fd)


def _job(dir_fd: int, name: str, data: bytes, meta: FileMeta, entry: str) -> None:
    try:
        write_file(dir_fd, name, (data,), meta)
    except OSError as exc:
        raise Failed(entry, exc) from exc


@dataclasses.dataclass
class _Queued:
    future: concurrent.futures.Future[None]
    key: Hashable
    size: int


class Writer:
    """Small regular files written by worker threads (see the module docstring)."""

    def __init__(
        self,
        workers: int | None = None,
        *,
        max_pending_bytes: int | None = None,
        max_pending_files: int | None = None,
    ) -> None:
        """The module's constants unless given (read now, so tests can change them)."""
        self._workers = WORKERS if workers is None else workers
        self._max_bytes = MAX_PENDING_BYTES if max_pending_bytes is None else max_pending_bytes
        self._max_files = MAX_PENDING_FILES if max_pending_files is None else max_pending_files
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._queue: collections.deque[_Queued] = collections.deque()
        self._by_key: dict[Hashable, _Queued] = {}
        self._bytes = 0

    def pending(self, key: Hashable) -> bool:
        queued = self._by_key.get(key)
        return queued is not None and not queued.future.done()

    def busy(self) -> bool:
        """Whether any file is queued or being written."""
        return any(not q.future.done() for q in self._queue)

    def submit(self, dir_fd: int, key: Hashable, name: str, data: bytes, meta: FileMeta,
               entry: str) -> None:  # fmt: skip
        """Queue ``name`` (absent, not pending) in ``dir_fd``, which the caller keeps open
        until nothing is pending (``busy()`` is false, or after ``barrier``)."""
        if self._workers < 1:
            try:
                write_file(dir_fd, name, (data,), meta)
            except OSError as exc:
                raise Failed(entry, exc) from exc
            return
        self._reap(block=False)
        while self._queue and (
            self._bytes + len(data) > self._max_bytes or len(self._queue) >= self._max_files
        ):
            self._reap_one()
        if self._pool is None:
            self._pool = concurrent.futures.ThreadPoolExecutor(
                self._workers, thread_name_prefix="unpack"
            )
        future = self._pool.submit(_job, dir_fd, name, data, meta, entry)
        queued = _Queued(future, key, len(data))
        self._queue.append(queued)
        self._by_key[key] = queued
        self._bytes += len(data)

    def _reap_one(self) -> None:
        queued = self._queue.popleft()
        self._bytes -= queued.size
        if self._by_key.get(queued.key) is queued:
            del self._by_key[queued.key]
        queued.future.result()  # raises Failed

    def _reap(self, block: bool) -> None:
        while self._queue and (block or self._queue[0].future.done()):
            self._reap_one()

    def barrier(self) -> None:
        """Wait until every queued file is written; raise the first failure."""
        self._reap(block=True)

    def close(self) -> None:
        """Wait for every worker (failures are dropped: call ``barrier`` first to see them)."""
        while self._queue:
            try:
                self._reap_one()
            except Failed:
                continue
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
