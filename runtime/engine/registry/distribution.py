"""The distribution API of one repository, verified (distribution-spec).

Manifests: ``GET`` with ``Accept`` naming the four manifest and index types
(distribution 2.8 converts to schema 1 without it, and hides OCI documents);
the body is read with a size cap, hashed, and must hash to the requested
digest and to ``Docker-Content-Digest`` when the registry sends one; the
``mediaType`` inside must equal the ``Content-Type`` (parameters ignored), a
document without one must not be both an index and a manifest
(CVE-2021-41190), and schema 1 is refused.

Blobs: ``HEAD`` to learn whether one exists, ``GET`` (see ``download``), and
uploads: cross-repository mount (``201`` mounted, ``202`` an upload session
that is used instead), then one ``PUT`` for small blobs or ``PATCH`` chunks
with ``Content-Range`` (``OCI-Chunk-Min-Length`` honoured, a ``416`` resumed
from the registry's ``Range``), closed by ``PUT ?digest=``. Every returned
``Location`` is used verbatim, with ``digest`` appended to its query.
"""

from __future__ import annotations

import dataclasses
import json
import urllib.parse
from collections.abc import Callable
from typing import IO

import requests

from runtime import errors
from runtime.engine import content, oci_layout
from runtime.engine.registry import transport as transport_mod

SCHEMA1_TYPES = {
    "application/vnd.docker.distribution.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v1+prettyjws",
}
ACCEPT = ", ".join(
    [
        oci_layout.INDEX_OCI,
        oci_layout.MANIFEST_OCI,
        oci_layout.LIST_DOCKER,
        oci_layout.MANIFEST_DOCKER,
    ]
)
KNOWN_TYPES = oci_layout.INDEX_TYPES | oci_layout.MANIFEST_TYPES


@dataclasses.dataclass(frozen=True)
class Fetched:
    """A manifest or index as the registry served it, verified."""

    data: bytes
    media_type: str
    digest: str

    @property
    def is_index(self) -> bool:
        return self.media_type in oci_layout.INDEX_TYPES


def media_type_of(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def with_query(url: str, **params: str) -> str:
    """``url`` with ``params`` added to whatever query it has (``_state=`` stays)."""
    parts = urllib.parse.urlsplit(url)
    query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    query += list(params.items())
    return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query)))


def check_document(data: bytes, media_type: str, digest: str, what: str) -> str:
    """The media type of a fetched manifest or index, after the spec's checks."""
    if media_type in SCHEMA1_TYPES:
        raise errors.InvalidSpec(
            f"{what} is a Docker schema 1 manifest, which is deprecated and not supported: "
            "push the image again with a current client"
        )
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise errors.InvalidSpec(f"{what}: the manifest is not valid JSON ({exc})") from exc
    if not isinstance(doc, dict):
        raise errors.InvalidSpec(f"{what}: the manifest is not a JSON object")
    if "manifests" in doc and ("layers" in doc or "config" in doc):
        raise errors.InvalidSpec(
            f"{what}: document is both an index and a manifest (CVE-2021-41190)"
        )
    declared = doc.get("mediaType")
    if declared is not None:
        if not isinstance(declared, str):
            raise errors.InvalidSpec(f"{what}: mediaType is not a string")
        if media_type and declared != media_type:
            raise errors.InvalidSpec(
                f"{what}: the registry says Content-Type {media_type!r} but the document's "
                f"mediaType is {declared!r}: refusing it"
            )
        media_type = declared
    if declared in SCHEMA1_TYPES or doc.get("schemaVersion") == 1:
        raise errors.InvalidSpec(
            f"{what} is a Docker schema 1 manifest, which is deprecated and not supported"
        )
    if media_type not in KNOWN_TYPES:
        if "manifests" in doc:
            media_type = oci_layout.INDEX_OCI
        elif "layers" in doc and "config" in doc:
            media_type = oci_layout.MANIFEST_OCI
        else:
            raise errors.InvalidSpec(f"{what}: unsupported manifest type {media_type!r}")
    return media_type


class Repository:
    """One repository (``test/busybox``) on a registry ``Transport``."""

    def __init__(self, transport: transport_mod.Transport, path: str) -> None:
        self.transport = transport
        self.path = path
        self.name = f"{transport.host}/{path}"

    @property
    def pull_scope(self) -> str:
        return f"repository:{self.path}:pull"

    @property
    def push_scope(self) -> str:
        return f"repository:{self.path}:pull,push"

    # -- manifests ---------------------------------------------------------------

    def get_manifest(
        self, reference: str, expected: oci_layout.Descriptor | None = None
    ) -> Fetched:
        """The manifest or index ``reference`` (a tag or a digest) names, verified."""
        sep = "@" if ":" in reference else ":"
        what = f"manifest {self.name}{sep}{reference}"
        cap = self.transport.options.max_json
        if expected is not None and expected.size > cap:
            raise errors.InvalidSpec(f"{what}: {expected.size} bytes is over the {cap} allowed")
        response = self.transport.request(
            "GET", f"/v2/{self.path}/manifests/{reference}", scopes=[self.pull_scope],
            what=f"pull {what}", headers={"Accept": ACCEPT}, stream=True,
        )  # fmt: skip
        transport_mod.expect(response, (200,), f"pull {what}")
        with response:
            data = _read_capped(response, cap, what)
        algorithm = "sha256"
        wanted = expected.digest if expected else (reference if ":" in reference else None)
        if wanted is not None:
            algorithm, _ = content.validate_digest(wanted)
        digest = content.digest_bytes(data, algorithm)
        if wanted is not None and digest != wanted:
            raise errors.InvalidSpec(
                f"{what}: the registry's manifest hashes to {digest}: corrupt or tampered"
            )
        if expected is not None and len(data) != expected.size:
            raise errors.InvalidSpec(
                f"{what}: {len(data)} bytes where its descriptor says {expected.size}"
            )
        header = response.headers.get("Docker-Content-Digest")
        if header and header.startswith(f"{algorithm}:") and header != digest:
            raise errors.InvalidSpec(
                f"{what}: Docker-Content-Digest {header} does not match the body ({digest})"
            )
        media_type = check_document(
            data, media_type_of(response.headers.get("Content-Type")), digest, what
        )
        if expected is not None and expected.media_type != media_type:
            raise errors.InvalidSpec(
                f"{what}: mediaType {media_type!r} differs from its descriptor's "
                f"{expected.media_type!r}"
            )
        return Fetched(data, media_type, digest)

    def put_manifest(self, reference: str, data: bytes, media_type: str) -> str:
        """Store ``data`` (exact bytes) under a tag or its digest; the digest."""
        what = f"push manifest {self.name}:{reference}"
        digest = content.digest_bytes(data)
        response = self.transport.request(
            "PUT", f"/v2/{self.path}/manifests/{reference}", scopes=[self.push_scope],
            what=what, headers={"Content-Type": media_type}, body=data,
        )  # fmt: skip
        transport_mod.expect(response, (201, 200), what)
        returned = response.headers.get("Docker-Content-Digest")
        if returned and returned != digest:
            raise errors.InvalidSpec(f"{what}: the registry stored {returned}, not {digest}")
        return digest

    def tags(self) -> list[str]:
        """Every tag (following ``Link: rel="next"``; order as the registry gives it)."""
        found: list[str] = []
        url = f"/v2/{self.path}/tags/list"
        for _ in range(1000):
            response = self.transport.request(
                "GET", url, scopes=[self.pull_scope], what=f"list tags of {self.name}"
            )
            transport_mod.expect(response, (200,), f"list tags of {self.name}")
            doc = response.json()
            found += [t for t in doc.get("tags") or [] if isinstance(t, str)]
            following = response.links.get("next", {}).get("url")
            if not following:
                break
            url = following
        return found

    # -- blobs -------------------------------------------------------------------

    def blob_size(self, digest: str) -> int | None:
        """The blob's size when the repository has it, else None."""
        content.validate_digest(digest)
        what = f"check blob {digest} in {self.name}"
        response = self.transport.request(
            "HEAD", f"/v2/{self.path}/blobs/{digest}", scopes=[self.pull_scope], what=what
        )
        response.close()
        if response.status_code == 404:
            return None
        transport_mod.expect(response, (200,), what)
        length = response.headers.get("Content-Length")
        return int(length) if length and length.isdigit() else None

    def open_blob(self, digest: str, offset: int = 0) -> requests.Response:
        """A streamed ``GET`` of the blob from ``offset`` (200, 206, or 416 when the
        registry has no byte there; see ``download``)."""
        content.validate_digest(digest)
        headers = {"Accept-Encoding": "identity"}
        if offset:
            headers["Range"] = f"bytes={offset}-"
        what = f"download blob {digest} from {self.name}"
        response = self.transport.request(
            "GET", f"/v2/{self.path}/blobs/{digest}", scopes=[self.pull_scope], what=what,
            headers=headers, stream=True,
        )  # fmt: skip
        return transport_mod.expect(response, (200, 206, 416), what)

    def mount_blob(self, digest: str, source: str) -> str | None:
        """Mount a blob from another repository of the same registry: None when
        mounted, else the ``Location`` of the upload session the registry opened."""
        what = f"mount blob {digest} from {source} into {self.name}"
        response = self.transport.request(
            "POST", f"/v2/{self.path}/blobs/uploads/?" + urllib.parse.urlencode(
                {"mount": digest, "from": source}
            ), scopes=[self.push_scope, f"repository:{source}:pull"], what=what,
            headers={"Content-Length": "0"}, body=b"",
        )  # fmt: skip
        transport_mod.expect(response, (201, 202), what)
        response.close()
        if response.status_code == 201:
            return None
        return self._location(response, what)

    def start_upload(self) -> tuple[str, int]:
        """A new upload session: its ``Location`` and the minimum chunk length."""
        what = f"start an upload to {self.name}"
        response = self.transport.request(
            "POST", f"/v2/{self.path}/blobs/uploads/", scopes=[self.push_scope], what=what,
            headers={"Content-Length": "0"}, body=b"",
        )  # fmt: skip
        transport_mod.expect(response, (202,), what)
        response.close()
        minimum = response.headers.get("OCI-Chunk-Min-Length", "")
        return self._location(response, what), int(minimum) if minimum.isdigit() else 0

    def upload(
        self,
        location: str,
        opener: Callable[[], IO[bytes]],
        digest: str,
        size: int,
        *,
        chunk_size: int,
        min_chunk: int = 0,
        on_bytes: Callable[[int], None] | None = None,
    ) -> None:
        """Send the blob into the session at ``location`` and close it."""
        what = f"upload blob {digest} to {self.name}"
        if size <= chunk_size:
            response = self.transport.request(
                "PUT", with_query(location, digest=digest), scopes=[self.push_scope], what=what,
                headers={"Content-Type": "application/octet-stream",
                         "Content-Length": str(size)},
                body=opener,
            )  # fmt: skip
            transport_mod.expect(response, (201, 204), what)
            response.close()
            if on_bytes:
                on_bytes(size)
            return
        chunk = max(chunk_size, min_chunk)
        offset = 0
        with opener() as f:
            while offset < size:
                f.seek(offset)
                data = f.read(min(chunk, size - offset))
                end = offset + len(data) - 1
                response = self.transport.request(
                    "PATCH", location, scopes=[self.push_scope], what=what,
                    headers={"Content-Type": "application/octet-stream",
                             "Content-Range": f"{offset}-{end}",
                             "Content-Length": str(len(data))},
                    body=data,
                )  # fmt: skip
                if response.status_code == 416:
                    response.close()
                    location, offset = self._upload_status(location, what)
                    continue
                transport_mod.expect(response, (202,), what)
                response.close()
                location = self._location(response, what)
                offset = end + 1
                if on_bytes:
                    on_bytes(len(data))
        response = self.transport.request(
            "PUT", with_query(location, digest=digest), scopes=[self.push_scope], what=what,
            headers={"Content-Length": "0"}, body=b"",
        )  # fmt: skip
        transport_mod.expect(response, (201, 204), what)
        response.close()

    def _upload_status(self, location: str, what: str) -> tuple[str, int]:
        response = self.transport.request("GET", location, scopes=[self.push_scope], what=what)
        transport_mod.expect(response, (204,), what)
        response.close()
        received = response.headers.get("Range", "")
        _, _, end = received.partition("-")
        offset = int(end) + 1 if end.isdigit() else 0
        return self._location(response, what, default=location), offset

    def cancel_upload(self, location: str) -> None:
        response = self.transport.request(
            "DELETE", location, scopes=[self.push_scope], what=f"cancel an upload to {self.name}"
        )
        response.close()

    def _location(self, response: requests.Response, what: str, default: str | None = None) -> str:
        location = response.headers.get("Location") or default
        if not location:
            raise errors.Terminal(f"{what}: the registry gave no Location for the upload")
        return self.transport.url(location)


def _read_capped(response: requests.Response, cap: int, what: str) -> bytes:
    length = response.headers.get("Content-Length", "")
    if length.isdigit() and int(length) > cap:
        raise errors.InvalidSpec(f"{what}: {length} bytes is over the {cap} allowed")
    chunks: list[bytes] = []
    total = 0
    try:
        for chunk in response.iter_content(64 << 10):
            total += len(chunk)
            if total > cap:
                raise errors.InvalidSpec(f"{what}: more than the {cap} bytes allowed")
            chunks.append(chunk)
    except requests.RequestException as exc:
        raise errors.Unavailable(f"{what}: the download was interrupted ({exc})") from exc
    return b"".join(chunks)


def file_opener(path: str) -> Callable[[], IO[bytes]]:
    def opener() -> IO[bytes]:
        with errors.map_os_errors(f"open {path}"):
            return open(path, "rb")

    return opener
