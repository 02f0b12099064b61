"""Helpers of the volume tests: an image with content at its volume paths, stacks,
the CLI, and reading a directory tree with every bit of its metadata.

The image (:func:`write_image`) is an OCI layout: the busybox rootfs, then a
layer with ``/data`` (owned by 1000:1000, mode 0750, a file with a user xattr,
a hardlink, a symlink, a setuid file, a setgid directory) and ``/cache``; its
config declares ``VOLUME /cache``. Changing ``marker`` changes the image (a
new digest) without changing that content.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import stat
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from runtime.engine import oci_layout
from tests.conftest import Roots

PYRECONCILE = [sys.executable, "-m", "reconciler.cli"]
SEED = b"from the image\n"


def cli(
    roots: Roots,
    *args: str,
    check: bool = True,
    timeout: float = 120,
    input: bytes | None = None,
) -> subprocess.CompletedProcess[bytes]:
    """The CLI in a process of its own (stdout and stderr as bytes)."""
    proc = subprocess.run(
        [*PYRECONCILE, *args], env=roots.env(), capture_output=True, timeout=timeout, input=input
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"pyreconcile {' '.join(args)} exited {proc.returncode}\n"
            f"stdout:\n{proc.stdout.decode(errors='replace')}\n"
            f"stderr:\n{proc.stderr.decode(errors='replace')}"
        )
    return proc


def text(proc: subprocess.CompletedProcess[bytes]) -> str:
    return (proc.stdout + proc.stderr).decode(errors="replace")


def wait_until(predicate: Callable[[], Any], timeout: float = 30.0, what: str = "it") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


def ps(roots: Roots) -> dict[str, dict[str, Any]]:
    items = json.loads(cli(roots, "ps", "-o", "json").stdout)
    return {c["object"] or c["name"]: c for c in items}


def volumes(roots: Roots) -> dict[str, dict[str, Any]]:
    return {v["name"]: v for v in json.loads(cli(roots, "volume", "ls", "-o", "json").stdout)}


def exec_in(roots: Roots, container: str, script: str, check: bool = True) -> str:
    proc = cli(roots, "exec", container, "sh", "-c", script, check=check)
    return text(proc)


# -- the image --------------------------------------------------------------------------


def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _entry(
    tar: tarfile.TarFile,
    name: str,
    kind: bytes = tarfile.REGTYPE,
    data: bytes = b"",
    *,
    mode: int = 0o644,
    uid: int = 0,
    gid: int = 0,
    linkname: str = "",
    xattrs: dict[str, str] | None = None,
) -> None:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.uid, info.gid = kind, mode, uid, gid
    info.mtime, info.linkname = 1_600_000_000, linkname
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    info.pax_headers = {f"SCHILY.xattr.{k}": v for k, v in (xattrs or {}).items()}
    tar.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)


def data_layer(marker: str) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        _entry(tar, "data", tarfile.DIRTYPE, mode=0o750, uid=1000, gid=1000)
        _entry(tar, "data/seed.txt", data=SEED, mode=0o640, uid=1000, gid=1000,
               xattrs={"user.origin": "image"})  # fmt: skip
        _entry(tar, "data/link.txt", tarfile.LNKTYPE, linkname="data/seed.txt")
        _entry(tar, "data/sym", tarfile.SYMTYPE, linkname="seed.txt", uid=1000, gid=1000)
        _entry(tar, "data/sub", tarfile.DIRTYPE, mode=0o2775, uid=1000, gid=1000)
        _entry(tar, "data/sub/tool", data=b"#!/bin/sh\n", mode=0o4755)
        _entry(tar, "cache", tarfile.DIRTYPE, mode=0o755)
        _entry(tar, "cache/warm", data=b"warm\n")
        _entry(tar, "srv", tarfile.DIRTYPE, mode=0o755)
        _entry(tar, "srv/marker", data=marker.encode())
    return buf.getvalue()


def write_image(path: Path, busybox_tar: Path, marker: str = "1") -> Path:
    """An OCI layout (directory) of the volume tests' image; returns ``path``."""
    blobs = path / "blobs" / "sha256"
    blobs.mkdir(parents=True, exist_ok=True)
    (path / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')

    def blob(data: bytes, media_type: str) -> dict[str, Any]:
        (blobs / _sha(data)[7:]).write_bytes(data)
        return {"mediaType": media_type, "digest": _sha(data), "size": len(data)}

    layers = [busybox_tar.read_bytes(), data_layer(marker)]
    config = {
        "architecture": oci_layout.host_platform().architecture,
        "os": "linux",
        "config": {
            "Cmd": ["sh", "-c", "exec sleep 1000"],
            "Env": ["PATH=/bin:/usr/bin"],
            "Volumes": {"/cache": {}},
        },
        "rootfs": {"type": "layers", "diff_ids": [_sha(t) for t in layers]},
    }
    manifest = {
        "schemaVersion": 2,
        "mediaType": oci_layout.MANIFEST_OCI,
        "config": blob(json.dumps(config).encode(), oci_layout.CONFIG_OCI),
        "layers": [blob(t, oci_layout.LAYER_TAR) for t in layers],
    }
    entry = blob(json.dumps(manifest).encode(), oci_layout.MANIFEST_OCI)
    entry["annotations"] = {oci_layout.REF_NAME: "latest"}
    index = {"schemaVersion": 2, "mediaType": oci_layout.INDEX_OCI, "manifests": [entry]}
    (path / "index.json").write_text(json.dumps(index))
    return path


# -- stacks -----------------------------------------------------------------------------


def image_doc(path: Path) -> str:
    return (
        "apiVersion: pyreconcile/v1\nkind: Image\nmetadata: {name: app}\n"
        f"spec:\n  import: {{path: {path}}}\n"
    )


def volume_doc(name: str, **driver_opts: str) -> str:
    opts = ""
    if driver_opts:
        opts = "spec:\n  driverOpts:\n" + "".join(
            f"    {k}: {json.dumps(v)}\n" for k, v in driver_opts.items()
        )
    return f"---\napiVersion: pyreconcile/v1\nkind: Volume\nmetadata: {{name: {name}}}\n{opts}"


def container_doc(name: str, command: str, *, mounts: list[str], **spec: Any) -> str:
    """A Container running ``sh -c command`` with ``mounts`` (YAML flow items)."""
    lines = "".join(f"    - {m}\n" for m in mounts)
    extra = "".join(f"  {key}: {json.dumps(value)}\n" for key, value in spec.items())
    return (
        f"---\napiVersion: pyreconcile/v1\nkind: Container\nmetadata: {{name: {name}}}\n"
        f"spec:\n  image: app\n  command: [sh, -c, {json.dumps(command)}]\n"
        f"  stopGracePeriod: 1s\n  mounts:\n{lines}{extra}"
    )


def write_stack(directory: Path, *docs: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "stack.yaml").write_text("".join(docs))
    return directory


# -- trees ------------------------------------------------------------------------------


def tree(root: Path, *, skip: tuple[str, ...] = ()) -> dict[str, tuple[Any, ...]]:
    """Every entry below ``root`` (and ``.``): type, mode, owner, mtime (seconds),
    xattrs, content digest or link target, and which entries share an inode."""
    found: dict[str, tuple[Any, ...]] = {}
    inodes: dict[tuple[int, int], str] = {}

    def add(path: Path) -> None:
        rel = os.path.relpath(path, root)
        if rel.split("/")[0] in skip:
            return
        st = os.lstat(path)
        kind = stat.S_IFMT(st.st_mode)
        what: Any = st.st_rdev
        if stat.S_ISREG(st.st_mode):
            what = hashlib.sha256(path.read_bytes()).hexdigest()
        elif stat.S_ISLNK(st.st_mode):
            what = os.readlink(path)
        xattrs = (
            ()
            if stat.S_ISLNK(st.st_mode)
            else tuple((k, os.getxattr(path, k)) for k in sorted(os.listxattr(path)))
        )
        link = None
        if not stat.S_ISDIR(st.st_mode) and st.st_nlink > 1:
            link = inodes.setdefault((st.st_dev, st.st_ino), rel)
        mtime = None if stat.S_ISLNK(st.st_mode) else int(st.st_mtime)
        found[rel] = (kind, stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, mtime, xattrs, what,
                      link)  # fmt: skip

    add(root)
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(dirnames + filenames):
            add(Path(dirpath) / name)
    return found
