# ruff: noqa: F811 - pytest fixtures imported from tests.support are parameter names here
"""Interoperability with independent clients: skopeo (both ways, through the
registry, OCI layouts and docker archives) and a private dockerd (``docker
load`` of what we save, ``docker pull`` of what we push, and we load what
``docker save`` writes)."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from runtime import client
from runtime.engine import oci_layout
from tests.support import dockerd
from tests.support import registry as reg
from tests.support.registry_fixtures import (  # noqa: F401 - fixtures
    EngineFactory,
    engines,
    plain_registry,
    unique_repo,
)

SKOPEO = shutil.which("skopeo")
pytestmark = pytest.mark.skipif(SKOPEO is None, reason="needs skopeo (apt-get install skopeo)")


def skopeo(*args: str) -> str:
    assert SKOPEO is not None
    done = subprocess.run(
        [SKOPEO, "--insecure-policy", *args], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, f"skopeo {' '.join(args)}: {done.stderr}"
    return done.stdout


def layout_manifest(path: Path) -> tuple[str, dict[str, object]]:
    """The digest and document of the only image of an OCI layout directory."""
    (entry,) = json.loads((path / "index.json").read_text())["manifests"]
    digest = entry["digest"]
    raw = (path / "blobs/sha256" / digest.split(":")[1]).read_bytes()
    assert "sha256:" + hashlib.sha256(raw).hexdigest() == digest
    return digest, json.loads(raw)


def test_skopeo_push_pulls_here_with_the_same_digest(
    engines: EngineFactory, plain_registry: reg.Registry, busybox_tar: Path, tmp_path: Path
) -> None:
    skopeo("copy", f"tarball:{busybox_tar}", f"oci:{tmp_path / 'layout'}:1")
    ref = f"{plain_registry.host}/{unique_repo()}:1"
    skopeo("copy", "--dest-tls-verify=false", f"oci:{tmp_path / 'layout'}:1", f"docker://{ref}")
    digest = skopeo("inspect", "--tls-verify=false", "--format", "{{.Digest}}", f"docker://{ref}")
    rt = engines()
    pulled = rt.pull_image(ref)
    assert pulled.digest == digest.strip()
    _, manifest = layout_manifest(tmp_path / "layout")
    assert pulled.id == manifest["config"]["digest"]  # type: ignore[index]


def test_push_and_exports_copy_with_skopeo(
    engines: EngineFactory, plain_registry: reg.Registry, busybox_tar: Path, tmp_path: Path
) -> None:
    rt = engines()
    image = rt.import_image(str(busybox_tar), "localhost/interop/bb:1")
    ref = f"{plain_registry.host}/{unique_repo()}:1"
    rt.push_image("localhost/interop/bb:1", ref)
    skopeo("copy", "--src-tls-verify=false", "--preserve-digests", f"docker://{ref}",
           f"oci:{tmp_path / 'copied'}:1")  # fmt: skip
    assert layout_manifest(tmp_path / "copied")[0] == image.digest
    # without --preserve-digests skopeo compresses the uncompressed layer: same image id
    skopeo("copy", "--src-tls-verify=false", f"docker://{ref}", f"oci:{tmp_path / 'gz'}:1")
    assert layout_manifest(tmp_path / "gz")[1]["config"]["digest"] == image.id  # type: ignore[index]

    rt.save_images(["localhost/interop/bb:1"], str(tmp_path / "dir"), format="oci-dir")
    assert skopeo("inspect", "--format", "{{.Digest}}", f"oci:{tmp_path / 'dir'}:1").strip() == (
        image.digest
    )
    rt.save_images(["localhost/interop/bb:1"], str(tmp_path / "oci.tar"), format="oci-archive")
    skopeo("copy", "--preserve-digests", f"oci-archive:{tmp_path / 'oci.tar'}:1",
           f"oci:{tmp_path / 'from-tar'}:1")  # fmt: skip
    assert layout_manifest(tmp_path / "from-tar")[0] == image.digest

    rt.save_images(["localhost/interop/bb:1"], str(tmp_path / "docker.tar"))
    # dir: keeps the config bytes (converting to oci: would re-serialise it)
    skopeo("copy", f"docker-archive:{tmp_path / 'docker.tar'}", f"dir:{tmp_path / 'from-da'}")
    manifest = json.loads((tmp_path / "from-da/manifest.json").read_text())
    assert manifest["config"]["digest"] == image.id
    config = (tmp_path / "from-da" / image.id.split(":")[1]).read_bytes()
    assert "sha256:" + hashlib.sha256(config).hexdigest() == image.id
    layers = [d["digest"] for d in manifest["layers"]]
    assert layers == list(rt._images.get(image.id).diff_ids)  # uncompressed, as saved
    info = json.loads(skopeo("inspect", f"docker-archive:{tmp_path / 'docker.tar'}"))
    assert info["Layers"] == layers
    assert info["Architecture"] == oci_layout.host_platform().architecture

    other = engines("reloaded")
    (loaded,) = other.load_images(str(tmp_path / "docker.tar"))
    assert loaded.id == image.id and loaded.references == ("localhost/interop/bb:1",)
    (from_dir,) = other.load_images(str(tmp_path / "dir"))
    assert from_dir.digest == image.digest


def test_docker_archive_written_by_skopeo_loads_here(
    engines: EngineFactory, busybox_tar: Path, tmp_path: Path
) -> None:
    skopeo("copy", f"tarball:{busybox_tar}", f"oci:{tmp_path / 'layout'}:1")
    archive = tmp_path / "skopeo.tar"
    skopeo("copy", f"oci:{tmp_path / 'layout'}:1", f"docker-archive:{archive}:test/skopeo:1")
    with tarfile.open(archive) as tar:
        assert any(m.issym() for m in tar.getmembers())  # <v1 id>/layer.tar -> ../<diff>.tar
    _, manifest = layout_manifest(tmp_path / "layout")
    rt = engines()
    (loaded,) = rt.load_images(str(archive))
    assert loaded.id == manifest["config"]["digest"]  # type: ignore[index]
    assert loaded.references == ("docker.io/test/skopeo:1",)
    again = rt.import_image(str(archive), "localhost/renamed:1")
    assert again.id == loaded.id and "localhost/renamed:1" in again.references


def test_docker_archives_are_deterministic_and_shared_layers_written_once(
    engines: EngineFactory, busybox_tar: Path, tmp_path: Path
) -> None:
    rt = engines()
    rt.import_image(str(busybox_tar), "localhost/a:1")
    rt.tag_image("localhost/a:1", "localhost/b:2")
    rt.save_images(["localhost/a:1", "localhost/b:2"], str(tmp_path / "one.tar"))
    rt.save_images(["localhost/a:1", "localhost/b:2"], str(tmp_path / "two.tar"))
    assert (tmp_path / "one.tar").read_bytes() == (tmp_path / "two.tar").read_bytes()
    with tarfile.open(tmp_path / "one.tar") as tar:
        names = tar.getnames()
        manifest = json.loads(tar.extractfile("manifest.json").read())  # type: ignore[union-attr]
    assert len([n for n in names if n.endswith(".tar") and "/" not in n]) == 1
    assert manifest[0]["RepoTags"] == ["localhost/a:1", "localhost/b:2"]
    assert oci_layout.archive_kind(str(tmp_path / "one.tar")) == "docker-archive"


# -- dockerd ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def docker() -> Iterator[dockerd.Dockerd]:
    if dockerd.DOCKERD is None or dockerd.DOCKER is None:
        pytest.skip("needs dockerd and docker (apt-get install docker.io)")
    with dockerd.running() as daemon:
        yield daemon


def test_dockerd_runs_what_we_save_and_push_and_we_load_what_it_saves(
    docker: dockerd.Dockerd,
    engines: EngineFactory,
    plain_registry: reg.Registry,
    busybox_tar: Path,
    tmp_path: Path,
) -> None:
    rt = engines()
    image = rt.import_image(str(busybox_tar), "localhost/dockerd/bb:1")
    rt.save_images(["localhost/dockerd/bb:1"], str(tmp_path / "ours.tar"))
    assert "localhost/dockerd/bb:1" in docker.ok("load", "-i", str(tmp_path / "ours.tar"))
    inspected = json.loads(docker.ok("image", "inspect", "localhost/dockerd/bb:1"))
    assert inspected[0]["Id"] == image.id
    out = docker.ok("run", "--rm", "--network", "none", "localhost/dockerd/bb:1", "echo", "hi")
    assert out == "hi\n"

    ref = f"{plain_registry.host}/{unique_repo()}:1"
    rt.push_image("localhost/dockerd/bb:1", ref)
    docker.ok("pull", ref)
    assert json.loads(docker.ok("image", "inspect", ref))[0]["Id"] == image.id
    assert docker.ok("run", "--rm", "--network", "none", ref, "sh", "-c", "echo $((6*7))") == "42\n"

    docker.ok("save", "-o", str(tmp_path / "theirs.tar"), ref)
    other = engines("from-dockerd")
    (loaded,) = other.load_images(str(tmp_path / "theirs.tar"))
    assert loaded.id == image.id and ref in loaded.references
    other.create_container(
        client.ContainerConfig(name="from-docker", image=ref, command=("echo", "loaded"))
    )
    other.start_container("from-docker")
    assert other.wait_container("from-docker", timeout=30).exit_code == 0
    assert "".join(e.log for e in other.container_logs("from-docker")) == "loaded\n"
    other.remove_container("from-docker")
    docker.ok("rmi", "-f", "localhost/dockerd/bb:1", ref)
