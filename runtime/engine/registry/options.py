"""How the registry client reaches registries: hosts, TLS, limits, retries.

Choices (Docker's where Docker has one):

* ``docker.io`` is served by ``registry-1.docker.io``; credentials for it are
  filed under ``https://index.docker.io/v1/`` in Docker's config.
* HTTPS with certificate verification is the default for every registry.
  Plain HTTP is used only for a loopback registry (``localhost``,
  ``127.0.0.0/8``, ``::1``) that does not speak TLS, or for a registry named
  in ``insecure`` (``PYRECONCILE_INSECURE_REGISTRIES``, comma-separated);
  an insecure registry that does speak TLS is used without verification, as
  Docker's ``insecure-registries`` does.
* A registry's own CA and client certificate live in a ``certs.d`` directory
  as Docker lays it out: ``<certs.d>/<host[:port]>/*.crt`` (CAs, used instead
  of the system bundle), ``client.cert`` + ``client.key``. The directories
  searched are ``PYRECONCILE_CERTS_D`` (colon-separated), then
  ``/etc/pyreconcile/certs.d`` and ``/etc/docker/certs.d``.
* Credentials come from Docker's ``config.json`` in ``DOCKER_CONFIG`` (else
  ``~/.docker``), so ``docker login`` and ``pyreconcile login`` share them.
* JSON documents (manifests, indexes, configs, token answers) are read with a
  cap a little above the 4 MiB the distribution spec asks clients to accept.
"""

from __future__ import annotations

import dataclasses
import hashlib
import ipaddress
import os
import tempfile
import time
from collections.abc import Callable

DOCKER_HUB = "docker.io"
DOCKER_HUB_ENDPOINT = "registry-1.docker.io"
DOCKER_HUB_AUTH_KEY = "https://index.docker.io/v1/"
DEFAULT_CERTS_DIRS = ("/etc/pyreconcile/certs.d", "/etc/docker/certs.d")
MAX_JSON = 8 << 20
MAX_TOKEN_RESPONSE = 1 << 20


def _split(text: str | None, sep: str) -> tuple[str, ...]:
    return tuple(p.strip() for p in (text or "").split(sep) if p.strip())


@dataclasses.dataclass(frozen=True)
class RegistryOptions:
    """Everything the registry client may be told; ``from_env`` reads the defaults."""

    docker_config_dir: str = dataclasses.field(
        default_factory=lambda: os.path.expanduser("~/.docker")
    )
    certs_dirs: tuple[str, ...] = DEFAULT_CERTS_DIRS
    insecure: frozenset[str] = frozenset()
    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    attempts: int = 4  # per request, for 429, 5xx and connection errors
    backoff: float = 0.5  # first delay; doubles, with jitter
    max_retry_after: float = 60.0  # a longer Retry-After fails instead of waiting
    resumes: int = 8  # Range resumptions of one blob download
    parallel: int = 3  # layers downloaded or uploaded at once
    chunk_size: int = 16 << 20  # uploads larger than this are sent in PATCH chunks
    max_json: int = MAX_JSON
    user_agent: str = "pyreconcile/0.1"
    sleep: Callable[[float], None] = time.sleep

    @classmethod
    def from_env(cls, **overrides: object) -> RegistryOptions:
        env = os.environ
        config_dir = env.get("DOCKER_CONFIG") or os.path.expanduser("~/.docker")
        certs = _split(env.get("PYRECONCILE_CERTS_D"), ":") + DEFAULT_CERTS_DIRS
        insecure = frozenset(_split(env.get("PYRECONCILE_INSECURE_REGISTRIES"), ","))
        base = cls(docker_config_dir=config_dir, certs_dirs=certs, insecure=insecure)
        return dataclasses.replace(base, **overrides)  # type: ignore[arg-type]


def endpoint_host(domain: str) -> str:
    """The host that serves the API of a reference's domain."""
    return DOCKER_HUB_ENDPOINT if domain == DOCKER_HUB else domain


def credentials_key(domain: str) -> str:
    """The key Docker files a registry's credentials under."""
    return DOCKER_HUB_AUTH_KEY if domain in (DOCKER_HUB, DOCKER_HUB_ENDPOINT) else domain


def hostname(host: str) -> str:
    """``host[:port]`` without the port (and without the brackets of IPv6)."""
    if host.startswith("["):
        return host[1 : host.index("]")]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def is_loopback(host: str) -> bool:
    name = hostname(host)
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def may_use_plain_http(host: str, options: RegistryOptions) -> bool:
    return is_loopback(host) or host in options.insecure or hostname(host) in options.insecure


@dataclasses.dataclass(frozen=True)
class TlsFiles:
    """What ``requests`` gets as ``verify`` and ``cert`` for one registry."""

    verify: bool | str
    cert: tuple[str, str] | None


def tls_files(host: str, options: RegistryOptions, cache_dir: str | None = None) -> TlsFiles:
    """The CA bundle and client certificate configured for ``host``.

    Several ``*.crt`` files are joined into one bundle (``requests`` takes one
    path), named by its content in ``cache_dir`` (a private directory: the run
    root's), else in a fresh temporary file. An insecure registry is not verified.
    """
    if host in options.insecure or hostname(host) in options.insecure:
        return TlsFiles(False, None)
    cas: list[str] = []
    cert: tuple[str, str] | None = None
    safe = host.replace("/", "_")
    for base in options.certs_dirs:
        directory = os.path.join(base, safe)
        if not os.path.isdir(directory):
            continue
        for name in sorted(os.listdir(directory)):
            path = os.path.join(directory, name)
            if name.endswith(".crt"):
                cas.append(path)
            elif name.endswith(".cert"):
                key = path[: -len(".cert")] + ".key"
                if os.path.exists(key) and cert is None:
                    cert = (path, key)
        if cas or cert:
            break
    if not cas:
        return TlsFiles(True, cert)
    if len(cas) == 1:
        return TlsFiles(cas[0], cert)
    joined = b"".join(_read(path).rstrip(b"\n") + b"\n" for path in cas)
    if cache_dir is None:
        fd, bundle = tempfile.mkstemp(prefix=f"pyreconcile-ca-{safe}-", suffix=".pem")
        with os.fdopen(fd, "wb") as out:
            out.write(joined)
        return TlsFiles(bundle, cert)
    os.makedirs(cache_dir, mode=0o700, exist_ok=True)
    bundle = os.path.join(cache_dir, f"ca-{hashlib.sha256(joined).hexdigest()[:16]}.pem")
    if not os.path.exists(bundle):
        fd, tmp = tempfile.mkstemp(dir=cache_dir)
        with os.fdopen(fd, "wb") as out:
            out.write(joined)
        os.replace(tmp, bundle)
    return TlsFiles(bundle, cert)


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()
