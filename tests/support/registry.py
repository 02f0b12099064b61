"""Real registries on loopback for the tests: the CNCF distribution registry
(``docker-registry serve``) with a private config and storage, optionally with
htpasswd (bcrypt) and TLS from a throw-away CA, or with token auth from a
token server written here; plus a proxy that breaks blob downloads, and a raw
client that pushes hand-made (also malformed) manifests.

Each registry listens on a free 127.0.0.1 port, is polled until it answers
(no sleeps), and is killed by its pid when the fixture ends. Nothing here
talks to anything but loopback.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import datetime
import gzip
import hashlib
import http.server
import io
import ipaddress
import json
import os
import shutil
import signal
import socket
import subprocess
import tarfile
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import bcrypt
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

REGISTRY_BIN = shutil.which("docker-registry") or "/usr/bin/docker-registry"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"
LAYER_GZIP = LAYER_TAR + "+gzip"
LAYER_ZSTD = LAYER_TAR + "+zstd"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_for(check: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.02)
    raise TimeoutError(f"{what} did not happen within {timeout} s")


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


# -- TLS -------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Tls:
    ca_pem: Path
    cert: Path
    key: Path


def make_tls(directory: Path) -> Tls:
    """A CA and a server certificate for IP 127.0.0.1 and localhost, signed by it."""
    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pyreconcile test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    tls = Tls(directory / "ca.crt", directory / "server.crt", directory / "server.key")
    tls.ca_pem.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    tls.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    tls.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    return tls


def write_htpasswd(path: Path, users: dict[str, str]) -> None:
    lines = [
        f"{u}:{bcrypt.hashpw(p.encode(), bcrypt.gensalt(rounds=5)).decode()}"
        for u, p in users.items()
    ]
    path.write_text("\n".join(lines) + "\n")


# -- a token server ------------------------------------------------------------------------


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


Grants = Callable[[str | None, str, str], set[str]]
"""grants(user or None, scope type, name) -> the actions that user may do there."""


class TokenServer:
    """The distribution token spec's server: ``GET /token?service=&scope=`` (Basic auth
    optional) and the OAuth2 ``POST`` form, answering RS256 JWTs whose ``x5c`` is the
    signing certificate (the registry's ``rootcertbundle``)."""

    def __init__(self, directory: Path, users: dict[str, str], grants: Grants) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.users = users
        self.grants = grants
        self.service = "pyreconcile-test-registry"
        self.issuer = "pyreconcile-test-token-server"
        self.requests: list[dict[str, Any]] = []
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        now = datetime.datetime.now(datetime.UTC)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "token signer")])
        self._cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .sign(self._key, hashes.SHA256())
        )
        self.bundle = directory / "token-signer.pem"
        self.bundle.write_bytes(self._cert.public_bytes(serialization.Encoding.PEM))
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
                server._answer(self, query.get("scope", []), self.headers.get("Authorization"))

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                form = urllib.parse.parse_qs(self.rfile.read(length).decode())
                scopes = " ".join(form.get("scope", [])).split()
                if form.get("grant_type") == ["password"]:
                    raw = f"{form.get('username', [''])[0]}:{form.get('password', [''])[0]}"
                    auth = "Basic " + base64.b64encode(raw.encode()).decode()
                    server._answer(self, scopes, auth)
                else:
                    self.send_response(401)
                    self.send_header("Content-Length", "0")
                    self.end_headers()

        self._httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self._httpd.server_address[1]
        self.realm = f"http://127.0.0.1:{self.port}/token"
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def _user(self, authorization: str | None) -> tuple[bool, str | None]:
        if not authorization:
            return True, None
        if not authorization.startswith("Basic "):
            return False, None
        user, _, password = base64.b64decode(authorization[6:]).decode().partition(":")
        return self.users.get(user) == password, user

    def _answer(
        self, handler: http.server.BaseHTTPRequestHandler, scopes: list[str], auth: str | None
    ) -> None:
        ok, user = self._user(auth)
        self.requests.append({"user": user, "scopes": scopes, "ok": ok})
        if not ok:
            body = b'{"errors":[{"code":"UNAUTHORIZED","message":"bad credentials"}]}'
            handler.send_response(401)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(body)))
            handler.end_headers()
            handler.wfile.write(body)
            return
        access = []
        for scope in scopes:
            kind, _, rest = scope.partition(":")
            name, _, actions = rest.rpartition(":")
            allowed = self.grants(user, kind, name)
            granted = [a for a in actions.split(",") if a in allowed]
            if granted:
                access.append({"type": kind, "name": name, "actions": granted})
        body = json.dumps(
            {"token": self._jwt(user or "", access), "expires_in": 300,
             "issued_at": datetime.datetime.now(datetime.UTC).isoformat()}
        ).encode()  # fmt: skip
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    def _jwt(self, subject: str, access: list[dict[str, Any]]) -> str:
        der = self._cert.public_bytes(serialization.Encoding.DER)
        header = {"typ": "JWT", "alg": "RS256", "x5c": [base64.b64encode(der).decode()]}
        now = int(time.time())
        claims = {
            "iss": self.issuer, "sub": subject, "aud": self.service, "exp": now + 300,
            "nbf": now - 10, "iat": now, "jti": uuid.uuid4().hex, "access": access,
        }  # fmt: skip
        signing = _b64url(json.dumps(header).encode()) + "." + _b64url(json.dumps(claims).encode())
        signature = self._key.sign(signing.encode(), padding.PKCS1v15(), hashes.SHA256())
        return signing + "." + _b64url(signature)


# -- the registry process ---------------------------------------------------------------------


@dataclasses.dataclass
class Registry:
    host: str  # 127.0.0.1:PORT
    storage: Path
    scheme: str
    process: subprocess.Popen[bytes]
    log: Path
    ca: Path | None = None
    users: dict[str, str] = dataclasses.field(default_factory=dict)
    token: TokenServer | None = None

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}"

    def blob_path(self, digest: str) -> Path:
        hexpart = digest.split(":", 1)[1]
        return self.storage / "docker/registry/v2/blobs/sha256" / hexpart[:2] / hexpart / "data"

    def stop(self) -> None:
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        if self.token is not None:
            self.token.close()


def start_registry(
    base: Path,
    *,
    tls: Tls | None = None,
    users: dict[str, str] | None = None,
    token: TokenServer | None = None,
) -> Registry:
    base.mkdir(parents=True, exist_ok=True)
    storage = base / "storage"
    storage.mkdir(exist_ok=True)
    port = free_port()
    config: dict[str, Any] = {
        "version": 0.1,
        "log": {"level": "warn", "accesslog": {"disabled": True}},
        "storage": {"filesystem": {"rootdirectory": str(storage)}, "delete": {"enabled": True}},
        "http": {"addr": f"127.0.0.1:{port}", "secret": uuid.uuid4().hex},
    }
    if tls is not None:
        config["http"]["tls"] = {"certificate": str(tls.cert), "key": str(tls.key)}
    if users and token is None:
        htpasswd = base / "htpasswd"
        write_htpasswd(htpasswd, users)
        config["auth"] = {"htpasswd": {"realm": "pyreconcile-test", "path": str(htpasswd)}}
    if token is not None:
        config["auth"] = {
            "token": {
                "realm": token.realm, "service": token.service, "issuer": token.issuer,
                "rootcertbundle": str(token.bundle),
            }
        }  # fmt: skip
    config_path = base / "config.yml"
    config_path.write_text(json.dumps(config))  # JSON is YAML
    log = base / "registry.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [REGISTRY_BIN, "serve", str(config_path)], stdout=out, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )  # fmt: skip
    scheme = "https" if tls else "http"
    registry = Registry(
        f"127.0.0.1:{port}", storage, scheme, process, log,
        tls.ca_pem if tls else None, dict(users or {}), token,
    )  # fmt: skip

    def up() -> bool:
        if process.poll() is not None:
            raise RuntimeError(f"docker-registry exited: {log.read_text()[-2000:]}")
        try:
            requests.get(f"{registry.url}/v2/", timeout=1, verify=str(tls.ca_pem) if tls else True)
        except requests.RequestException:
            return False
        return True

    try:
        wait_for(up, f"registry on {registry.host}")
    except BaseException:
        registry.stop()
        raise
    return registry


# -- a proxy that breaks blob downloads -----------------------------------------------------------


class BreakingProxy:
    """A plain-HTTP front for ``upstream`` that cuts blob ``GET`` bodies after
    ``cut_after`` bytes, for the first ``times`` blob answers (``None``: always).
    Everything else passes through; ``ranges`` records the Range headers seen."""

    def __init__(self, upstream: str, cut_after: int, times: int | None) -> None:
        self.upstream = upstream
        self.cut_after = cut_after
        self.times = times
        self.cuts = 0
        self.ranges: list[str | None] = []
        self._lock = threading.Lock()
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _relay(self, method: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                upstream = requests.request(
                    method, proxy.upstream + self.path, headers=headers, data=body,
                    stream=True, allow_redirects=False, timeout=30,
                )  # fmt: skip
                is_blob = method == "GET" and "/blobs/sha256:" in self.path
                cut = False
                length = int(upstream.headers.get("Content-Length") or 0)
                if is_blob and upstream.status_code in (200, 206) and length > proxy.cut_after:
                    with proxy._lock:
                        proxy.ranges.append(self.headers.get("Range"))
                        if proxy.times is None or proxy.cuts < proxy.times:
                            proxy.cuts += 1
                            cut = True
                self.send_response(upstream.status_code)
                for key, value in upstream.headers.items():
                    if key.lower() not in ("transfer-encoding", "connection"):
                        self.send_header(key, value)
                if cut:
                    self.send_header("Connection", "close")
                self.end_headers()
                if method == "HEAD":
                    upstream.close()
                    return
                sent = 0
                for chunk in upstream.raw.stream(8192, decode_content=False):
                    if cut and sent + len(chunk) > proxy.cut_after:
                        self.wfile.write(chunk[: proxy.cut_after - sent])
                        self.wfile.flush()
                        self.close_connection = True
                        with contextlib.suppress(OSError):
                            self.connection.shutdown(socket.SHUT_RDWR)
                        upstream.close()
                        return
                    self.wfile.write(chunk)
                    sent += len(chunk)
                upstream.close()

            def do_GET(self) -> None:
                self._relay("GET")

            def do_HEAD(self) -> None:
                self._relay("HEAD")

        self._httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.host = f"127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


# -- building and pushing images by hand ------------------------------------------------


def layer_tar(files: dict[str, bytes], mtime: int = 1_600_000_000) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), mtime, 0o644
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@dataclasses.dataclass
class BuiltImage:
    config: bytes
    manifest: bytes
    blobs: dict[str, bytes]  # digest -> bytes (config and layers)

    @property
    def manifest_digest(self) -> str:
        return sha256(self.manifest)

    @property
    def config_digest(self) -> str:
        return sha256(self.config)


def build_image(
    layers: list[bytes],
    *,
    compression: str = "gzip",
    architecture: str = "amd64",
    variant: str | None = None,
    config: dict[str, Any] | None = None,
    diff_ids: list[str] | None = None,
    sizes: list[int] | None = None,
) -> BuiltImage:
    """An OCI image of uncompressed ``layers`` (tar bytes), compressed as asked;
    ``diff_ids``/``sizes`` override the true values (to make broken images)."""
    blobs: dict[str, bytes] = {}
    descriptors = []
    for index, raw in enumerate(layers):
        if compression == "gzip":
            data, media_type = gzip.compress(raw, mtime=0), LAYER_GZIP
        elif compression == "zstd":
            import zstandard

            data, media_type = zstandard.ZstdCompressor().compress(raw), LAYER_ZSTD
        else:
            data, media_type = raw, LAYER_TAR
        blobs[sha256(data)] = data
        size = sizes[index] if sizes else len(data)
        descriptors.append({"mediaType": media_type, "digest": sha256(data), "size": size})
    doc: dict[str, Any] = {
        "architecture": architecture,
        "os": "linux",
        "created": "2024-01-01T00:00:00Z",
        "config": config or {"Cmd": ["sh"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids or [sha256(raw) for raw in layers]},
    }
    if variant:
        doc["variant"] = variant
    config_bytes = json.dumps(doc, sort_keys=True).encode()
    blobs[sha256(config_bytes)] = config_bytes
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {
                "mediaType": OCI_CONFIG,
                "digest": sha256(config_bytes),
                "size": len(config_bytes),
            },
            "layers": descriptors,
        }
    ).encode()
    return BuiltImage(config_bytes, manifest, blobs)


class RawClient:
    """Pushes blobs and documents with plain HTTP calls (no checks: tests make bad ones)."""

    def __init__(self, registry: Registry, user: str | None = None) -> None:
        self.registry = registry
        self.session = requests.Session()
        if registry.ca:
            self.session.verify = str(registry.ca)
        if user:
            self.session.auth = (user, registry.users[user])

    def put_blob(self, repo: str, data: bytes) -> str:
        digest = sha256(data)
        base = self.registry.url
        started = self.session.post(f"{base}/v2/{repo}/blobs/uploads/", timeout=30)
        assert started.status_code == 202, started.text
        location = urllib.parse.urljoin(base, started.headers["Location"])
        sep = "&" if "?" in location else "?"
        done = self.session.put(
            f"{location}{sep}digest={digest}", data=data, timeout=60,
            headers={"Content-Type": "application/octet-stream"},
        )  # fmt: skip
        assert done.status_code == 201, done.text
        return digest

    def put_manifest(self, repo: str, ref: str, data: bytes, media_type: str) -> str:
        answer = self.session.put(
            f"{self.registry.url}/v2/{repo}/manifests/{ref}", data=data, timeout=30,
            headers={"Content-Type": media_type},
        )  # fmt: skip
        assert answer.status_code == 201, answer.text
        return sha256(data)

    def push(self, repo: str, tag: str, image: BuiltImage) -> str:
        for data in image.blobs.values():
            self.put_blob(repo, data)
        return self.put_manifest(repo, tag, image.manifest, OCI_MANIFEST)


@contextlib.contextmanager
def running(base: Path, **kw: Any) -> Iterator[Registry]:
    registry = start_registry(base, **kw)
    try:
        yield registry
    finally:
        registry.stop()
