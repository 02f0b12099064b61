"""Export images as OCI image layouts: a directory (``skopeo``'s ``oci:DIR``) or
a tar of one (``oci-archive:``), and the deterministic tar writer that
``docker_archive`` shares.

The layout holds every blob as stored (the manifest byte for byte, so its
digest is the one the image is known by), ``oci-layout`` and an
``index.json`` with one entry per name: ``org.opencontainers.image.ref.name``
is the tag (what ``skopeo copy oci:DIR:TAG`` selects) and
``io.containerd.image.name`` the full name (what ``ctr import`` and our own
importer use). An image without a name gets one entry without annotations.

Archives are written to a temporary file beside the destination and renamed
into place, so a failed export never leaves a half-written file under the
name; entries are sorted with owner 0:0, mode 0444 (0755 for directories)
and mtime 0, so exporting the same images twice gives the same bytes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import os
import shutil
import tarfile
import tempfile
from collections.abc import Iterator, Sequence
from typing import IO, Any

from runtime import errors
from runtime.engine import content, oci_layout
from schemas import reference as references

LAYOUT_VERSION = b'{"imageLayoutVersion":"1.0.0"}'


@dataclasses.dataclass(frozen=True)
class ExportImage:
    """One image to write: its manifest and the names to give it."""

    manifest_digest: str
    manifest_bytes: bytes
    manifest: oci_layout.Manifest
    names: tuple[str, ...]  # normalised references


def _canonical(doc: Any) -> bytes:
    return json.dumps(doc, separators=(",", ":")).encode()


class TarWriter:
    """A deterministic tar written atomically to ``path`` (``-``: not supported)."""

    def __init__(self, path: str) -> None:
        self.path = path
        directory = os.path.dirname(os.path.abspath(path))
        with errors.map_os_errors(f"create {path}"):
            fd, self._tmp = tempfile.mkstemp(dir=directory, prefix=".pyreconcile-export-")
        self._file = os.fdopen(fd, "wb")
        self.tar = tarfile.open(fileobj=self._file, mode="w", format=tarfile.PAX_FORMAT)  # noqa: SIM115
        self._dirs: set[str] = set()

    def _info(self, name: str, kind: bytes, size: int = 0, link: str = "") -> tarfile.TarInfo:
        info = tarfile.TarInfo(name)
        info.type = kind
        info.size = size
        info.linkname = link
        info.mode = 0o755 if kind == tarfile.DIRTYPE else 0o444
        info.mtime = 0
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        return info

    def directory(self, name: str) -> None:
        if name not in self._dirs:
            self._dirs.add(name)
            self.tar.addfile(self._info(name + "/", tarfile.DIRTYPE))

    def add_bytes(self, name: str, data: bytes) -> None:
        self.tar.addfile(self._info(name, tarfile.REGTYPE, len(data)), io.BytesIO(data))

    def add_file(self, name: str, source: IO[bytes], size: int) -> None:
        self.tar.addfile(self._info(name, tarfile.REGTYPE, size), source)

    def add_symlink(self, name: str, target: str) -> None:
        self.tar.addfile(self._info(name, tarfile.SYMTYPE, link=target))

    def commit(self) -> None:
        self.tar.close()
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        with errors.map_os_errors(f"write {self.path}"):
            os.chmod(self._tmp, 0o644)
            os.replace(self._tmp, self.path)

    def abort(self) -> None:
        with contextlib.suppress(Exception):
            self.tar.close()
        with contextlib.suppress(Exception):
            self._file.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._tmp)


@contextlib.contextmanager
def tar_writer(path: str) -> Iterator[TarWriter]:
    writer = TarWriter(path)
    try:
        yield writer
    except BaseException:
        writer.abort()
        raise
    writer.commit()


def index_document(images: Sequence[ExportImage]) -> bytes:
    entries = []
    for image in images:
        base = {
            "mediaType": image.manifest.media_type,
            "digest": image.manifest_digest,
            "size": len(image.manifest_bytes),
        }
        if not image.names:
            entries.append(base)
        for name in image.names:
            parsed = references.parse_reference(name)
            annotations = {oci_layout.CONTAINERD_NAME: name}
            if parsed.tag:
                annotations[oci_layout.REF_NAME] = parsed.tag
            entries.append({**base, "annotations": annotations})
    return _canonical({"schemaVersion": 2, "mediaType": oci_layout.INDEX_OCI, "manifests": entries})


def _blobs(images: Sequence[ExportImage]) -> list[str]:
    seen: dict[str, None] = {}
    for image in images:
        for digest in (
            image.manifest_digest,
            image.manifest.config.digest,
            *(d.digest for d in image.manifest.layers),
        ):
            seen.setdefault(digest, None)
    return sorted(seen)


def write_layout_dir(
    images: Sequence[ExportImage], path: str, store: content.LocalContentStore
) -> None:
    """An OCI layout directory at ``path`` (created; it must not hold another layout)."""
    with errors.map_os_errors(f"create OCI layout {path}"):
        os.makedirs(path, exist_ok=True)
        if os.listdir(path) and not os.path.exists(os.path.join(path, "oci-layout")):
            raise errors.AlreadyExists(f"{path} exists and is not an OCI layout: choose a new path")
        for digest in _blobs(images):
            algorithm, encoded = content.validate_digest(digest)
            directory = os.path.join(path, "blobs", algorithm)
            os.makedirs(directory, exist_ok=True)
            target = os.path.join(directory, encoded)
            if not os.path.exists(target):
                tmp = f"{target}.tmp-{os.getpid()}"
                shutil.copyfile(store.path(digest), tmp)
                os.replace(tmp, target)
        _write_atomic(os.path.join(path, "oci-layout"), LAYOUT_VERSION)
        _write_atomic(os.path.join(path, "index.json"), index_document(images))


def write_layout_tar(
    images: Sequence[ExportImage], path: str, store: content.LocalContentStore
) -> None:
    """The same layout as one tar file (``skopeo``'s ``oci-archive:``)."""
    with tar_writer(path) as out:
        out.directory("blobs")
        out.directory("blobs/sha256")
        for digest in _blobs(images):
            algorithm, encoded = content.validate_digest(digest)
            out.directory(f"blobs/{algorithm}")
            with store.open(digest) as f:
                out.add_file(f"blobs/{algorithm}/{encoded}", f, store.size(digest))
        out.add_bytes("index.json", index_document(images))
        out.add_bytes("oci-layout", LAYOUT_VERSION)


def _write_atomic(path: str, data: bytes) -> None:
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)
