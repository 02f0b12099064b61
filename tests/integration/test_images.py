"""The image store on a throw-away root: import a busybox rootfs tarball and
OCI layouts (hand-built and skopeo-made), run a container rootfs from it,
remove everything, and refuse tampered images."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import multiprocessing
import os
import shutil
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from runtime import errors
from runtime.engine import content, images, layout, metadata, mounts, oci_layout, snapshots
from tests.conftest import Roots


class Engine:
    def __init__(self, roots: Roots) -> None:
        self.layout = layout.Layout(root=str(roots.root), run_root=str(roots.run_root))
        self.layout.ensure()
        self.store = metadata.MetadataStore(self.layout.db_path)
        self.content = content.LocalContentStore(self.layout.content_dir)
        self.snapshotter = snapshots.OverlaySnapshotter(self.layout.snapshots_dir, self.store)
        self.images = images.ImageStore(self.layout, self.store, self.content, self.snapshotter)
        self.base = roots.base

    def snapshot_dirs(self) -> list[str]:
        return sorted(os.listdir(self.layout.snapshots_dir))


@pytest.fixture
def engine(roots: Roots) -> Iterator[Engine]:
    e = Engine(roots)
    yield e
    e.store.close()


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


# -- docker import of the busybox rootfs ---------------------------------------------


def test_busybox_import_run_and_remove(engine: Engine, busybox_tar: Path) -> None:
    img = engine.images.import_rootfs_tar(str(busybox_tar), "busybox")
    raw = busybox_tar.read_bytes()
    assert img.references == ("docker.io/library/busybox:latest",)
    assert img.diff_ids == (sha(raw),)
    assert img.size == len(raw)
    assert (
        img.config["os"] == "linux"
        and img.config["architecture"] == oci_layout.host_platform().architecture
    )
    assert img.config["created"] == "2023-11-14T22:13:20Z"  # the tarball's newest mtime
    assert engine.content.has(img.id) and engine.content.has(img.manifest_digest)
    assert engine.content.has(img.diff_ids[0])  # stored uncompressed: digest == diff_id
    info = images.to_image_info(img)
    assert info.id == img.id and info.config.entrypoint is None and info.config.env == ()

    dirs = engine.snapshot_dirs()
    gzipped = engine.base / "busybox.tar.gz"
    gzipped.write_bytes(gzip.compress(raw))
    again = engine.images.import_rootfs_tar(str(gzipped), "busybox:again")
    assert again.id == img.id and again.manifest_digest == img.manifest_digest
    assert engine.snapshot_dirs() == dirs  # nothing unpacked the second time
    for name in ("busybox", "busybox:again", img.id, img.id[7:], img.id[7:19], img.manifest_digest):
        assert engine.images.get(name).id == img.id

    top = engine.images.top_snapshot(img)
    assert top == img.diff_ids[0]
    described = engine.snapshotter.prepare("ctr-1", top)
    rootfs = engine.base / "rootfs"
    rootfs.mkdir()
    mounts.mount_all(described, str(rootfs))
    try:
        assert mounts.is_mounted(str(rootfs))
        assert "app:x:1000:1000" in (rootfs / "etc/passwd").read_text()
        assert os.readlink(rootfs / "bin/sh") == "busybox"
        out = subprocess.run(
            ["chroot", str(rootfs), "/bin/sh", "-c", "echo written > /tmp/hello && cat /tmp/hello"],
            capture_output=True, text=True, check=True, timeout=30,
        )  # fmt: skip
        assert out.stdout == "written\n"
    finally:
        mounts.unmount(str(rootfs))
    assert not mounts.is_mounted(str(rootfs))
    mounts.unmount(str(rootfs))  # a second unmount is fine
    upper = Path(engine.snapshotter.fs_dir("ctr-1"))
    assert (upper / "tmp/hello").read_text() == "written\n"
    assert not (Path(engine.snapshotter.fs_dir(top)) / "tmp/hello").exists()
    engine.snapshotter.remove("ctr-1")

    engine.images.remove("busybox")
    assert engine.images.get("busybox:again").id == img.id  # still named
    engine.images.remove("busybox:again")
    with pytest.raises(errors.NotFound):
        engine.images.get(img.id)
    assert engine.content.list() == []
    assert engine.snapshot_dirs() == []
    assert engine.store.list_snapshots() == []


def _import_in_process(root: str, run_root: str, tarball: str, name: str) -> None:
    paths = layout.Layout(root=root, run_root=run_root)
    store = metadata.MetadataStore(paths.db_path)
    blobs = content.LocalContentStore(paths.content_dir)
    snapshotter = snapshots.OverlaySnapshotter(paths.snapshots_dir, store)
    images.ImageStore(paths, store, blobs, snapshotter).import_rootfs_tar(tarball, name)
    store.close()


def test_concurrent_imports_from_several_processes(engine: Engine, busybox_tar: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    args = (engine.layout.root, engine.layout.run_root, str(busybox_tar))
    procs = [ctx.Process(target=_import_in_process, args=(*args, f"bb:{i}")) for i in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0, 0]
    (img,) = engine.images.list()
    assert img.references == (
        "docker.io/library/bb:0",
        "docker.io/library/bb:1",
        "docker.io/library/bb:2",
    )
    assert [s.key for s in engine.snapshotter.list()] == list(img.diff_ids)
    assert len(engine.snapshot_dirs()) == 1  # the losers of the commit race removed their copy
    assert len(engine.content.list()) == 3


def test_import_image_detects_the_format(engine: Engine, busybox_tar: Path) -> None:
    assert oci_layout.archive_kind(str(busybox_tar)) == "rootfs"
    assert engine.images.import_image(str(busybox_tar), "bb").references == (
        "docker.io/library/bb:latest",
    )
    docker_save = engine.base / "saved.tar"
    with tarfile.open(docker_save, "w") as tar:
        ti = tarfile.TarInfo("manifest.json")
        ti.size = 2
        tar.addfile(ti, io.BytesIO(b"[]"))
    with pytest.raises(errors.InvalidSpec, match="lists no image"):
        engine.images.import_image(str(docker_save))  # a docker save archive, and empty
    garbage = engine.base / "garbage"
    garbage.write_bytes(b"\x28\xb5\x2f\xfd" + b"x" * 100)
    with pytest.raises((errors.InvalidSpec, errors.Unavailable)):
        engine.images.import_image(str(garbage))


def test_remove_respects_containers(engine: Engine, busybox_tar: Path) -> None:
    img = engine.images.import_rootfs_tar(str(busybox_tar), "bb:1")
    engine.images.tag("bb:1", "bb:2")
    assert engine.images.get("bb:2").references == (
        "docker.io/library/bb:1",
        "docker.io/library/bb:2",
    )
    engine.store.insert_container(
        metadata.ContainerRow("c1", "web", "{}", img.id, img.manifest_digest, None, None, 0.0)
    )
    with pytest.raises(errors.FailedPrecondition):
        engine.images.remove(img.id)
    engine.images.remove("bb:1")
    engine.images.remove("bb:2")
    assert engine.images.get(img.id).references == ()  # dangling but kept: a container uses it
    engine.store.delete_container("c1")
    engine.images.remove(img.id)
    assert engine.images.list() == [] and engine.content.list() == []
    with pytest.raises(errors.NotFound):
        engine.images.remove("bb:1")


# -- OCI layouts ---------------------------------------------------------------------


def layer_tar(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in files.items():
            ti = tarfile.TarInfo(name)
            ti.size, ti.mode, ti.mtime = len(data), 0o644, 1_600_000_000
            tar.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


class LayoutBuilder:
    """Writes an OCI image layout by hand, blob by blob."""

    def __init__(self, path: Path) -> None:
        self.path = path
        (path / "blobs/sha256").mkdir(parents=True)
        (path / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')

    def blob(self, data: bytes, media_type: str, **extra: Any) -> dict[str, Any]:
        (self.path / "blobs/sha256" / sha(data)[7:]).write_bytes(data)
        return {"mediaType": media_type, "digest": sha(data), "size": len(data), **extra}

    def image(self, layers: list[bytes], cmd: list[str], arch: str | None = None) -> dict[str, Any]:
        arch = arch or oci_layout.host_platform().architecture
        config = {
            "architecture": arch, "os": "linux", "created": "2024-01-02T03:04:05.123456789Z",
            "config": {"Cmd": cmd, "Env": ["PATH=/bin"], "WorkingDir": "/srv",
                       "Labels": {"a": "b"}, "Volumes": {"/data": {}},
                       "ExposedPorts": {"80/tcp": {}}, "StopSignal": "SIGQUIT"},
            "rootfs": {"type": "layers", "diff_ids": [sha(t) for t in layers]},
        }  # fmt: skip
        manifest = {
            "schemaVersion": 2,
            "mediaType": oci_layout.MANIFEST_OCI,
            "config": self.blob(json.dumps(config).encode(), oci_layout.CONFIG_OCI),
            "layers": [self.blob(gzip.compress(t), oci_layout.LAYER_TAR + "+gzip") for t in layers],
        }
        return self.blob(json.dumps(manifest).encode(), oci_layout.MANIFEST_OCI)

    def index(self, entries: list[dict[str, Any]]) -> None:
        doc = {"schemaVersion": 2, "mediaType": oci_layout.INDEX_OCI, "manifests": entries}
        (self.path / "index.json").write_text(json.dumps(doc))

    def tar(self, out: Path) -> Path:
        with tarfile.open(out, "w") as tar:
            for name in sorted(os.listdir(self.path)):
                tar.add(self.path / name, arcname=name)
        return out


BASE = layer_tar({"etc/os-release": b"NAME=test\n", "etc/gone": b"x", "bin/tool": b"v1"})
TOP = layer_tar({"etc/.wh.gone": b"", "bin/tool": b"v2", "srv/index.html": b"hi"})


def test_hand_built_layout_dir_and_tar(engine: Engine) -> None:
    built = LayoutBuilder(engine.base / "layout")
    manifest = built.image([BASE, TOP], ["httpd", "-f"])
    built.index([{**manifest, "annotations": {oci_layout.REF_NAME: "web:1.0"}}])
    img = engine.images.import_oci_layout(str(built.path))
    assert img.references == ("docker.io/library/web:1.0",)
    assert img.manifest_digest == manifest["digest"]
    assert img.diff_ids == (sha(BASE), sha(TOP))
    cfg = engine.images.image_config(img)
    assert (cfg.cmd, cfg.working_dir, cfg.stop_signal) == (("httpd", "-f"), "/srv", "SIGQUIT")
    assert (cfg.volumes, cfg.exposed_ports, cfg.labels) == (("/data",), ("80/tcp",), (("a", "b"),))
    assert img.created_at == pytest.approx(1704164645.123456)

    engine.snapshotter.view("look", engine.images.top_snapshot(img))
    target = engine.base / "look"
    target.mkdir()
    mounts.mount_all(engine.snapshotter.mounts("look"), str(target))
    try:
        assert (target / "bin/tool").read_bytes() == b"v2"
        assert (target / "etc/os-release").exists() and not (target / "etc/gone").exists()
    finally:
        mounts.unmount(str(target))
    engine.snapshotter.remove("look")

    dirs = engine.snapshot_dirs()
    archive = built.tar(engine.base / "layout.tar")
    again = engine.images.import_oci_layout(
        str(archive), "web:2.0"
    )  # no ref.name match: the only entry
    assert again.id == img.id and engine.snapshot_dirs() == dirs
    assert engine.images.get("web:2.0").id == img.id


def test_skopeo_cross_check(engine: Engine) -> None:
    if shutil.which("skopeo") is None:
        pytest.skip("skopeo is not installed")
    built = LayoutBuilder(engine.base / "layout")
    manifest = built.image([BASE, TOP], ["sh"])
    built.index([{**manifest, "annotations": {oci_layout.REF_NAME: "latest"}}])
    inspect = subprocess.run(
        ["skopeo", "inspect", f"oci:{built.path}:latest"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(inspect.stdout)["Digest"] == manifest["digest"]
    archive = engine.base / "copied.tar"
    subprocess.run(
        ["skopeo", "copy", "--quiet", f"oci:{built.path}:latest", f"oci-archive:{archive}:v9"],
        capture_output=True, check=True, timeout=120,
    )  # fmt: skip
    img = engine.images.import_oci_layout(str(archive), "copied:v9")
    assert img.references == ("docker.io/library/copied:v9",)
    raw = json.loads(
        subprocess.run(["skopeo", "inspect", "--raw", f"oci-archive:{archive}:v9"],
                       capture_output=True, text=True, check=True).stdout
    )  # fmt: skip
    assert img.id == raw["config"]["digest"]
    assert img.diff_ids == (sha(BASE), sha(TOP))


def test_index_picks_the_host_platform(engine: Engine) -> None:
    built = LayoutBuilder(engine.base / "layout")
    host = oci_layout.host_platform()
    other = "arm64" if host.architecture != "arm64" else "amd64"
    theirs = built.image([layer_tar({"which": b"theirs"})], ["x"], arch=other)
    mine = built.image([layer_tar({"which": b"mine"})], ["x"])
    attestation = built.blob(b'{"schemaVersion": 2}', oci_layout.MANIFEST_OCI)
    index_doc = {
        "schemaVersion": 2, "mediaType": oci_layout.INDEX_OCI,
        "manifests": [
            {**attestation, "platform": {"os": "unknown", "architecture": "unknown"},
             "annotations": {"vnd.docker.reference.type": "attestation-manifest"}},
            {**theirs, "platform": {"os": "linux", "architecture": other}},
            {**mine, "platform": {"os": "linux", "architecture": host.architecture}},
        ],
    }  # fmt: skip
    index = built.blob(json.dumps(index_doc).encode(), oci_layout.INDEX_OCI)
    built.index([{**index, "annotations": {oci_layout.REF_NAME: "multi:1"}}])
    img = engine.images.import_oci_layout(str(built.path), "multi:1")
    assert img.manifest_digest == mine["digest"]


def tampered(engine: Engine, how: str) -> LayoutBuilder:
    built = LayoutBuilder(engine.base / f"layout-{how}")
    layers = [BASE, TOP]
    manifest = built.image(layers, ["sh"])
    doc = json.loads((built.path / "blobs/sha256" / manifest["digest"][7:]).read_bytes())
    if how == "layer-bytes":
        victim = built.path / "blobs/sha256" / doc["layers"][1]["digest"][7:]
        victim.write_bytes(gzip.compress(layer_tar({"evil": b"1"})))
    elif how == "layer-flip":
        victim = built.path / "blobs/sha256" / doc["layers"][0]["digest"][7:]
        data = bytearray(victim.read_bytes())
        data[len(data) // 2] ^= 0xFF
        victim.write_bytes(bytes(data))
    elif how == "manifest-size":
        manifest["size"] += 1
    elif how == "diff-id":
        config = json.loads(
            (built.path / "blobs/sha256" / doc["config"]["digest"][7:]).read_bytes()
        )
        config["rootfs"]["diff_ids"][1] = sha(b"something else")
        doc["config"] = built.blob(json.dumps(config).encode(), oci_layout.CONFIG_OCI)
        manifest = built.blob(json.dumps(doc).encode(), oci_layout.MANIFEST_OCI)
    elif how == "ambiguous":
        doc["manifests"] = []
        manifest = built.blob(json.dumps(doc).encode(), oci_layout.MANIFEST_OCI)
    elif how == "digest-path":
        manifest["digest"] = "sha256:../../../etc/passwd"
    elif how == "volume-path":
        config = json.loads(
            (built.path / "blobs/sha256" / doc["config"]["digest"][7:]).read_bytes()
        )
        config["config"]["Volumes"] = {"../../etc": {}}
        doc["config"] = built.blob(json.dumps(config).encode(), oci_layout.CONFIG_OCI)
        manifest = built.blob(json.dumps(doc).encode(), oci_layout.MANIFEST_OCI)
    built.index([manifest])
    return built


EXPECTED = {
    "layer-bytes": "not the expected",
    "layer-flip": "hashes to",
    "manifest-size": "bytes where the descriptor says",
    "diff-id": "unpacks to",
    "ambiguous": "both an index and a manifest",
    "digest-path": "invalid digest",
    "volume-path": "must be absolute",
}


@pytest.mark.parametrize("how", sorted(EXPECTED))
def test_tampered_layouts_are_refused(engine: Engine, how: str) -> None:
    built = tampered(engine, how)
    with pytest.raises(errors.InvalidSpec, match=EXPECTED[how]):
        engine.images.import_oci_layout(str(built.path), "bad:1")
    assert engine.images.list() == []
    assert [s.key for s in engine.snapshotter.list() if s.kind != "committed"] == []
    assert not [d for d in engine.snapshot_dirs() if d.startswith(("new-", "rm-"))]
    assert os.listdir(os.path.join(engine.layout.content_dir, "ingest")) == []
    engine.images.collect()  # verified blobs of the refused image, and its first layer
    assert engine.content.list() == [] and engine.snapshot_dirs() == []


def test_unknown_names_and_ambiguous_layouts(engine: Engine) -> None:
    built = LayoutBuilder(engine.base / "layout")
    one = built.image([BASE], ["a"])
    two = built.image([TOP], ["b"])
    built.index([{**one, "annotations": {oci_layout.REF_NAME: "one"}},
                 {**two, "annotations": {oci_layout.REF_NAME: "two"}}])  # fmt: skip
    with pytest.raises(errors.InvalidSpec, match="holds 2 images"):
        engine.images.import_oci_layout(str(built.path))
    img = engine.images.import_oci_layout(str(built.path), "repo:two")
    assert img.diff_ids == (sha(TOP),)
    with pytest.raises(errors.NotFound):
        engine.images.get("nothing:here")
    with pytest.raises(errors.InvalidSpec):
        engine.images.import_oci_layout(str(engine.base / "layout/oci-layout"))
