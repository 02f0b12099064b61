"""The ``pull`` suite's input: a multi-layer image in a private loopback registry.

The image is generated, not downloaded (this host reaches no public registry),
and is the same bytes on every run (seeded generators, fixed mtimes, gzip
without a timestamp), so its digest is stable and runs compare. Its layers are
shaped like a real application image's:

1. the busybox-static root filesystem (``scripts/busybox_rootfs.py``): one
   binary and ~400 symlinks;
2. ``usr/lib/python3/site-packages``: many small compressible text files in
   nested directories (a language runtime's library), the per-file cost;
3. ``opt/bin``: a few large incompressible files (binaries, models);
4. ``var/lib/data``: a few large compressible files (text, logs, tables);
5. ``app``: an application layer of mixed files, which also replaces and
   deletes files of the lower layers (whiteouts, an opaque directory).

It is written as an OCI layout (gzip layers, OCI media types) and pushed once
with ``skopeo copy --preserve-digests`` to a ``docker-registry`` started on a
free 127.0.0.1 port, with its own storage directory and configuration below the
workspace; the harness stops it by its pid.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import io
import json
import os
import random
import socket
import tarfile
import urllib.error
import urllib.request
from collections.abc import Callable

from bench import images, proc, workspace

__all__ = ["Layer", "PullImage", "Registry", "build", "push", "start_registry"]

MTIME = 1_700_000_000
REPOSITORY = "bench/pull"
TAG = "latest"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"


@dataclasses.dataclass(frozen=True)
class Layer:
    title: str
    path: str  # the compressed blob (gzip), in the OCI layout
    digest: str
    size: int  # compressed bytes
    diff_id: str
    uncompressed: int
    entries: int


@dataclasses.dataclass(frozen=True)
class PullImage:
    layout: str  # OCI layout directory (tag TAG)
    layers: tuple[Layer, ...]
    manifest_digest: str

    @property
    def compressed(self) -> int:
        return sum(x.size for x in self.layers)

    @property
    def uncompressed(self) -> int:
        return sum(x.uncompressed for x in self.layers)

    def describe(self) -> str:
        parts = ", ".join(
            f"{x.title} {x.entries} entries {x.uncompressed / 1e6:.1f} MB → {x.size / 1e6:.1f} MB"
            for x in self.layers
        )
        return (
            f"{len(self.layers)} gzip layers, {self.compressed / 1e6:.1f} MB compressed, "
            f"{self.uncompressed / 1e6:.1f} MB uncompressed ({parts}); manifest "
            f"{self.manifest_digest[:19]}…"
        )


# -- content ---------------------------------------------------------------------


def _words(rng: random.Random, n: int) -> list[str]:
    letters = "abcdefghijklmnopqrstuvwxyz_"
    return ["".join(rng.choices(letters, k=rng.randint(2, 12))) for _ in range(n)]


def _text(rng: random.Random, vocabulary: list[str], size: int) -> bytes:
    """Source-code-like text: compresses about 3 to 4 times with gzip."""
    out: list[str] = []
    length = 0
    while length < size:
        line = "    " * rng.randint(0, 3) + " ".join(rng.choices(vocabulary, k=rng.randint(3, 12)))
        out.append(line)
        length += len(line) + 1
    return ("\n".join(out) + "\n").encode()[:size]


def _random(rng: random.Random, size: int) -> bytes:
    return rng.randbytes(size)


def _entry(name: str, kind: bytes, mode: int, size: int = 0) -> tarfile.TarInfo:
    ti = tarfile.TarInfo(name)
    ti.type, ti.mode, ti.mtime, ti.uid, ti.gid, ti.size = kind, mode, MTIME, 0, 0, size
    ti.uname = ti.gname = "root"
    return ti


class _TarBuilder:
    def __init__(self) -> None:
        self.buf = io.BytesIO()
        self.tar = tarfile.open(  # noqa: SIM115 - closed by finish()
            fileobj=self.buf, mode="w", format=tarfile.PAX_FORMAT
        )
        self.entries = 0
        self._dirs: set[str] = set()

    def directory(self, name: str, mode: int = 0o755) -> None:
        parts = name.split("/")
        for i in range(1, len(parts) + 1):
            d = "/".join(parts[:i])
            if d not in self._dirs:
                self._dirs.add(d)
                self.tar.addfile(_entry(d, tarfile.DIRTYPE, mode))
                self.entries += 1

    def file(self, name: str, data: bytes, mode: int = 0o644) -> None:
        if "/" in name:
            self.directory(name.rsplit("/", 1)[0])
        self.tar.addfile(_entry(name, tarfile.REGTYPE, mode, len(data)), io.BytesIO(data))
        self.entries += 1

    def other(self, info: tarfile.TarInfo) -> None:
        self.tar.addfile(info)
        self.entries += 1

    def finish(self) -> tuple[bytes, int]:
        self.tar.close()
        return self.buf.getvalue(), self.entries


def _busybox_layer(directory: str) -> tuple[bytes, int]:
    path = os.path.join(directory, "busybox-rootfs.tar")
    images._script_function("write_tar")(path)
    with open(path, "rb") as f:
        raw = f.read()
    os.unlink(path)
    with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
        count = len(tar.getmembers())
    return raw, count


def _library_layer(rng: random.Random, scale: float) -> tuple[bytes, int]:
    vocabulary = _words(rng, 3000)
    b = _TarBuilder()
    packages = max(4, int(60 * scale))
    for p in range(packages):
        base = f"usr/lib/python3/site-packages/pkg{p:03d}"
        for m in range(rng.randint(2, 5)):
            sub = f"{base}/mod{m}"
            for f in range(rng.randint(6, 14)):
                b.file(f"{sub}/file{f:02d}.py", _text(rng, vocabulary, rng.randint(1500, 12000)))
    return b.finish()


def _binaries_layer(rng: random.Random, scale: float) -> tuple[bytes, int]:
    b = _TarBuilder()
    for i in range(4):
        b.file(f"opt/bin/tool{i}", _random(rng, int(9_000_000 * scale)), 0o755)
    return b.finish()


def _data_layer(rng: random.Random, scale: float) -> tuple[bytes, int]:
    vocabulary = _words(rng, 800)
    b = _TarBuilder()
    for i in range(6):
        b.file(f"var/lib/data/table{i}.csv", _text(rng, vocabulary, int(5_000_000 * scale)))
    return b.finish()


def _app_layer(rng: random.Random, scale: float) -> tuple[bytes, int]:
    vocabulary = _words(rng, 1500)
    b = _TarBuilder()
    for i in range(max(10, int(250 * scale))):
        if i % 5 == 0:
            b.file(f"app/static/asset{i:03d}.bin", _random(rng, rng.randint(2000, 20000)))
        else:
            b.file(f"app/src/module{i:03d}.py", _text(rng, vocabulary, rng.randint(1000, 8000)))
    b.file("etc/app.conf", _text(rng, vocabulary, 2000))
    b.file("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/app:/bin/sh\n")
    # replace and delete files of lower layers, as an application layer does
    b.file("usr/lib/python3/site-packages/pkg000/mod0/file00.py", _text(rng, vocabulary, 3000))
    b.directory("usr/lib/python3/site-packages/pkg001")
    b.other(_entry("usr/lib/python3/site-packages/pkg002/.wh.mod0", tarfile.REGTYPE, 0o644))
    b.other(_entry("usr/lib/python3/site-packages/pkg001/.wh..wh..opq", tarfile.REGTYPE, 0o644))
    b.other(_entry("opt/bin/.wh.tool3", tarfile.REGTYPE, 0o644))
    link = _entry("app/bin/tool", tarfile.SYMTYPE, 0o777)
    link.linkname = "/opt/bin/tool0"
    b.directory("app/bin")
    b.other(link)
    return b.finish()


def _sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def build(ws: workspace.Workspace, scale: float = 1.0) -> PullImage:
    """Generate the image (``scale`` multiplies the sizes) as an OCI layout."""
    rng = random.Random(20261128)
    layout = ws.path("pull", "layout")
    blobs = os.path.join(layout, "blobs", "sha256")
    os.makedirs(blobs, exist_ok=True)
    makers: tuple[tuple[str, Callable[[], tuple[bytes, int]]], ...] = (
        ("busybox rootfs", lambda: _busybox_layer(ws.path("pull"))),
        ("site-packages", lambda: _library_layer(rng, scale)),
        ("binaries", lambda: _binaries_layer(rng, scale)),
        ("data", lambda: _data_layer(rng, scale)),
        ("app", lambda: _app_layer(rng, scale)),
    )
    layers: list[Layer] = []
    for title, make in makers:
        raw, entries = make()
        data = gzip.compress(raw, compresslevel=6, mtime=0)
        digest = _sha256(data)
        path = os.path.join(blobs, digest.split(":", 1)[1])
        with open(path, "wb") as f:
            f.write(data)
        layers.append(Layer(title, path, digest, len(data), _sha256(raw), len(raw), entries))
    config = json.dumps(
        {
            "architecture": _goarch(),
            "os": "linux",
            "created": "2023-11-14T22:13:20Z",
            "config": {"Cmd": ["/bin/sh"], "WorkingDir": "/app"},
            "rootfs": {"type": "layers", "diff_ids": [x.diff_id for x in layers]},
        },
        sort_keys=True,
    ).encode()
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": _sha256(config), "size": len(config)},
            "layers": [
                {"mediaType": LAYER_GZIP, "digest": x.digest, "size": x.size} for x in layers
            ],
        }
    ).encode()
    for data in (config, manifest):
        with open(os.path.join(blobs, _sha256(data).split(":", 1)[1]), "wb") as f:
            f.write(data)
    index = {
        "schemaVersion": 2,
        "manifests": [
            {
                "mediaType": OCI_MANIFEST,
                "digest": _sha256(manifest),
                "size": len(manifest),
                "annotations": {"org.opencontainers.image.ref.name": TAG},
            }
        ],
    }
    with open(os.path.join(layout, "index.json"), "w") as f:
        json.dump(index, f)
    with open(os.path.join(layout, "oci-layout"), "w") as f:
        json.dump({"imageLayoutVersion": "1.0.0"}, f)
    return PullImage(layout, tuple(layers), _sha256(manifest))


def _goarch() -> str:
    machine = os.uname().machine
    return {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386"}.get(
        machine, machine
    )


# -- the registry ----------------------------------------------------------------


@dataclasses.dataclass
class Registry:
    host: str  # 127.0.0.1:PORT
    storage: str
    daemon: proc.Daemon

    def reference(self) -> str:
        return f"{self.host}/{REPOSITORY}:{TAG}"

    def stop(self) -> list[str]:
        if not self.daemon.alive():
            return [f"docker-registry had exited before the end: {self.daemon.log_tail()}"]
        if not self.daemon.stop(grace=10.0):
            return ["docker-registry did not stop within 10s of SIGTERM and was killed"]
        return []


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def start_registry(ws: workspace.Workspace, binary: str) -> Registry:
    """``docker-registry serve`` on a free loopback port, storage below the workspace."""
    base = ws.path("pull", "registry")
    storage = ws.path("pull", "registry", "storage")
    port = _free_port()
    config = {
        "version": 0.1,
        "log": {"level": "warn", "accesslog": {"disabled": True}},
        "storage": {"filesystem": {"rootdirectory": storage}, "delete": {"enabled": True}},
        "http": {"addr": f"127.0.0.1:{port}", "secret": os.urandom(16).hex()},
    }
    path = os.path.join(base, "config.yml")
    with open(path, "w") as f:
        json.dump(config, f)  # JSON is YAML
    daemon = proc.Daemon([binary, "serve", path], log_path=os.path.join(base, "registry.log"))
    registry = Registry(f"127.0.0.1:{port}", storage, daemon)

    def up() -> bool:
        if not daemon.alive():
            raise proc.CommandFailed(f"docker-registry exited at start: {daemon.log_tail()}")
        return _answers(f"http://{registry.host}/v2/")

    try:
        proc.poll(up, 30.0, f"docker-registry on {registry.host}", interval=0.02)
    except BaseException:
        daemon.stop(grace=5.0)
        raise
    return registry


def push(image: PullImage, registry: Registry, skopeo: str, tmpdir: str) -> None:
    """Push the layout once with skopeo, keeping the digests."""
    proc.run(
        [
            skopeo, "--tmpdir", tmpdir, "copy", "--dest-tls-verify=false", "--preserve-digests",
            f"oci:{image.layout}:{TAG}", f"docker://{registry.reference()}",
        ],
        timeout=600,
    )  # fmt: skip
