"""``docker save`` / ``docker load`` archives, both ways.

The format (Docker's image spec v1.2 "combined image JSON + filesystem
changeset", as dockerd and ``skopeo copy … docker-archive:`` write it):
``manifest.json`` lists the images, each with its ``Config`` (the image
config, a file named by its sha256) and ``Layers`` (paths of layer tars in
the archive, uncompressed, in order) and ``RepoTags``. ``repositories`` and
the per-layer ``<id>/{VERSION,json,layer.tar}`` directories are the legacy
v1 part, kept for old readers.

**Load** reads ``manifest.json`` and, per image, the config (capped, its
sha256 is the image id) and each layer, resolving symlinks inside the
archive (skopeo writes ``<id>/layer.tar`` as a symlink) and refusing paths
that leave it. Layers go into the content store as they are in the archive
(uncompressed, or compressed when a tool wrote them so: the media type then
says which); an OCI manifest is built for them (canonical JSON, so loading
the same archive twice gives the same manifest digest) and the image is
unpacked and checked against ``rootfs.diff_ids`` by
``ImageStore.import_from_content``. Docker 25+ archives are also OCI layouts;
the importer reads those through ``oci_layout`` instead.

**Save** writes what skopeo writes: ``<config hex>.json``, one
``<diff_id hex>.tar`` per layer (decompressed when stored compressed), the
legacy ``<v1 id>/`` directories with ``layer.tar`` as a symlink to it,
``manifest.json`` and ``repositories``. v1 ids are derived from the chain
of diff_ids and the config digest (``v1_ids``), deterministic like the rest,
so two saves of the same images are the same bytes. A layer shared by two
images is written once.
"""

from __future__ import annotations

import hashlib
import json
import os
import posixpath
import tarfile
import tempfile
from collections.abc import Sequence
from typing import IO, Any

from runtime import errors
from runtime.engine import content, images, oci_export, oci_layout, tarstream
from schemas import reference as references

MAX_ENTRIES = 100_000
_GZIP = b"\x1f\x8b"
_ZSTD = b"\x28\xb5\x2f\xfd"


def _invalid(path: str, detail: str) -> errors.InvalidSpec:
    return errors.InvalidSpec(f"docker archive {path}: {detail}")


class _Archive:
    """The regular files and symlinks of a tar, by cleaned name."""

    def __init__(self, path: str) -> None:
        self.path = path
        with errors.map_os_errors(f"open {path}"):
            try:
                self.tar = tarfile.open(path, "r:*", tarinfo=tarstream.BoundedTarInfo)  # noqa: SIM115
            except tarfile.TarError as exc:
                raise _invalid(path, f"not a tar file ({exc})") from exc
        self.members: dict[str, tarfile.TarInfo] = {}
        try:
            for count, member in enumerate(iter(self.tar.next, None)):
                if count >= MAX_ENTRIES:
                    raise _invalid(path, f"more than {MAX_ENTRIES} entries")
                if member.isreg() or member.issym():
                    self.members["/".join(tarstream.clean_name(member.name))] = member
        except tarfile.TarError as exc:
            self.tar.close()
            raise _invalid(path, f"not a valid tar ({exc})") from exc
        except BaseException:
            self.tar.close()
            raise

    def close(self) -> None:
        self.tar.close()

    def resolve(self, name: str) -> tarfile.TarInfo:
        """The regular file ``name`` names, following symlinks inside the archive."""
        current = "/".join(tarstream.clean_name(name, "archive path"))
        for _ in range(16):
            member = self.members.get(current)
            if member is None:
                raise _invalid(self.path, f"has no {name}")
            if member.isreg():
                return member
            base = posixpath.dirname(current)
            joined = posixpath.normpath(posixpath.join(base, member.linkname))
            if joined.startswith("../") or joined == ".." or member.linkname.startswith("/"):
                raise _invalid(self.path, f"{name} links outside the archive")
            current = joined
        raise _invalid(self.path, f"{name}: too many levels of symlinks")

    def open(self, name: str) -> tuple[IO[bytes], int]:
        member = self.resolve(name)
        extracted = self.tar.extractfile(member)
        if extracted is None:  # pragma: no cover - regular files always extract
            raise _invalid(self.path, f"cannot read {name}")
        return extracted, member.size

    def read(self, name: str, cap: int = oci_layout.MAX_JSON) -> bytes:
        member = self.resolve(name)
        if member.size > cap:
            raise _invalid(self.path, f"{name} is larger than {cap} bytes")
        f, _ = self.open(name)
        with f:
            return f.read()


def _layer_media_type(store: content.LocalContentStore, digest: str) -> str:
    with store.open(digest) as f:
        head = f.read(4)
    if head.startswith(_GZIP):
        return oci_layout.LAYER_TAR + "+gzip"
    if head.startswith(_ZSTD):
        return oci_layout.LAYER_TAR + "+zstd"
    return oci_layout.LAYER_TAR


def _canonical(doc: Any) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


def load(
    path: str,
    image_store: images.ImageStore,
    store: content.LocalContentStore,
) -> list[images.ImageRecord]:
    """Load every image of the archive; named by its ``RepoTags``."""
    archive = _Archive(path)
    loaded: list[images.ImageRecord] = []
    try:
        try:
            entries = json.loads(archive.read("manifest.json"))
        except ValueError as exc:
            raise _invalid(path, f"manifest.json is not JSON ({exc})") from exc
        if not isinstance(entries, list) or not entries:
            raise _invalid(path, "manifest.json lists no image")
        with image_store.importing():
            for number, entry in enumerate(entries):
                loaded.append(_load_one(archive, entry, number, image_store, store))
    finally:
        archive.close()
    return loaded


def _load_one(
    archive: _Archive,
    entry: Any,
    number: int,
    image_store: images.ImageStore,
    store: content.LocalContentStore,
) -> images.ImageRecord:
    where = f"image {number} of manifest.json"
    if not isinstance(entry, dict) or not isinstance(entry.get("Config"), str):
        raise _invalid(archive.path, f"{where} has no Config")
    layers = entry.get("Layers") or []
    tags = entry.get("RepoTags") or []
    if not isinstance(layers, list) or not all(isinstance(x, str) for x in layers):
        raise _invalid(archive.path, f"{where}: Layers is not a list of paths")
    if not isinstance(tags, list) or not all(isinstance(x, str) for x in tags):
        raise _invalid(archive.path, f"{where}: RepoTags is not a list of names")
    names = []
    for tag in tags:
        try:
            names.append(references.normalize_reference(tag))
        except references.ReferenceError_ as exc:
            raise _invalid(archive.path, f"{where}: invalid RepoTag {tag!r} ({exc})") from None
    config_bytes = archive.read(entry["Config"])
    config_digest, config_size = store.write_bytes(config_bytes)
    diff_ids = oci_layout.parse_config(config_bytes, config_digest)["rootfs"]["diff_ids"]
    if len(diff_ids) != len(layers):
        raise _invalid(
            archive.path,
            f"{where}: {len(layers)} layers but {len(diff_ids)} diff_ids in its config",
        )
    descriptors = []
    for layer_path in layers:
        stream, size = archive.open(layer_path)
        with stream:
            digest, stored = store.write_stream(stream, expected_size=size)
        descriptors.append(
            {"mediaType": _layer_media_type(store, digest), "digest": digest, "size": stored}
        )
    manifest = _canonical(
        {
            "schemaVersion": 2,
            "mediaType": oci_layout.MANIFEST_OCI,
            "config": {
                "mediaType": oci_layout.CONFIG_OCI,
                "digest": config_digest,
                "size": config_size,
            },
            "layers": descriptors,
        }
    )
    manifest_digest, _ = store.write_bytes(manifest)
    record = image_store.import_from_content(manifest_digest, names[0] if names else None)
    for name in names[1:]:
        record = image_store.tag(record.id, name)
    return record


# -- save ---------------------------------------------------------------------------------


def v1_ids(diff_ids: Sequence[str], config_digest: str) -> list[str]:
    """Legacy layer ids: a chain over the diff_ids, the top one also over the config
    (two images sharing layers but not configs get different top ids)."""
    ids: list[str] = []
    parent = ""
    for index, diff_id in enumerate(diff_ids):
        seed = f"{parent} {diff_id}"
        if index == len(diff_ids) - 1:
            seed += f" {config_digest}"
        parent = hashlib.sha256(seed.encode()).hexdigest()
        ids.append(parent)
    return ids


def _legacy_json(v1_id: str, parent: str | None, config: dict[str, Any] | None) -> bytes:
    doc: dict[str, Any] = {"id": v1_id}
    if parent:
        doc["parent"] = parent
    if config is not None:
        for key in ("architecture", "config", "container", "container_config", "created",
                    "docker_version", "os"):  # fmt: skip
            doc[key] = config.get(key)
    return _canonical(doc)


def save(
    items: Sequence[tuple[images.ImageRecord, tuple[str, ...]]],
    path: str,
    image_store: images.ImageStore,
    store: content.LocalContentStore,
    scratch_dir: str,
) -> None:
    """Write the images (each with the names to give it) as a ``docker save`` archive."""
    manifest: list[dict[str, Any]] = []
    repositories: dict[str, dict[str, str]] = {}
    written: set[str] = set()
    with oci_export.tar_writer(path) as out:
        for record, names in items:
            _, parsed = image_store.manifest(record)
            config_bytes = store.read_bytes(record.id, oci_layout.MAX_JSON)
            config_hex = record.id.split(":", 1)[1]
            if record.id not in written:
                out.add_bytes(f"{config_hex}.json", config_bytes)
                written.add(record.id)
            ids = v1_ids(record.diff_ids, record.id)
            layer_files = []
            for index, (layer, diff_id) in enumerate(
                zip(parsed.layers, record.diff_ids, strict=True)
            ):
                name = f"{diff_id.split(':', 1)[1]}.tar"
                layer_files.append(name)
                if diff_id not in written:
                    _add_layer(out, name, store, layer.digest, diff_id, scratch_dir)
                    written.add(diff_id)
                v1 = ids[index]
                if v1 not in written:
                    written.add(v1)
                    out.directory(v1)
                    out.add_symlink(f"{v1}/layer.tar", f"../{name}")
                    out.add_bytes(f"{v1}/VERSION", b"1.0")
                    top = record.config if index == len(ids) - 1 else None
                    out.add_bytes(
                        f"{v1}/json", _legacy_json(v1, ids[index - 1] if index else None, top)
                    )
            manifest.append(
                {"Config": f"{config_hex}.json", "RepoTags": list(names), "Layers": layer_files}
            )
            for name in names:
                parsed_name = references.parse_reference(name)
                if parsed_name.tag and ids:
                    repo = parsed_name.repository
                    repositories.setdefault(repo, {})[parsed_name.tag] = ids[-1]
        out.add_bytes("manifest.json", json.dumps(manifest, separators=(",", ":")).encode())
        if repositories:
            out.add_bytes("repositories", _canonical(repositories))


def _add_layer(
    out: oci_export.TarWriter,
    name: str,
    store: content.LocalContentStore,
    blob: str,
    diff_id: str,
    scratch_dir: str,
) -> None:
    """The layer uncompressed: the blob itself when it is its diff_id, else inflated into a
    scratch file first (a tar entry needs its size before its data)."""
    if blob == diff_id:
        with store.open(blob) as f:
            out.add_file(name, f, store.size(blob))
        return
    with errors.map_os_errors(f"inflate layer {blob} into {scratch_dir}"):
        os.makedirs(scratch_dir, mode=0o700, exist_ok=True)
        with tempfile.TemporaryFile(dir=scratch_dir) as scratch:
            hasher = hashlib.sha256()
            with store.open(blob) as raw:
                inflated = tarstream.open_decompressed(raw)
                while chunk := inflated.read(tarstream.CHUNK):
                    hasher.update(chunk)
                    scratch.write(chunk)
            if f"sha256:{hasher.hexdigest()}" != diff_id:
                raise errors.InvalidSpec(
                    f"layer {blob} inflates to sha256:{hasher.hexdigest()}, not its diff_id "
                    f"{diff_id}: the local copy is corrupt; pull the image again"
                )
            size = scratch.tell()
            scratch.seek(0)
            out.add_file(name, scratch, size)
