"""Hostile and odd ``docker save`` archives and OCI exports: paths that leave
the archive, symlinks out of it, wrong diff_ids, compressed layers, several
images; every refusal leaves no image behind."""

from __future__ import annotations

import gzip
import io
import json
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from runtime import errors, local
from runtime.engine import layout, registry
from tests.conftest import Roots
from tests.support import registry as reg


@pytest.fixture
def rt(roots: Roots) -> Iterator[local.LocalRuntime]:
    options = registry.RegistryOptions(docker_config_dir=str(roots.base / "docker"))
    runtime = local.LocalRuntime(
        layout.Layout(str(roots.root), str(roots.run_root), roots.cgroup_parent), options
    )
    yield runtime
    runtime.close()


def archive(path: Path, files: dict[str, bytes], symlinks: dict[str, str] | None = None) -> Path:
    with tarfile.open(path, "w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name, target in (symlinks or {}).items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            tar.addfile(info)
    return path


def image_files(layers: list[bytes], diff_ids: list[str] | None = None) -> dict[str, bytes]:
    config = json.dumps(
        {"architecture": "amd64", "os": "linux", "config": {"Cmd": ["sh"]},
         "rootfs": {"type": "layers",
                    "diff_ids": diff_ids or [reg.sha256(gzip.decompress(x) if x[:2] == b"\x1f\x8b"
                                                        else x) for x in layers]}}
    ).encode()  # fmt: skip
    files = {"config.json": config}
    for index, layer in enumerate(layers):
        files[f"layer{index}.tar"] = layer
    return files


def manifest(layers: int, tags: list[str], config: str = "config.json") -> bytes:
    return json.dumps(
        [{"Config": config, "RepoTags": tags, "Layers": [f"layer{i}.tar" for i in range(layers)]}]
    ).encode()


def assert_empty(rt: local.LocalRuntime) -> None:
    rt.prune_images()
    assert rt.list_images() == [] and rt._snapshots.list() == []


def test_layers_compressed_or_not_and_several_names(
    rt: local.LocalRuntime, tmp_path: Path, busybox_tar: Path
) -> None:
    layers = [busybox_tar.read_bytes(), gzip.compress(reg.layer_tar({"etc/motd": b"hi\n"}))]
    files = image_files(layers)
    files["manifest.json"] = manifest(2, ["localhost/multi:1", "example.org/team/multi:2"])
    (image,) = rt.load_images(str(archive(tmp_path / "a.tar", files)))
    assert set(image.references) == {"localhost/multi:1", "example.org/team/multi:2"}
    assert image.id == reg.sha256(files["config.json"])
    again = rt.load_images(str(tmp_path / "a.tar"))
    assert again[0].digest == image.digest  # the built manifest is canonical
    saved = tmp_path / "saved.tar"
    rt.save_images(["example.org/team/multi:2"], str(saved))
    with tarfile.open(saved) as tar:
        names = tar.getnames()
    layer_files = [n for n in names if n.endswith(".tar") and "/" not in n]
    assert len(layer_files) == 2  # the gzip layer is written uncompressed, named by its diff_id
    diff_ids = json.loads(files["config.json"])["rootfs"]["diff_ids"]
    assert sorted(layer_files) == sorted(d.split(":")[1] + ".tar" for d in diff_ids)


@pytest.mark.parametrize(
    "case",
    ["config-outside", "layer-outside", "symlink-outside", "absolute-symlink", "missing-layer",
     "wrong-diff-id", "no-images", "not-json"],
)  # fmt: skip
def test_hostile_archives_are_refused(
    rt: local.LocalRuntime, tmp_path: Path, busybox_tar: Path, case: str
) -> None:
    layer = reg.layer_tar({"f": b"x"})
    files = image_files([layer])
    symlinks: dict[str, str] = {}
    files["manifest.json"] = manifest(1, ["localhost/evil:1"])
    if case == "config-outside":
        files["manifest.json"] = manifest(1, ["localhost/evil:1"], config="../../etc/passwd")
    elif case == "layer-outside":
        files["manifest.json"] = json.dumps(
            [{"Config": "config.json", "Layers": ["../" * 8 + str(busybox_tar)]}]
        ).encode()
    elif case == "symlink-outside":
        del files["layer0.tar"]
        symlinks["layer0.tar"] = "../../../../" + str(busybox_tar)
    elif case == "absolute-symlink":
        del files["layer0.tar"]
        symlinks["layer0.tar"] = str(busybox_tar)
    elif case == "missing-layer":
        del files["layer0.tar"]
    elif case == "wrong-diff-id":
        wrong = image_files([layer], ["sha256:" + "0" * 64])
        files = {**wrong, "manifest.json": files["manifest.json"]}
    elif case == "no-images":
        files["manifest.json"] = b"[]"
    elif case == "not-json":
        files["manifest.json"] = b"{nope"
    path = archive(tmp_path / f"{case}.tar", files, symlinks)
    with pytest.raises(errors.InvalidSpec):
        rt.load_images(str(path))
    assert_empty(rt)


def test_load_refuses_a_rootfs_tarball_and_save_needs_images(
    rt: local.LocalRuntime, tmp_path: Path, busybox_tar: Path
) -> None:
    with pytest.raises(errors.InvalidSpec, match="image import"):
        rt.load_images(str(busybox_tar))
    with pytest.raises(errors.NotFound):
        rt.save_images(["localhost/absent:1"], str(tmp_path / "x.tar"))
    assert not (tmp_path / "x.tar").exists()
    image = rt.import_image(str(busybox_tar), "localhost/bb:1")
    rt.save_images([image.id], str(tmp_path / "unnamed.tar"))
    with tarfile.open(tmp_path / "unnamed.tar") as tar:
        doc = json.loads(tar.extractfile("manifest.json").read())  # type: ignore[union-attr]
        assert doc[0]["RepoTags"] == [] and "repositories" not in tar.getnames()
    rt.save_images(["localhost/bb:1"], str(tmp_path / "layout"), format="oci-dir")
    rt.save_images(["localhost/bb:1"], str(tmp_path / "layout"), format="oci-dir")  # again: fine
    index = json.loads((tmp_path / "layout/index.json").read_text())
    (entry,) = index["manifests"]
    assert entry["annotations"] == {
        "io.containerd.image.name": "localhost/bb:1",
        "org.opencontainers.image.ref.name": "1",
    }
    (tmp_path / "occupied").mkdir()
    (tmp_path / "occupied/file").write_text("mine")
    with pytest.raises(errors.AlreadyExists):
        rt.save_images(["localhost/bb:1"], str(tmp_path / "occupied"), format="oci-dir")
