"""OCI image documents and image layouts: parse, verify, pick, build.

Verification follows the image-spec's checklist: every JSON document is read
with a size cap (CVE-2023-25153), its length and digest checked against the
descriptor that names it *before* it is parsed; a manifest or index must
carry the media type its descriptor says, and a document with both
``manifests`` and ``layers``/``config`` is refused (CVE-2021-41190); digests
are validated before they become paths; descriptor ``urls`` are ignored
(CVE-2020-15157); an inline ``data`` field must match its digest. Layer blobs
are verified by the content store while they are copied, and their diff_ids by
the unpacker. Image-config paths (``Volumes``, ``WorkingDir``) must be
absolute and free of ``..`` (CVE-2022-23648).

Platforms (normalising, matching index entries) are ``platforms``'s.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import datetime
import json
import os
import posixpath
import tarfile
from types import TracebackType
from typing import IO, Any

from runtime import errors
from runtime.engine import content, platforms, tarstream
from schemas import reference as references

MAX_JSON = 8 << 20
MAX_LAYOUT_ENTRIES = 100_000
MAX_INDEX_DEPTH = 4
INDEX_OCI = "application/vnd.oci.image.index.v1+json"
MANIFEST_OCI = "application/vnd.oci.image.manifest.v1+json"
LIST_DOCKER = "application/vnd.docker.distribution.manifest.list.v2+json"
MANIFEST_DOCKER = "application/vnd.docker.distribution.manifest.v2+json"
CONFIG_OCI = "application/vnd.oci.image.config.v1+json"
CONFIG_DOCKER = "application/vnd.docker.container.image.v1+json"
LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"
LAYER_TYPES = {
    LAYER_TAR, f"{LAYER_TAR}+gzip", f"{LAYER_TAR}+zstd",
    "application/vnd.oci.image.layer.nondistributable.v1.tar",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
    "application/vnd.docker.image.rootfs.diff.tar.gzip",
}  # fmt: skip
INDEX_TYPES = {INDEX_OCI, LIST_DOCKER}
MANIFEST_TYPES = {MANIFEST_OCI, MANIFEST_DOCKER}
REF_NAME = "org.opencontainers.image.ref.name"
CONTAINERD_NAME = "io.containerd.image.name"


def _invalid(what: str, detail: str) -> errors.InvalidSpec:
    return errors.InvalidSpec(f"{what}: {detail}")


def _json(raw: bytes, what: str) -> dict[str, Any]:
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise _invalid(what, f"not valid JSON ({exc})") from exc
    if not isinstance(doc, dict):
        raise _invalid(what, "not a JSON object")
    return doc


@dataclasses.dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: str
    size: int
    annotations: tuple[tuple[str, str], ...] = ()
    platform: tuple[tuple[str, str], ...] = ()

    def annotation(self, key: str) -> str | None:
        return dict(self.annotations).get(key)


def parse_descriptor(raw: Any, what: str) -> Descriptor:
    if not isinstance(raw, dict):
        raise _invalid(what, "descriptor is not an object")
    media_type, digest, size = raw.get("mediaType"), raw.get("digest"), raw.get("size")
    if not isinstance(media_type, str) or not media_type:
        raise _invalid(what, "descriptor has no mediaType")
    if not isinstance(digest, str):
        raise _invalid(what, "descriptor has no digest")
    content.validate_digest(digest)
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise _invalid(what, f"descriptor {digest} has an invalid size {size!r}")
    if "data" in raw:  # optional inline copy: it must be the same content
        try:
            data = base64.b64decode(raw["data"], validate=True)
        except (binascii.Error, TypeError) as exc:
            raise _invalid(what, f"descriptor {digest} has invalid base64 data") from exc
        algorithm = digest.split(":", 1)[0]
        if len(data) != size or content.digest_bytes(data, algorithm) != digest:
            raise _invalid(what, f"descriptor {digest} has data that does not match it")
    annotations = raw.get("annotations") or {}
    plat = raw.get("platform") or {}
    if not isinstance(annotations, dict) or not isinstance(plat, dict):
        raise _invalid(what, f"descriptor {digest} has malformed annotations or platform")
    return Descriptor(
        media_type,
        digest,
        size,
        tuple(sorted((str(k), str(v)) for k, v in annotations.items())),
        tuple(sorted((str(k), str(v)) for k, v in plat.items() if isinstance(v, str))),
    )


def verify(raw: bytes, desc: Descriptor, what: str) -> None:
    if len(raw) != desc.size:
        raise _invalid(what, f"{len(raw)} bytes where the descriptor says {desc.size}")
    algorithm = desc.digest.split(":", 1)[0]
    if content.digest_bytes(raw, algorithm) != desc.digest:
        raise _invalid(what, f"content does not hash to {desc.digest}: corrupt or tampered")


def _check_kind(doc: dict[str, Any], media_type: str | None, what: str) -> None:
    if "manifests" in doc and ("layers" in doc or "config" in doc):
        raise _invalid(what, "document is both an index and a manifest (CVE-2021-41190)")
    declared = doc.get("mediaType")
    if media_type is not None and declared is not None and declared != media_type:
        raise _invalid(what, f"mediaType {declared!r} differs from its descriptor's {media_type!r}")


@dataclasses.dataclass(frozen=True)
class Manifest:
    media_type: str
    config: Descriptor
    layers: tuple[Descriptor, ...]


def parse_manifest(
    raw: bytes, digest: str | None = None, media_type: str | None = None
) -> Manifest:
    what = f"manifest {digest or ''}".strip()
    doc = _json(raw, what)
    _check_kind(doc, media_type, what)
    kind = doc.get("mediaType") or media_type or MANIFEST_OCI
    if kind not in MANIFEST_TYPES or doc.get("schemaVersion") != 2:
        raise _invalid(what, f"unsupported manifest (mediaType {kind!r}, schema 2 expected)")
    config = parse_descriptor(doc.get("config"), what)
    layers = doc.get("layers")
    if not isinstance(layers, list):
        raise _invalid(what, "layers is not a list")
    return Manifest(kind, config, tuple(parse_descriptor(d, what) for d in layers))


def parse_index(
    raw: bytes, digest: str | None = None, media_type: str | None = None
) -> list[Descriptor]:
    """The entries of an image index (or Docker manifest list)."""
    what = f"index {digest or ''}".strip()
    doc = _json(raw, what)
    _check_kind(doc, media_type, what)
    entries = doc.get("manifests")
    if not isinstance(entries, list):
        raise _invalid(what, "manifests is not a list")
    return [parse_descriptor(d, what) for d in entries]


def check_media_types(manifest: Manifest, what: str) -> None:
    """Refuse a config or layer this engine cannot use (Windows foreign layers…)."""
    if manifest.config.media_type not in (CONFIG_OCI, CONFIG_DOCKER):
        raise _invalid(what, f"config has unsupported mediaType {manifest.config.media_type!r}")
    for layer in manifest.layers:
        if layer.media_type not in LAYER_TYPES:
            raise _invalid(
                what, f"layer {layer.digest} has unsupported mediaType {layer.media_type!r}"
            )


def checked_diff_ids(manifest: Manifest, config_bytes: bytes, what: str) -> tuple[str, ...]:
    """The config's diff_ids, one per manifest layer."""
    diff_ids = tuple(parse_config(config_bytes, manifest.config.digest)["rootfs"]["diff_ids"])
    if len(diff_ids) != len(manifest.layers):
        raise _invalid(
            what, f"{len(manifest.layers)} layers but {len(diff_ids)} diff_ids in the config"
        )
    return diff_ids


def _clean_path(value: Any, what: str) -> None:
    if not isinstance(value, str) or not value.startswith("/") or ".." in value.split("/"):
        raise _invalid(what, f"path {value!r} must be absolute and must not contain '..'")


def parse_config(raw: bytes, digest: str | None = None) -> dict[str, Any]:
    """The image config as a dict, with ``rootfs.diff_ids`` and paths checked."""
    what = f"image config {digest or ''}".strip()
    doc = _json(raw, what)
    rootfs = doc.get("rootfs")
    if not isinstance(rootfs, dict) or rootfs.get("type") != "layers":
        raise _invalid(what, "rootfs.type must be 'layers'")
    diff_ids = rootfs.get("diff_ids")
    if not isinstance(diff_ids, list):
        raise _invalid(what, "rootfs.diff_ids is not a list")
    for diff_id in diff_ids:
        content.validate_digest(diff_id)
    cfg = doc.get("config") or {}
    if not isinstance(cfg, dict):
        raise _invalid(what, "config is not an object")
    for volume in cfg.get("Volumes") or {}:
        _clean_path(volume, f"{what} Volumes")
    if cfg.get("WorkingDir"):
        _clean_path(cfg["WorkingDir"], f"{what} WorkingDir")
    return doc


def parse_time(text: Any) -> float:
    """An RFC 3339 time (nanoseconds allowed) as epoch seconds; 0 when absent or bad."""
    if not isinstance(text, str) or not text:
        return 0.0
    value = text.strip().replace("Z", "+00:00").replace("z", "+00:00")
    if "." in value:  # Python parses at most microseconds
        head, rest = value.split(".", 1)
        digits = len(rest) - len(rest.lstrip("0123456789"))
        value = f"{head}.{rest[:digits][:6].ljust(6, '0')}{rest[digits:]}"
    try:
        return datetime.datetime.fromisoformat(value).timestamp()
    except ValueError:
        return 0.0


# -- platforms (kept here for callers that know them by this module) ---------------------

Platform = platforms.Platform
host_platform = platforms.host_platform
parse_platform = platforms.parse_platform
format_platform = platforms.format_platform
descriptor_platform = platforms.descriptor_platform
choose_manifest = platforms.choose_manifest
platform_matches = platforms.platform_matches


# -- building a single-layer image (docker import) --------------------------------------


def _rfc3339(seconds: float) -> str:
    when = datetime.datetime.fromtimestamp(int(seconds), datetime.UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def _canonical(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


@dataclasses.dataclass(frozen=True)
class BuiltImage:
    config: bytes
    manifest: bytes


def rootfs_image(layer_digest: str, layer_size: int, newest_mtime: float | None) -> BuiltImage:
    """Config and manifest of a one-layer image whose uncompressed layer is given.

    Deterministic: ``created`` is the layer's newest mtime, so the same tarball
    always gives the same image id."""
    host = host_platform()
    created = _rfc3339(max(newest_mtime or 0.0, 0.0))
    config: dict[str, Any] = {
        "architecture": host.architecture,
        "os": host.os,
        "created": created,
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
        "history": [{"created": created, "created_by": "pyreconcile import"}],
    }
    if host.variant and host.architecture == "arm":
        config["variant"] = host.variant
    config_bytes = _canonical(config)
    manifest = {
        "schemaVersion": 2,
        "mediaType": MANIFEST_OCI,
        "config": {
            "mediaType": CONFIG_OCI,
            "digest": content.digest_bytes(config_bytes),
            "size": len(config_bytes),
        },
        "layers": [{"mediaType": LAYER_TAR, "digest": layer_digest, "size": layer_size}],
    }
    return BuiltImage(config_bytes, _canonical(manifest))


# -- reading a layout -------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Picked:
    """One image of a layout, verified: what ``ImageStore`` stores and unpacks."""

    manifest: Descriptor
    manifest_bytes: bytes
    config: Descriptor
    config_bytes: bytes
    layers: tuple[Descriptor, ...]
    diff_ids: tuple[str, ...]
    name: str | None  # a full reference from the index annotations, if any

    @property
    def layer_digests(self) -> list[str]:
        return [d.digest for d in self.layers]


def _name_of(entry: Descriptor) -> str | None:
    """A full image name carried by an index entry (``busybox:1.36``, not a bare tag)."""
    for key in (CONTAINERD_NAME, REF_NAME):
        value = entry.annotation(key)
        if value and ("/" in value or ":" in value):
            try:
                return references.normalize_reference(value)
            except references.ReferenceError_:
                continue
    return None


class LayoutReader:
    """An OCI image layout directory or tar (plain or compressed), read-only."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._tar: tarfile.TarFile | None = None
        self._members: dict[str, tarfile.TarInfo] = {}
        if os.path.isdir(path):
            return
        with errors.map_os_errors(f"open OCI layout {path}"):
            try:
                self._tar = tarfile.open(path, "r:*", tarinfo=tarstream.BoundedTarInfo)  # noqa: SIM115
                for count, member in enumerate(iter(self._tar.next, None)):
                    if count >= MAX_LAYOUT_ENTRIES:
                        raise _invalid(path, f"more than {MAX_LAYOUT_ENTRIES} entries")
                    if member.isreg():
                        self._members["/".join(tarstream.clean_name(member.name))] = member
            except tarfile.TarError as exc:
                self.close()
                raise _invalid(
                    f"OCI layout {path}", f"not a directory nor a valid tar ({exc})"
                ) from exc

    def close(self) -> None:
        if self._tar is not None:
            self._tar.close()
            self._tar = None

    def __enter__(self) -> LayoutReader:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _open(self, name: str) -> IO[bytes]:
        if self._tar is None:
            with errors.map_os_errors(f"OCI layout {self.path}: open {name}"):
                return open(os.path.join(self.path, name), "rb")
        member = self._members.get(name)
        extracted = self._tar.extractfile(member) if member is not None else None
        if extracted is None:
            raise errors.NotFound(f"OCI layout {self.path} has no {name}")
        return extracted

    def read(self, name: str, cap: int = MAX_JSON) -> bytes:
        with self._open(name) as f:
            data = f.read(cap + 1)
        if len(data) > cap:
            raise _invalid(f"OCI layout {self.path}", f"{name} is larger than {cap} bytes")
        return data

    def open_blob(self, desc: Descriptor) -> IO[bytes]:
        """A blob's bytes, unverified: the content store verifies them as it copies."""
        algorithm, encoded = content.validate_digest(desc.digest)
        return self._open(posixpath.join("blobs", algorithm, encoded))

    def read_verified(self, desc: Descriptor, what: str) -> bytes:
        if desc.size > MAX_JSON:
            raise _invalid(what, f"{desc.size} bytes is more than the {MAX_JSON} allowed")
        algorithm, encoded = content.validate_digest(desc.digest)
        raw = self.read(posixpath.join("blobs", algorithm, encoded))
        verify(raw, desc, what)
        return raw

    def names(self) -> list[str]:
        """The full image names the layout's index carries, in index order."""
        index = _json(self.read("index.json"), f"OCI layout {self.path} index.json")
        found: list[str] = []
        for raw in index.get("manifests") or []:
            name = _name_of(parse_descriptor(raw, f"OCI layout {self.path} index.json"))
            if name and name not in found:
                found.append(name)
        return found

    def pick(self, reference: str | None, host: Platform) -> Picked:
        """The image to import: see ``ImageStore.import_oci_layout``."""
        where = f"OCI layout {self.path}"
        marker = _json(self.read("oci-layout", 1 << 16), f"{where} oci-layout")
        if not str(marker.get("imageLayoutVersion", "")).startswith("1."):
            raise _invalid(
                where, f"unsupported imageLayoutVersion {marker.get('imageLayoutVersion')!r}"
            )
        index = _json(self.read("index.json"), f"{where} index.json")
        _check_kind(index, INDEX_OCI, f"{where} index.json")
        entries = [parse_descriptor(d, f"{where} index.json") for d in index.get("manifests") or []]
        entry = self._entry(entries, reference, host, where)
        name = _name_of(entry)
        depth = 0
        while entry.media_type in INDEX_TYPES:
            depth += 1
            if depth > MAX_INDEX_DEPTH:
                raise _invalid(where, f"indexes nested more than {MAX_INDEX_DEPTH} deep")
            what = f"{where} index {entry.digest}"
            doc = _json(self.read_verified(entry, what), what)
            _check_kind(doc, entry.media_type, what)
            children = [parse_descriptor(d, what) for d in doc.get("manifests") or []]
            entry = self._by_platform(children, host, what)
        if entry.media_type not in MANIFEST_TYPES:
            raise _invalid(
                where, f"entry {entry.digest} has unsupported mediaType {entry.media_type!r}"
            )
        what = f"{where} manifest {entry.digest}"
        manifest_bytes = self.read_verified(entry, what)
        manifest = parse_manifest(manifest_bytes, entry.digest, entry.media_type)
        check_media_types(manifest, what)
        config_bytes = self.read_verified(
            manifest.config, f"{where} config {manifest.config.digest}"
        )
        diff_ids = checked_diff_ids(manifest, config_bytes, what)
        return Picked(
            entry, manifest_bytes, manifest.config, config_bytes, manifest.layers, diff_ids, name
        )

    def _entry(
        self, entries: list[Descriptor], reference: str | None, host: Platform, where: str
    ) -> Descriptor:
        if reference:
            parsed = references.parse_reference(reference)
            wanted = {reference, str(parsed), parsed.familiar(), parsed.tag}
            for entry in entries:
                if (
                    entry.annotation(REF_NAME) in wanted
                    or entry.annotation(CONTAINERD_NAME) in wanted
                ):
                    return entry
        if len(entries) == 1:
            return entries[0]
        if entries and all(e.platform for e in entries):
            return self._by_platform(entries, host, f"{where} index.json")
        names = sorted({e.annotation(REF_NAME) or e.digest for e in entries})
        raise _invalid(
            where,
            f"holds {len(entries)} images ({', '.join(names) or 'none'}): "
            "name one with a reference matching its org.opencontainers.image.ref.name",
        )

    def _by_platform(self, entries: list[Descriptor], host: Platform, what: str) -> Descriptor:
        return choose_manifest(entries, host, what)


def archive_kind(path: str, probe: int = 1000) -> str:
    """``oci-layout`` (a layout directory or tar), ``docker-archive`` (``docker
    save``) or ``rootfs`` (anything else): from the names of the first entries."""
    if os.path.isdir(path):
        return "oci-layout" if os.path.exists(os.path.join(path, "oci-layout")) else "rootfs"
    try:
        with errors.map_os_errors(f"read {path}"), tarfile.open(path, "r|*") as tar:
            for count, member in enumerate(iter(tar.next, None)):
                name = "/".join(tarstream.clean_name(member.name))
                if name == "oci-layout":
                    return "oci-layout"
                if name == "manifest.json" and member.isreg():
                    return "docker-archive"
                if count >= probe:
                    break
                tar.members.clear()  # type: ignore[attr-defined]
    except (tarfile.TarError, EOFError, OSError, errors.InvalidSpec):
        pass  # not a tar tarfile can read (zstd…): the rootfs importer says what it is
    return "rootfs"
