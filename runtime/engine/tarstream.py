"""Reading a layer's tar stream safely, without writing anything.

* Decompression happens in-process, chosen by magic number: gzip
  (concatenated members too), bzip2 and xz from the stdlib, zstd with the
  optional ``zstandard`` module (else ``Unavailable`` saying what to install).
  Never a helper process (CVE-2014-9357).
* A ``HashingReader`` under the tar parser hashes and counts the *uncompressed*
  stream, so the diff_id covers every byte, including whatever follows the
  end-of-archive blocks (read to EOF), and the byte cap stops a gzip bomb
  while it inflates (CVE-2017-14992); so does a cap on the compression ratio
  (``Limits.max_ratio`` past ``Limits.ratio_floor``).
* ``tarfile`` only parses, in stream mode: ``BoundedTarInfo`` refuses extended
  headers (PAX, GNU long names) over ``MAX_HEADER_BYTES`` before tarfile reads
  them into memory, and the member list tarfile keeps in stream mode is cleared
  as entries go by, so 100k empty entries cost no memory. The entry count is
  capped too.
* ``clean_name`` turns a tar name into components inside the root: ``\\0`` is
  refused, a leading ``/`` is dropped, ``..`` of an absolute name stops at the
  root (``/../etc/x`` → ``etc/x``), a relative name that climbs out (``../x``,
  ``a/../../x``) is refused, over-long names are refused.
"""

from __future__ import annotations

import bz2
import collections
import dataclasses
import gzip
import hashlib
import importlib
import io
import lzma
import os
import tarfile
import threading
import zlib
from collections.abc import Callable, Iterator
from typing import Any, Protocol

from runtime import errors

MAX_HEADER_BYTES = 1 << 20
PREFETCH_BYTES = 64 << 20  # decompressed bytes a ``Prefetch`` holds at most
PATH_MAX = 4096
NAME_MAX = 255
CHUNK = 1 << 20
STREAM_BUFFER = 256 << 10
ENTRY_TYPES = {
    tarfile.REGTYPE, tarfile.AREGTYPE, tarfile.CONTTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE,
    tarfile.LNKTYPE, tarfile.CHRTYPE, tarfile.BLKTYPE, tarfile.FIFOTYPE,
}  # fmt: skip
_HEADER_TYPES = {
    tarfile.XHDTYPE, tarfile.XGLTYPE, tarfile.SOLARIS_XHDTYPE, tarfile.GNUTYPE_LONGNAME,
    tarfile.GNUTYPE_LONGLINK,
}  # fmt: skip


@dataclasses.dataclass(frozen=True)
class Limits:
    max_bytes: int = 64 << 30  # of the uncompressed tar stream
    max_entries: int = 2_000_000
    # Past ``ratio_floor`` uncompressed bytes, more than ``max_ratio`` uncompressed
    # bytes per compressed byte is refused. gzip cannot exceed ~1032:1, so this
    # only stops zstd/bzip2/xz bombs (millions to one); the floor keeps small
    # layers of zeros legitimate.
    max_ratio: int = 2000
    ratio_floor: int = 1 << 30


@dataclasses.dataclass(frozen=True)
class Summary:
    diff_id: str  # sha256 of the uncompressed stream, read to EOF
    size: int  # bytes of the uncompressed stream
    entries: int
    newest_mtime: float | None = None


# -- the stream ----------------------------------------------------------------


class Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


class _Prefixed(io.RawIOBase):
    """A few bytes already read (the magic number), then the rest of ``inner``."""

    def __init__(self, head: bytes, inner: Readable) -> None:
        self._head, self._inner = head, inner

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._head:
            n = min(len(buffer), len(self._head))
            buffer[:n], self._head = self._head[:n], self._head[n:]
            return n
        data = self._inner.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


class _Mapped:
    """A decompressor whose errors (corrupt data) surface as ``InvalidSpec``."""

    def __init__(self, inner: Readable) -> None:
        self._inner = inner

    def read(self, size: int = -1, /) -> bytes:
        try:
            return self._inner.read(size)
        except errors.RuntimeError_:
            raise
        except MemoryError:
            raise
        except Exception as exc:  # zlib.error, lzma.LZMAError, EOFError, zstandard.ZstdError…
            raise errors.InvalidSpec(f"corrupt compressed stream: {exc}") from exc


def open_decompressed(raw: Readable) -> Readable:
    """``raw`` decompressed according to its magic number (or as is: plain tar);
    a corrupt compressed stream raises ``InvalidSpec`` when it is read."""
    stream = _open_decompressed(raw)
    return stream if isinstance(stream, io.BufferedReader) else _Mapped(stream)


def _open_decompressed(raw: Readable) -> Readable:
    head = b""
    while len(head) < 6:
        more = raw.read(6 - len(head))
        if not more:
            break
        head += more
    stream = io.BufferedReader(_Prefixed(head, raw), CHUNK)
    if head.startswith(b"\x1f\x8b"):
        return gzip.GzipFile(fileobj=stream, mode="rb")  # reads concatenated members
    if head.startswith(b"\x28\xb5\x2f\xfd"):
        try:
            zstandard: Any = importlib.import_module("zstandard")
        except ImportError:
            raise errors.Unavailable(
                "the layer is zstd-compressed and the python module 'zstandard' is not "
                "installed: pip install zstandard"
            ) from None
        reader: Readable = zstandard.ZstdDecompressor().stream_reader(
            stream, read_across_frames=True
        )
        return reader
    if head.startswith(b"BZh"):
        return bz2.BZ2File(stream)
    if head.startswith(b"\xfd7zXZ\x00"):
        return lzma.LZMAFile(stream)
    return stream


class _Counting:
    """Counts the compressed bytes the decompressor reads."""

    def __init__(self, inner: Readable) -> None:
        self._inner = inner
        self.count = 0

    def read(self, size: int = -1, /) -> bytes:
        data = self._inner.read(size)
        self.count += len(data)
        return data


class HashingReader(io.RawIOBase):
    """Hashes and counts what the tar parser reads; enforces the byte and ratio caps."""

    def __init__(
        self,
        inner: Readable,
        max_bytes: int,
        what: str,
        *,
        compressed: _Counting | None = None,
        limits: Limits | None = None,
        hashed_by_source: Any = None,
    ) -> None:
        self._inner, self._max, self._what = inner, max_bytes, what
        self._compressed = compressed
        self._limits = limits or Limits()
        # a ``Prefetch`` hashes what it inflates, on its thread: its sha256 is then ours
        self._hash_here = hashed_by_source is None
        self.hash: Any = hashlib.sha256() if hashed_by_source is None else hashed_by_source
        self.size = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        try:
            data = self._inner.read(len(buffer))
        except errors.RuntimeError_:
            raise
        except (OSError, EOFError, ValueError, zlib.error, lzma.LZMAError) as exc:
            raise errors.InvalidSpec(f"{self._what}: corrupt compressed stream: {exc}") from exc
        except Exception as exc:  # zstandard.ZstdError and other decoders' errors
            raise errors.InvalidSpec(f"{self._what}: corrupt compressed stream: {exc}") from exc
        self.size += len(data)
        if self.size > self._max:
            raise errors.InvalidSpec(
                f"{self._what}: more than {self._max} bytes uncompressed: refusing it "
                "(raise the unpack limit if the image is legitimate)"
            )
        if (
            self._compressed is not None
            and self.size > self._limits.ratio_floor
            and self.size > self._limits.max_ratio * max(self._compressed.count, 1)
        ):
            raise errors.InvalidSpec(
                f"{self._what}: decompresses more than {self._limits.max_ratio} times its "
                f"compressed size past {self._limits.ratio_floor} bytes: refusing a "
                "decompression bomb (raise the unpack limits if the image is legitimate)"
            )
        if self._hash_here:
            self.hash.update(data)
        buffer[: len(data)] = data
        return len(data)

    def drain(self) -> None:
        """Read to EOF: the diff_id covers trailing data after the archive's end."""
        while self.read(CHUNK):
            pass


class BoundedTarInfo(tarfile.TarInfo):
    """Refuses negative sizes, and extended headers that would make tarfile buffer a
    huge block."""

    def _proc_member(self, tar: tarfile.TarFile) -> tarfile.TarInfo:
        # A private hook of tarfile (stable since 3.2): the one place that sees an
        # extended header's size before tarfile reads the whole block into memory.
        if self.size < 0:
            raise errors.InvalidSpec(f"layer entry {self.name!r} has a negative size {self.size}")
        if self.type in _HEADER_TYPES and self.size > MAX_HEADER_BYTES:
            raise errors.InvalidSpec(
                f"layer has an extended tar header of {self.size} bytes (limit {MAX_HEADER_BYTES})"
            )
        member: tarfile.TarInfo = super()._proc_member(tar)  # type: ignore[misc]
        return member


class Prefetch:
    """A layer's stream decompressed and hashed on a thread of its own, at most
    ``max_bytes`` ahead of its reader; ``iter_members`` (``unpack.unpack``) takes it
    in place of a stream.

    An unpack is bound by creating files (kernel time) for layers of many small
    files, and by inflating and hashing for layers of large ones; zlib, zstd
    and sha256 release the GIL, so on this thread they overlap the tar parsing
    and the file writes of the unpacking thread. A pull starts the next layer's
    ``Prefetch`` while one layer is unpacked, so that layer is inflated ahead.
    Nothing is checked here: the limits, the diff_id and every tar rule apply
    when the layer is read, as for any stream (the ratio cap then counts the
    compressed bytes read ahead too, so it trips at most ``max_bytes`` late). An
    error met here (corrupt data) is raised to the reader at the same point of
    the stream. ``close`` stops the thread and closes the stream: call it in
    any case.
    """

    def __init__(self, open_raw: Callable[[], Readable], max_bytes: int = PREFETCH_BYTES) -> None:
        self._open_raw = open_raw
        self._max = max(max_bytes, 1)
        self._raw: Readable | None = None
        self.compressed = _Counting(io.BytesIO())  # its stream is set by the thread
        self.hash = hashlib.sha256()  # of everything inflated so far (all of it at EOF)
        self.error: BaseException | None = None
        self._cond = threading.Condition()
        self._chunks: collections.deque[bytes] = collections.deque()
        self._buffered = 0
        self._done = False
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="layer-prefetch", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._raw = self._open_raw()
            self.compressed._inner = self._raw
            decompressed = open_decompressed(self.compressed)
            while True:
                with self._cond:
                    while self._buffered >= self._max and not self._closed:
                        self._cond.wait()
                    if self._closed:
                        return
                chunk = decompressed.read(STREAM_BUFFER)
                if not chunk:
                    return
                self.hash.update(chunk)
                with self._cond:
                    self._chunks.append(chunk)
                    self._buffered += len(chunk)
                    self._cond.notify_all()
        except BaseException as exc:  # raised to the reader at this point of the stream
            self.error = exc
        finally:
            with self._cond:
                self._done = True
                self._cond.notify_all()

    def read(self, size: int = -1, /) -> bytes:
        """The next decompressed bytes (at most ``size``), waiting for the thread."""
        with self._cond:
            while not self._chunks and not self._done:
                self._cond.wait()
            if not self._chunks:
                if self.error is not None:
                    raise self.error
                return b""
            chunk = self._chunks.popleft()
            if 0 <= size < len(chunk):
                self._chunks.appendleft(chunk[size:])
                chunk = chunk[:size]
            self._buffered -= len(chunk)
            self._cond.notify_all()
            return chunk

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join()
        close = getattr(self._raw, "close", None)
        if close is not None:
            close()


def iter_members(
    stream: Readable | Prefetch, limits: Limits, what: str
) -> Iterator[tuple[tarfile.TarFile, tarfile.TarInfo, HashingReader]]:
    """Decompress, hash and parse ``stream`` (or a ``Prefetch``'s, inflated and hashed
    on its thread); yields each member (read its data before the next one). When
    the loop ends the stream has been read to EOF."""
    if isinstance(stream, Prefetch):
        compressed = stream.compressed
        reader = HashingReader(
            stream, limits.max_bytes, what, compressed=compressed, limits=limits,
            hashed_by_source=stream.hash,
        )  # fmt: skip
    else:
        compressed = _Counting(stream)
        reader = HashingReader(
            open_decompressed(compressed), limits.max_bytes, what, compressed=compressed,
            limits=limits,
        )  # fmt: skip
    try:
        with tarfile.open(
            fileobj=reader,
            mode="r|",
            bufsize=STREAM_BUFFER,  # tarfile's default (10 KiB) costs a Python call per 10 KiB
            tarinfo=BoundedTarInfo,
            encoding="utf-8",
            errors="surrogateescape",
        ) as tar:
            count = 0
            while True:
                member = tar.next()
                if member is None:
                    break
                tar.members.clear()  # type: ignore[attr-defined] # kept in stream mode otherwise
                count += 1
                if count > limits.max_entries:
                    raise errors.InvalidSpec(
                        f"{what}: more than {limits.max_entries} entries: refusing it"
                    )
                yield tar, member, reader
        reader.drain()
    except tarfile.TarError as exc:
        raise errors.InvalidSpec(f"{what}: not a valid tar stream: {exc}") from exc


# -- names ---------------------------------------------------------------------


def clean_name(name: str, what: str = "entry") -> list[str]:
    """The components of a tar name inside the root (see the module docstring)."""
    if "\x00" in name:
        raise errors.InvalidSpec(f"layer {what} {name!r} contains a NUL byte")
    if len(os.fsencode(name)) >= PATH_MAX:
        raise errors.InvalidSpec(f"layer {what} name is longer than {PATH_MAX} bytes")
    absolute = name.startswith("/")
    parts: list[str] = []
    for part in name.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if parts:
                parts.pop()
            elif not absolute:
                raise errors.InvalidSpec(f"layer {what} {name!r} climbs out of the root")
            continue
        if len(os.fsencode(part)) > NAME_MAX:
            raise errors.InvalidSpec(f"layer {what} {name!r} has a component over {NAME_MAX} bytes")
        parts.append(part)
    return parts


def scan(stream: Readable, *, limits: Limits = Limits(), what: str = "layer") -> Summary:
    """The diff_id, size, entry count and newest mtime of a layer, writing nothing."""
    entries, newest = 0, None
    reader: HashingReader | None = None
    for _tar, member, reader in iter_members(stream, limits, what):  # noqa: B007
        entries += 1
        if member.type not in ENTRY_TYPES:
            raise errors.InvalidSpec(f"{what}: entry {member.name!r} has type {member.type!r}")
        if newest is None or member.mtime > newest:
            newest = float(member.mtime)
    if reader is None:  # pragma: no cover - tarfile refuses an empty stream
        raise errors.InvalidSpec(f"{what}: the layer is empty")
    return Summary(f"sha256:{reader.hash.hexdigest()}", reader.size, entries, newest)
