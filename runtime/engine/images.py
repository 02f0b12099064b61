"""The image store: imports, names, lookups, removal and garbage collection.

An image is its OCI config (the id is the config's digest, Docker's ImageID),
the manifest that lists its layers (its digest is the repo digest), the blobs
in the content store, one committed snapshot per layer keyed by chain id, and
any number of normalised names (``docker.io/library/busybox:latest``).

Imports:

* ``import_rootfs_tar`` takes what ``docker import`` takes: a root filesystem
  tarball, plain or compressed. The layer is stored *uncompressed* (its digest
  is then its diff_id); the config is generated (host architecture as GOARCH,
  ``os: linux``, empty ``config``) with ``created`` set to the newest mtime in
  the tarball, not the clock, so importing the same tarball twice gives the
  same image id, and the second import unpacks nothing.
* ``docker_archive.load`` (through ``import_image`` and ``load``) reads
  ``docker save`` archives.
* ``import_oci_layout`` reads an OCI image layout, as a directory or a tar
  (``skopeo copy … oci:DIR`` / ``oci-archive:``), and verifies everything the
  reference file lists (see ``oci_layout``): manifest, config and layer sizes
  and digests, each layer's diff_id, media types.

Every layer is unpacked into an active snapshot made from its parent chain and
committed under its chain id; a concurrent import of the same layer loses the
commit race harmlessly (``AlreadyExists`` → drop our copy, use theirs).

Removal untags; an image with no names left and no container using it (the
metadata's ``containers.image_id``) is deleted, then blobs and layer
snapshots no image needs are collected. A file lock (``<run root>/locks/
images.lock``) is held shared by imports and exclusively by collection, so
collection never deletes a blob or layer an import in another process has
written but not yet recorded.
"""

from __future__ import annotations

import builtins
import contextlib
import dataclasses
import fcntl
import functools
import json
import os
import re
import secrets
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import runtime.sys as rsys
from runtime import client, errors
from runtime.engine import (
    content,
    layout,
    metadata,
    mounts,
    oci_layout,
    snapshots,
    tarstream,
    unpack,
)
from schemas import reference as references

_HEX_PREFIX = re.compile(r"^[a-f0-9]{4,64}$")


@dataclasses.dataclass(frozen=True)
class ImageRecord:
    id: str  # config digest
    manifest_digest: str
    references: tuple[str, ...]
    diff_ids: tuple[str, ...]
    config_json: str  # the OCI image config, verbatim
    size: int  # bytes of the layers as stored
    created_at: float  # the config's ``created``
    annotations: metadata.Pairs = ()

    @property
    def config(self) -> dict[str, Any]:
        loaded: dict[str, Any] = json.loads(self.config_json)
        return loaded


def to_image_info(image: ImageRecord) -> client.ImageInfo:
    """The ``runtime.client`` view of an image."""
    return client.ImageInfo(
        id=image.id,
        digest=image.manifest_digest,
        references=image.references,
        config=image_config(image),
        size=image.size,
        created_at=image.created_at,
        annotations=image.annotations,
    )


def image_config(image: ImageRecord) -> client.ImageConfig:
    """What a container inherits: Entrypoint, Cmd, Env, WorkingDir, User, …"""
    cfg = image.config.get("config") or {}

    def strings(key: str) -> tuple[str, ...] | None:
        value = cfg.get(key)
        return None if value is None else tuple(str(v) for v in value)

    return client.ImageConfig(
        entrypoint=strings("Entrypoint"),
        cmd=strings("Cmd"),
        env=strings("Env") or (),
        working_dir=str(cfg.get("WorkingDir") or ""),
        user=str(cfg.get("User") or ""),
        stop_signal=str(cfg.get("StopSignal") or ""),
        labels=tuple(sorted((str(k), str(v)) for k, v in (cfg.get("Labels") or {}).items())),
        volumes=tuple(sorted(cfg.get("Volumes") or {})),
        exposed_ports=tuple(sorted(cfg.get("ExposedPorts") or {})),
    )


class ImageStore:
    """Images over a metadata store, a content store and a snapshotter."""

    def __init__(
        self,
        paths: layout.Layout,
        store: metadata.MetadataStore,
        blobs: content.LocalContentStore,
        snapshotter: snapshots.Snapshotter,
        *,
        limits: tarstream.Limits | None = None,
    ) -> None:
        self._layout = paths
        self._store = store
        self._content = blobs
        self._snapshotter = snapshotter
        self._limits = limits or tarstream.Limits()

    @contextlib.contextmanager
    def _locked(self, exclusive: bool) -> Iterator[None]:
        path = os.path.join(self._layout.locks_dir, "images.lock")
        with errors.map_os_errors(f"lock {path}"):
            os.makedirs(self._layout.locks_dir, mode=0o700, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            yield
        finally:
            os.close(fd)

    # -- imports -----------------------------------------------------------------

    def import_image(
        self,
        path: str,
        reference: str | None = None,
        *,
        annotations: Mapping[str, str] | None = None,
    ) -> ImageRecord:
        """Import ``path``, whatever it is: an OCI layout (directory or tar) or
        a rootfs tarball. A ``docker save`` archive is refused with the command
        that converts it."""
        kind = oci_layout.archive_kind(path)
        if kind == "oci-layout":
            return self.import_oci_layout(path, reference, annotations=annotations)
        if kind == "docker-archive":
            from runtime.engine import docker_archive  # it imports this module

            loaded = docker_archive.load(path, self, self._content)
            wanted = references.normalize_reference(reference) if reference else None
            record = next((r for r in loaded if wanted in r.references), loaded[0])
            if wanted and wanted not in record.references:
                record = self.tag(record.id, wanted)
            if annotations is not None:
                self._store.update_image(record.id, annotations=annotations)
                record = self.get(record.id)
            return record
        return self.import_rootfs_tar(path, reference, annotations=annotations)

    def load(self, path: str) -> list[ImageRecord]:
        """Every image of a ``docker save`` archive or an OCI layout, with its names."""
        kind = oci_layout.archive_kind(path)
        if kind == "docker-archive":
            from runtime.engine import docker_archive  # it imports this module

            return docker_archive.load(path, self, self._content)
        if kind != "oci-layout":
            raise errors.InvalidSpec(
                f"{path} is neither a 'docker save' archive nor an OCI layout; "
                "a root filesystem tarball is imported with `pyreconcile image import`"
            )
        with oci_layout.LayoutReader(path) as reader:
            names = reader.names()
        if not names:
            return [self.import_oci_layout(path)]
        return [self.import_oci_layout(path, name) for name in names]

    def import_rootfs_tar(
        self,
        path: str,
        reference: str | None = None,
        *,
        annotations: Mapping[str, str] | None = None,
    ) -> ImageRecord:
        """Import a root filesystem tarball (plain, gzip, bzip2, xz or zstd)."""
        with self._locked(exclusive=False):
            with errors.map_os_errors(f"read {path}"), open(path, "rb") as raw:
                layer, size = self._content.write_stream(
                    tarstream.open_decompressed(raw), max_size=self._limits.max_bytes
                )
            with self._content.open(layer) as f:
                summary = tarstream.scan(f, limits=self._limits, what=f"rootfs tarball {path}")
            built = oci_layout.rootfs_image(layer, size, summary.newest_mtime)
            self._content.write_bytes(built.config)
            manifest, _ = self._content.write_bytes(built.manifest)
            return self.import_from_content(manifest, reference, annotations=annotations)

    def import_oci_layout(
        self,
        path: str,
        reference: str | None = None,
        *,
        annotations: Mapping[str, str] | None = None,
    ) -> ImageRecord:
        """Import one image of an OCI layout (a directory or a tar).

        The image is the index entry whose ``org.opencontainers.image.ref.name``
        is ``reference`` (or its tag), else the only entry; an index resolves
        to the host's platform. The image is named ``reference``, else the
        entry's full name from its annotations, else left unnamed (use its id).
        """
        with self._locked(exclusive=False), oci_layout.LayoutReader(path) as reader:
            picked = reader.pick(reference, oci_layout.host_platform())
            for desc in (picked.config, *picked.layers):
                with reader.open_blob(desc) as blob:
                    self._content.write_stream(blob, desc.digest, desc.size)
            self._content.write_bytes(picked.manifest_bytes, picked.manifest.digest)
            name = reference or picked.name
            return self.import_from_content(picked.manifest.digest, name, annotations=annotations)

    @contextlib.contextmanager
    def importing(self) -> Iterator[None]:
        """Hold this while writing the blobs of an image not recorded yet (a
        registry pull), then call ``import_from_content`` inside it: garbage
        collection waits, so it cannot delete those blobs meanwhile."""
        with self._locked(exclusive=False):
            yield

    def import_from_content(
        self,
        manifest_digest: str,
        reference: str | None = None,
        *,
        annotations: Mapping[str, str] | None = None,
        on_unpack: Callable[[str], None] | None = None,
    ) -> ImageRecord:
        """Unpack and record an image whose manifest, config and layer blobs are
        in the content store already (written there verified by digest).
        ``on_unpack(blob)`` is called before each layer that is unpacked."""
        name = references.normalize_reference(reference) if reference else None
        what = f"image manifest {manifest_digest}"
        with self._locked(exclusive=False):
            manifest_bytes = self._content.read_bytes(manifest_digest, oci_layout.MAX_JSON)
            manifest = oci_layout.parse_manifest(manifest_bytes, manifest_digest)
            oci_layout.check_media_types(manifest, what)
            config_bytes = self._content.read_bytes(manifest.config.digest, oci_layout.MAX_JSON)
            oci_layout.verify(
                config_bytes, manifest.config, f"image config {manifest.config.digest}"
            )
            diff_ids = oci_layout.checked_diff_ids(manifest, config_bytes, what)
            for layer in manifest.layers:
                if self._content.size(layer.digest) != layer.size:
                    raise errors.InvalidSpec(f"{what}: layer {layer.digest} has the wrong size")
            layers = [d.digest for d in manifest.layers]
            self._unpack_layers(list(zip(layers, diff_ids, strict=True)), on_unpack)
            size = sum(d.size for d in manifest.layers)
            return self._record(
                manifest.config.digest, manifest_digest, config_bytes, size, name, annotations
            )

    def unpack_layers(
        self, layers: list[tuple[str, str]], on_unpack: Callable[[str], None] | None = None
    ) -> str | None:
        """Unpack (blob, diff_id) layers whose blobs are in the content store already, as
        far as they go: a pull calls it as its downloads complete, inside ``importing()``,
        then ``import_from_content`` finds the snapshots made."""
        with self._locked(exclusive=False):
            return self._unpack_layers(layers, on_unpack)

    def _unpack_layers(
        self, layers: list[tuple[str, str]], on_unpack: Callable[[str], None] | None = None
    ) -> str | None:
        """Make sure every (blob, diff_id) layer has its committed snapshot; the top key.

        Layers are unpacked bottom first (each needs its parent committed). Each
        is inflated and hashed on a thread of its own (``tarstream.Prefetch``),
        which starts while the layer below it is unpacked: inflating overlaps
        parsing and writing, and a layer of large files is inflated ahead while
        the many small files of the one below it are created.
        """
        parent: str | None = None
        todo: list[tuple[str, str, str, str | None]] = []
        for blob, diff_id in layers:
            chain = snapshots.chain_id(parent, diff_id)
            if not self._snapshotter.exists(chain):
                todo.append((blob, diff_id, chain, parent))
            parent = chain
        ahead: tarstream.Prefetch | None = None
        try:
            for index, (blob, diff_id, chain, below) in enumerate(todo):
                current, ahead = ahead or self._prefetch(blob), None
                if index + 1 < len(todo):
                    ahead = self._prefetch(todo[index + 1][0])
                if on_unpack is not None:
                    on_unpack(blob)
                try:
                    self._apply_layer(blob, diff_id, chain, below, current)
                finally:
                    current.close()
        finally:
            if ahead is not None:
                ahead.close()
        return parent

    def _prefetch(self, blob: str) -> tarstream.Prefetch:
        return tarstream.Prefetch(functools.partial(self._content.open, blob))

    def _apply_layer(
        self,
        blob: str,
        diff_id: str,
        chain: str,
        parent: str | None,
        prefetched: tarstream.Prefetch | None = None,
    ) -> None:
        key = f"extract-{secrets.token_hex(6)}-{chain}"
        described = self._snapshotter.prepare(key, parent)
        try:
            with contextlib.ExitStack() as stack:
                source: tarstream.Readable | tarstream.Prefetch
                if prefetched is not None:
                    source = prefetched
                else:
                    source = stack.enter_context(self._content.open(blob))
                result = unpack.unpack(
                    source,
                    mounts.writable_dir(described),
                    parents=mounts.lower_dirs(described),
                    limits=self._limits,
                    what=f"layer {blob}",
                )
            if result.diff_id != diff_id:
                raise errors.InvalidSpec(
                    f"layer {blob} unpacks to {result.diff_id} but the image config says "
                    f"{diff_id}: the image is corrupt or tampered with"
                )
            # the snapshot is durable before it is recorded as committed: the snapshots'
            # filesystem is flushed, not every filesystem of the machine (sync())
            rsys.syncfs(mounts.writable_dir(described))
            try:
                self._snapshotter.commit(chain, key)
            except errors.AlreadyExists:  # another import committed this layer first
                self._snapshotter.remove(key)
        except BaseException as exc:
            if self._snapshotter.exists(key):
                try:
                    self._snapshotter.remove(key)
                except errors.RuntimeError_ as cleanup:
                    exc.add_note(f"removing the half-unpacked snapshot {key} failed too: {cleanup}")
            raise

    def _record(
        self,
        image_id: str,
        manifest_digest: str,
        config_bytes: bytes,
        size: int,
        name: str | None,
        annotations: Mapping[str, str] | None,
    ) -> ImageRecord:
        config = oci_layout.parse_config(config_bytes, image_id)
        row = metadata.ImageRow(
            id=image_id,
            manifest_digest=manifest_digest,
            config_json=config_bytes.decode(),
            size=size,
            created_at=oci_layout.parse_time(config.get("created")),
            annotations=metadata.pairs(annotations),
        )
        with self._store.transaction(f"record image {image_id}"):
            try:
                self._store.insert_image(row)
            except errors.AlreadyExists:
                if annotations is not None:
                    self._store.update_image(image_id, annotations=annotations)
            if name:
                self._store.set_image_ref(name, image_id)
        return self.get(image_id)

    # -- lookups -----------------------------------------------------------------

    def _load(self, row: metadata.ImageRow) -> ImageRecord:
        config = oci_layout.parse_config(row.config_json.encode(), row.id)
        return ImageRecord(
            id=row.id,
            manifest_digest=row.manifest_digest,
            references=tuple(r.name for r in self._store.list_image_refs(row.id)),
            diff_ids=tuple(config["rootfs"]["diff_ids"]),
            config_json=row.config_json,
            size=row.size,
            created_at=row.created_at,
            annotations=row.annotations,
        )

    def resolve(self, ref_or_id: str) -> str:
        """The image id named by a reference, a full or short id, or a manifest digest."""
        text = ref_or_id.strip()
        if re.fullmatch(r"[a-f0-9]{64}", text):
            text = f"sha256:{text}"
        if references.is_digest(text):
            with contextlib.suppress(errors.NotFound):
                return self._store.get_image(text).id
            found = self._store.find_images(manifest_digest=text)
            if found:
                return found[0].id
        try:
            parsed = references.parse_reference(text)
        except references.ReferenceError_:
            parsed = None
        if parsed is not None and parsed.digest:
            with contextlib.suppress(errors.NotFound):  # named by digest when pulled so
                return self._store.get_image_ref(str(parsed)).image_id
            found = self._store.find_images(manifest_digest=parsed.digest)
            if found:
                return found[0].id
        elif parsed is not None:
            with contextlib.suppress(errors.NotFound):
                return self._store.get_image_ref(str(parsed)).image_id
        prefix = text.removeprefix("sha256:")
        if _HEX_PREFIX.match(prefix):
            found = self._store.find_images(id_prefix=f"sha256:{prefix}")
            if len(found) == 1:
                return found[0].id
            if len(found) > 1:
                raise errors.InvalidSpec(
                    f"image id prefix {prefix} is ambiguous ({len(found)} images): give more digits"
                )
        raise errors.NotFound(f"image {ref_or_id} not found: import or pull it first")

    def get(self, ref_or_id: str) -> ImageRecord:
        return self._load(self._store.get_image(self.resolve(ref_or_id)))

    def list(self) -> list[ImageRecord]:
        return [self._load(row) for row in self._store.list_images()]

    def tag(self, src: str, ref: str) -> ImageRecord:
        image_id = self.resolve(src)
        self._store.set_image_ref(references.normalize_reference(ref), image_id)
        return self.get(image_id)

    # -- containers' view --------------------------------------------------------

    def chain_id(self, image: ImageRecord) -> str | None:
        """The chain id of the image's top layer (None for an image without layers)."""
        chains = snapshots.chain_ids(list(image.diff_ids))
        return chains[-1] if chains else None

    def top_snapshot(self, image: ImageRecord) -> str | None:
        """The committed snapshot to ``prepare`` a container's rootfs on,
        unpacking again from the content store any layer that went missing."""
        top = self.chain_id(image)
        if top is not None and not self._snapshotter.exists(top):
            manifest = oci_layout.parse_manifest(
                self._content.read_bytes(image.manifest_digest, oci_layout.MAX_JSON),
                image.manifest_digest,
            )
            with self._locked(exclusive=False):
                layers = [d.digest for d in manifest.layers]
                self._unpack_layers(list(zip(layers, image.diff_ids, strict=True)))
        return top

    def image_config(self, image: ImageRecord) -> client.ImageConfig:
        return image_config(image)

    # -- removal -----------------------------------------------------------------

    def remove(self, ref: str) -> None:
        """Untag ``ref``; delete the image when no name is left and no container
        uses it. Removing by id (or manifest digest) drops all its names, and
        is refused while a container uses the image."""
        image_id = self.resolve(ref)
        name = None
        with contextlib.suppress(references.ReferenceError_):
            candidate = references.normalize_reference(ref)
            if any(r.name == candidate for r in self._store.list_image_refs(image_id)):
                name = candidate
        with self._locked(exclusive=True):
            with self._store.transaction(f"remove image {ref}"):
                users = self._store.list_containers(image_id=image_id)
                if name is not None:
                    self._store.delete_image_ref(name)
                    if self._store.list_image_refs(image_id) or users:
                        return
                elif users:
                    raise errors.FailedPrecondition(
                        f"image {image_id} is used by container {users[0].name}: remove it first"
                    )
                self._store.delete_image(image_id)
            self._collect()

    def prune(self, *, all_unused: bool = False) -> builtins.list[str]:
        """Delete images no container uses that have no name (``all_unused``: named
        ones too), then collect their blobs and layers; the ids deleted."""
        removed: list[str] = []
        with self._locked(exclusive=True):
            with self._store.transaction("prune images"):
                for row in self._store.list_images():
                    if self._store.list_containers(image_id=row.id):
                        continue
                    if self._store.list_image_refs(row.id) and not all_unused:
                        continue
                    self._store.delete_image(row.id)
                    removed.append(row.id)
            self._collect()
        return removed

    def manifest(self, image: ImageRecord) -> tuple[bytes, oci_layout.Manifest]:
        """The image's manifest, verbatim and parsed (for pushes and exports)."""
        raw = self._content.read_bytes(image.manifest_digest, oci_layout.MAX_JSON)
        return raw, oci_layout.parse_manifest(raw, image.manifest_digest)

    def collect(self) -> None:
        """Delete blobs and layer snapshots no image needs: what a failed import
        leaves behind (verified blobs of an image that was refused)."""
        with self._locked(exclusive=True):
            self._collect()

    def _collect(self) -> None:
        """Delete blobs and layer snapshots no image needs (under the exclusive lock)."""
        keep_blobs: set[str] = set()
        keep_chains: set[str] = set()
        for row in self._store.list_images():
            keep_blobs |= {row.id, row.manifest_digest}
            with contextlib.suppress(errors.NotFound):
                raw = self._content.read_bytes(row.manifest_digest, oci_layout.MAX_JSON)
                keep_blobs |= {d.digest for d in oci_layout.parse_manifest(raw).layers}
            diff_ids = oci_layout.parse_config(row.config_json.encode())["rootfs"]["diff_ids"]
            keep_chains |= set(snapshots.chain_ids(diff_ids))
        for digest in self._content.list():
            if digest not in keep_blobs:
                with contextlib.suppress(errors.NotFound):
                    self._content.delete(digest)
        removable = {
            s.key
            for s in self._snapshotter.list()
            if s.kind == "committed" and s.key not in keep_chains
        }
        while removable:  # children before parents
            leaves = removable - {s.parent for s in self._snapshotter.list() if s.parent}
            if not leaves:
                break
            for key in leaves:
                with contextlib.suppress(errors.NotFound, errors.FailedPrecondition):
                    self._snapshotter.remove(key)
            removable -= leaves
