"""Image references, parsed and normalised as Docker does.

``busybox`` → ``docker.io/library/busybox:latest``; ``localhost:5000/a/b@sha256:…``
keeps its registry and digest. Uppercase letters in the repository path are
rejected, as Docker rejects them. Pure: no I/O.
"""

from __future__ import annotations

import dataclasses
import re

DEFAULT_DOMAIN = "docker.io"
LEGACY_DOMAIN = "index.docker.io"
OFFICIAL_NAMESPACE = "library"
DEFAULT_TAG = "latest"

_COMPONENT = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$")
_DOMAIN = re.compile(
    r"^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)(?:\.(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?))*"
    r"(?::[0-9]+)?$|^\[[0-9a-fA-F:]+\](?::[0-9]+)?$"
)
_TAG = re.compile(r"^[\w][\w.-]{0,127}$")
_DIGEST = re.compile(r"^(sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})$")
MAX_NAME_LENGTH = 255


class ReferenceError_(ValueError):
    """A reference that Docker would refuse (a ``ValueError``, for pydantic)."""


@dataclasses.dataclass(frozen=True)
class Reference:
    domain: str
    path: str
    tag: str | None
    digest: str | None

    @property
    def repository(self) -> str:
        return f"{self.domain}/{self.path}"

    def __str__(self) -> str:
        text = self.repository
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text

    def familiar(self) -> str:
        """The short form Docker prints (``busybox:latest``)."""
        path = self.path
        if self.domain == DEFAULT_DOMAIN:
            if path.startswith(OFFICIAL_NAMESPACE + "/") and path.count("/") == 1:
                path = path[len(OFFICIAL_NAMESPACE) + 1 :]
            text = path
        else:
            text = f"{self.domain}/{path}"
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text


def is_digest(text: str) -> bool:
    return bool(_DIGEST.match(text))


def parse_reference(text: str) -> Reference:
    """Parse and normalise; a reference without tag or digest gets ``:latest``."""
    if not isinstance(text, str) or not text:
        raise ReferenceError_("an image reference cannot be empty")
    if len(text) > 2 * MAX_NAME_LENGTH:
        raise ReferenceError_(f"image reference is too long ({len(text)} characters)")
    rest, digest = text, None
    if "@" in rest:
        rest, digest = rest.split("@", 1)
        if not _DIGEST.match(digest):
            raise ReferenceError_(
                f"invalid digest {digest!r} in {text!r}: "
                "expected sha256: and 64 lowercase hex digits"
            )
    tag = None
    last_slash = rest.rfind("/")
    colon = rest.rfind(":")
    if colon > last_slash:
        rest, tag = rest[:colon], rest[colon + 1 :]
        if not _TAG.match(tag):
            raise ReferenceError_(f"invalid tag {tag!r} in {text!r}")
    parts = rest.split("/")
    if len(parts) > 1 and (
        "." in parts[0] or ":" in parts[0] or parts[0] == "localhost" or parts[0].startswith("[")
    ):
        domain, path_parts = parts[0], parts[1:]
        if not _DOMAIN.match(domain):
            raise ReferenceError_(f"invalid registry host {domain!r} in {text!r}")
    else:
        domain, path_parts = DEFAULT_DOMAIN, parts
    if domain == LEGACY_DOMAIN:
        domain = DEFAULT_DOMAIN
    if domain == DEFAULT_DOMAIN and len(path_parts) == 1:
        path_parts = [OFFICIAL_NAMESPACE, *path_parts]
    for component in path_parts:
        if not _COMPONENT.match(component):
            if component.lower() != component:
                raise ReferenceError_(
                    f"invalid reference {text!r}: repository name must be lowercase"
                )
            raise ReferenceError_(f"invalid reference {text!r}: bad path component {component!r}")
    path = "/".join(path_parts)
    if len(domain) + 1 + len(path) > MAX_NAME_LENGTH:
        raise ReferenceError_(f"repository name in {text!r} is longer than {MAX_NAME_LENGTH}")
    if tag is None and digest is None:
        tag = DEFAULT_TAG
    return Reference(domain=domain, path=path, tag=tag, digest=digest)


def normalize_reference(text: str) -> str:
    """The canonical string form (``docker.io/library/busybox:latest``)."""
    return str(parse_reference(text))
