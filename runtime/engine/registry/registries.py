"""``Registries``: the registry client the engine holds, one per ``LocalRuntime``.

It keeps one ``Transport`` per registry host (connections, learned scheme,
tokens) for its lifetime, reads credentials from Docker's config when a
registry first asks for them, and offers the verbs the runtime client needs:
``resolve``, ``pull``, ``push``, ``login``, ``logout``.
"""

from __future__ import annotations

import threading
import urllib.parse

from runtime import client, errors
from runtime.engine import content, images, platforms
from runtime.engine.registry import credentials, distribution, options, pull, push, transport
from schemas import reference as references

_Resolved = pull.Resolved  # the methods below shadow the module's name in annotations


def registry_domain(text: str) -> str:
    """``https://index.docker.io/v1/``, ``docker.io``, ``localhost:5000`` → a domain."""
    value = text.strip()
    if "://" in value:
        value = urllib.parse.urlsplit(value).netloc
    value = value.split("/", 1)[0]
    if not value:
        raise errors.InvalidSpec(
            f"invalid registry {text!r}: expected a host such as localhost:5000"
        )
    if value in ("index.docker.io", options.DOCKER_HUB_ENDPOINT, "registry.hub.docker.com"):
        return options.DOCKER_HUB
    return value


class Registries:
    def __init__(self, opts: options.RegistryOptions, cache_dir: str | None = None) -> None:
        self.options = opts
        self._cache_dir = cache_dir
        self._config = credentials.DockerConfig(opts.docker_config_dir)
        self._transports: dict[str, transport.Transport] = {}
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            for t in self._transports.values():
                t.close()
            self._transports.clear()

    def transport(self, domain: str) -> transport.Transport:
        with self._lock:
            found = self._transports.get(domain)
            if found is None:
                key = options.credentials_key(domain)
                found = transport.Transport(
                    options.endpoint_host(domain),
                    self.options,
                    lambda: self._config.lookup(key),
                    self._cache_dir,
                )
                self._transports[domain] = found
            return found

    def repository(self, ref: references.Reference) -> distribution.Repository:
        return distribution.Repository(self.transport(ref.domain), ref.path)

    @staticmethod
    def platform(text: str | None) -> platforms.Platform:
        return platforms.parse_platform(text) if text else platforms.host_platform()

    def resolve(self, reference: str, platform: str | None = None) -> client.RemoteImage:
        ref = _parse(reference)
        found = pull.resolve(self.repository(ref), ref, self.platform(platform))
        return client.RemoteImage(
            reference=str(ref),
            digest=found.digest,
            manifest_digest=found.manifest.digest,
            image_id=found.parsed.config.digest,
            platform=found.platform,
        )

    def pull(
        self,
        reference: str,
        *,
        store: content.LocalContentStore,
        image_store: images.ImageStore,
        platform: str | None = None,
        progress: client.ProgressCallback | None = None,
    ) -> images.ImageRecord:
        ref = _parse(reference)
        return pull.pull(
            self.repository(ref), ref, store=store, image_store=image_store, opts=self.options,
            platform=self.platform(platform), progress=progress,
        )  # fmt: skip

    def fetch(
        self,
        reference: str,
        *,
        store: content.LocalContentStore,
        platform: str | None = None,
        progress: client.ProgressCallback | None = None,
    ) -> _Resolved:
        """Download ``reference``'s blobs verified into ``store``, unpacking nothing."""
        ref = _parse(reference)
        return pull.fetch(
            self.repository(ref), ref, store=store, opts=self.options,
            platform=self.platform(platform), progress=progress,
        )  # fmt: skip

    def push(
        self,
        image: images.ImageRecord,
        destination: str,
        *,
        store: content.LocalContentStore,
        progress: client.ProgressCallback | None = None,
    ) -> str:
        dest = _parse(destination)
        return push.push(
            self.repository(dest), image, dest, store=store, opts=self.options, progress=progress
        )

    def login(self, registry: str, username: str, password: str) -> None:
        """Check the credentials against the registry, then store them (Docker's config)."""
        domain = registry_domain(registry)
        creds = credentials.Credentials(username, password)
        probe = transport.Transport(
            options.endpoint_host(domain), self.options, lambda: creds, self._cache_dir
        )
        try:
            what = f"log in to {domain}"
            response = probe.request("GET", "/v2/", scopes=(), what=what)
            transport.expect(response, (200,), what)
            response.close()
        finally:
            probe.close()
        self._config.store(options.credentials_key(domain), creds)
        with self._lock:
            stale = self._transports.pop(domain, None)
        if stale is not None:
            stale.close()

    def logout(self, registry: str) -> bool:
        domain = registry_domain(registry)
        removed = self._config.erase(options.credentials_key(domain))
        with self._lock:
            stale = self._transports.pop(domain, None)
        if stale is not None:
            stale.close()
        return removed


def _parse(reference: str) -> references.Reference:
    try:
        return references.parse_reference(reference)
    except references.ReferenceError_ as exc:
        raise errors.InvalidSpec(str(exc)) from None
