"""The content store: verified blobs addressed by digest (containerd's model).

Layout under ``content_dir``::

    blobs/<algorithm>/<hex>   complete, verified blobs (read-only by convention)
    ingest/<random>           blobs being written

A write streams into a fresh file in ``ingest/`` while hashing and counting,
stops as soon as it exceeds the expected size, checks size then digest, fsyncs
the file, ``os.replace``\\ s it into ``blobs/`` and fsyncs that directory. A
wrong digest or size raises ``InvalidSpec`` and leaves nothing in ``blobs/``.
Blobs are immutable, so two writers of the same digest race harmlessly: the
rename is atomic and both wrote the same bytes.

Digests are validated (``sha256:`` + 64 lowercase hex, or ``sha512:`` + 128)
before one is ever used as a path component (CVE-2014-9358, CVE-2024-3727).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import re
import tempfile
import time
from collections.abc import Iterator
from typing import BinaryIO, Protocol

from runtime import errors

CHUNK = 1 << 20
_ENCODED_LENGTH = {"sha256": 64, "sha512": 128}
_DIGEST = re.compile(r"^(sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})$")


def validate_digest(digest: str) -> tuple[str, str]:
    """Split a digest into (algorithm, hex); ``InvalidSpec`` unless well formed."""
    if not isinstance(digest, str) or not _DIGEST.match(digest):
        raise errors.InvalidSpec(
            f"invalid digest {digest!r}: expected sha256: and 64 lowercase hex digits"
        )
    algorithm, encoded = digest.split(":", 1)
    return algorithm, encoded


def digest_bytes(data: bytes, algorithm: str = "sha256") -> str:
    return f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}"


class Readable(Protocol):
    """Anything with ``read(n)`` (a file, a decompressor, a tar member)."""

    def read(self, size: int = -1, /) -> bytes: ...


class ContentStore(Protocol):
    """What the image store needs of a content store."""

    def has(self, digest: str) -> bool: ...
    def size(self, digest: str) -> int: ...
    def open(self, digest: str) -> BinaryIO: ...
    def read_bytes(self, digest: str, max_size: int) -> bytes: ...
    def write_stream(
        self,
        reader: Readable,
        expected_digest: str | None = None,
        expected_size: int | None = None,
        *,
        max_size: int | None = None,
    ) -> tuple[str, int]: ...
    def write_bytes(
        self, data: bytes, expected_digest: str | None = None, expected_size: int | None = None
    ) -> tuple[str, int]: ...
    def delete(self, digest: str) -> None: ...
    def list(self) -> list[str]: ...


class LocalContentStore:
    """Blobs in a directory tree; see the module docstring for the layout."""

    def __init__(self, root: str) -> None:
        self.root = root
        self._ingest = os.path.join(root, "ingest")
        with errors.map_os_errors(f"create the content store at {root}"):
            for algorithm in _ENCODED_LENGTH:
                os.makedirs(os.path.join(root, "blobs", algorithm), mode=0o700, exist_ok=True)
            os.makedirs(self._ingest, mode=0o700, exist_ok=True)

    def _blob_path(self, digest: str) -> str:
        algorithm, encoded = validate_digest(digest)
        return os.path.join(self.root, "blobs", algorithm, encoded)

    def has(self, digest: str) -> bool:
        return os.path.isfile(self._blob_path(digest))

    def path(self, digest: str) -> str:
        """The blob's file (``NotFound`` when absent). Never write to it."""
        path = self._blob_path(digest)
        if not os.path.isfile(path):
            raise errors.NotFound(f"blob {digest} is not in the content store")
        return path

    def size(self, digest: str) -> int:
        with errors.map_os_errors(f"blob {digest}"):
            return os.stat(self._blob_path(digest)).st_size

    def open(self, digest: str) -> BinaryIO:
        with errors.map_os_errors(f"open blob {digest}"):
            return open(self._blob_path(digest), "rb")

    def read_bytes(self, digest: str, max_size: int) -> bytes:
        """The whole blob, refusing one larger than ``max_size`` (a JSON document)."""
        with self.open(digest) as f:
            data = f.read(max_size + 1)
        if len(data) > max_size:
            raise errors.InvalidSpec(f"blob {digest} is larger than the limit of {max_size} bytes")
        return data

    def write_stream(
        self,
        reader: Readable,
        expected_digest: str | None = None,
        expected_size: int | None = None,
        *,
        max_size: int | None = None,
    ) -> tuple[str, int]:
        """Copy ``reader`` to EOF into the store; returns ``(digest, size)``.

        With ``expected_digest`` the blob is hashed with its algorithm and must
        match; when that blob is already present the reader is not read at
        all. ``expected_size`` and ``max_size`` stop the copy as soon as they
        are exceeded.
        """
        algorithm = "sha256"
        if expected_digest is not None:
            algorithm, _ = validate_digest(expected_digest)
            if self.has(expected_digest):
                size = self.size(expected_digest)
                if expected_size is not None and size != expected_size:
                    raise errors.InvalidSpec(
                        f"blob {expected_digest} has {size} bytes, not the expected {expected_size}"
                    )
                return expected_digest, size
        if expected_size is not None and expected_size < 0:
            raise errors.InvalidSpec(f"invalid blob size {expected_size}")
        limit = expected_size if expected_size is not None else max_size
        what = f"blob {expected_digest or '(new)'}"
        hasher = hashlib.new(algorithm)
        size = 0
        with errors.map_os_errors(f"write {what} into {self._ingest}"):
            fd, tmp = tempfile.mkstemp(dir=self._ingest, prefix="ingest-")
        try:
            with errors.map_os_errors(f"write {what} into {tmp}"), os.fdopen(fd, "wb") as out:
                while True:
                    chunk = reader.read(CHUNK)
                    if not chunk:
                        break
                    size += len(chunk)
                    if limit is not None and size > limit:
                        raise errors.InvalidSpec(
                            f"{what} is larger than the expected {limit} bytes: refusing it"
                        )
                    hasher.update(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            digest = f"{algorithm}:{hasher.hexdigest()}"
            if expected_size is not None and size != expected_size:
                raise errors.InvalidSpec(
                    f"{what} has {size} bytes, not the expected {expected_size}: refusing it"
                )
            if expected_digest is not None and digest != expected_digest:
                raise errors.InvalidSpec(
                    f"blob content hashes to {digest}, not the expected {expected_digest}: "
                    "refusing it (corrupt or tampered download)"
                )
            final = self._blob_path(digest)
            with errors.map_os_errors(f"store blob {digest}"):
                os.replace(tmp, final)
                _fsync_dir(os.path.dirname(final))
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        return digest, size

    def write_bytes(
        self, data: bytes, expected_digest: str | None = None, expected_size: int | None = None
    ) -> tuple[str, int]:
        return self.write_stream(io.BytesIO(data), expected_digest, expected_size)

    def delete(self, digest: str) -> None:
        """Remove a blob (``NotFound`` when absent: callers deleting treat it as done)."""
        path = self._blob_path(digest)
        with errors.map_os_errors(f"delete blob {digest}"):
            os.unlink(path)
            _fsync_dir(os.path.dirname(path))

    def list(self) -> list[str]:
        """Every blob's digest, sorted."""
        found = []
        for algorithm, length in _ENCODED_LENGTH.items():
            directory = os.path.join(self.root, "blobs", algorithm)
            with errors.map_os_errors(f"list {directory}"):
                names = os.listdir(directory)
            found += [f"{algorithm}:{n}" for n in names if len(n) == length]
        return sorted(d for d in found if _DIGEST.match(d))

    def iter_ingest(self) -> Iterator[str]:
        with errors.map_os_errors(f"list {self._ingest}"):
            names = os.listdir(self._ingest)
        for name in names:
            yield os.path.join(self._ingest, name)

    def cleanup_ingest(self, older_than: float = 3600.0) -> int:
        """Delete abandoned ingest files (a writer that crashed); returns how many."""
        removed = 0
        deadline = time.time() - older_than
        for path in self.iter_ingest():
            try:
                if os.lstat(path).st_mtime < deadline:
                    os.unlink(path)
                    removed += 1
            except FileNotFoundError:
                continue
        return removed


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
