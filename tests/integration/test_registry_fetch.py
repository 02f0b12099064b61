# ruff: noqa: F811 - pytest fixtures imported from tests.support are parameter names here
"""A pull of several layers at once (the next one inflated ahead while one is
unpacked) against a real ``docker-registry``: the image is the layers' exact
content, and a bad upper layer fails cleanly; and the download-only path
(``Registries.fetch``, the benchmarks' like-for-like row for skopeo)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from runtime import errors
from runtime.engine import content, registry, snapshots
from tests.support import registry as reg
from tests.support.registry_fixtures import (  # noqa: F401 - fixtures
    EngineFactory,
    engines,
    plain_registry,
    unique_repo,
)


def _layers() -> list[bytes]:
    return [
        reg.layer_tar({f"one/f{i}": os.urandom(3000) for i in range(50)}),
        reg.layer_tar({"two/big": os.urandom(3 << 20), "one/f0": b"replaced"}),
        reg.layer_tar({f"three/f{i}": b"x" * i for i in range(300)}),
    ]


def test_layers_unpacked_together_are_exact(
    engines: EngineFactory, plain_registry: reg.Registry
) -> None:
    layers = _layers()
    image = reg.build_image(layers)
    repo = unique_repo()
    reg.RawClient(plain_registry).push(repo, "1", image)
    rt = engines("together", parallel=3)
    info = rt.pull_image(f"{plain_registry.host}/{repo}:1")
    assert info.id == image.config_digest
    chains = snapshots.chain_ids([reg.sha256(raw) for raw in layers])
    one, two, three = (Path(rt._snapshots.fs_dir(c)) for c in chains)
    assert len(os.listdir(one / "one")) == 50
    assert (two / "one/f0").read_bytes() == b"replaced"
    assert (two / "two/big").stat().st_size == 3 << 20
    assert (three / "three/f299").read_bytes() == b"x" * 299
    assert not (three / "one").exists()  # each layer holds its own files only


def test_a_bad_upper_layer_unpacked_ahead_fails_cleanly(
    engines: EngineFactory, plain_registry: reg.Registry
) -> None:
    layers = _layers()
    true_ids = [reg.sha256(raw) for raw in layers]
    image = reg.build_image(layers, diff_ids=[*true_ids[:2], "sha256:" + "cd" * 32])
    repo = unique_repo()
    reg.RawClient(plain_registry).push(repo, "1", image)
    rt = engines("bad-upper", parallel=3)
    with pytest.raises(errors.InvalidSpec, match="corrupt or tampered"):
        rt.pull_image(f"{plain_registry.host}/{repo}:1")
    assert rt.list_images() == []
    assert rt._content.list() == []
    assert rt._snapshots.list() == []


def test_fetch_downloads_and_verifies_without_unpacking(
    plain_registry: reg.Registry, tmp_path: Path
) -> None:
    image = reg.build_image(_layers())
    repo = unique_repo()
    reg.RawClient(plain_registry).push(repo, "1", image)
    registries = registry.Registries(
        registry.RegistryOptions(docker_config_dir=str(tmp_path / "docker"), backoff=0.01)
    )
    try:
        store = content.LocalContentStore(str(tmp_path / "content"))
        found = registries.fetch(f"{plain_registry.host}/{repo}:1", store=store)
        assert found.manifest.digest == image.manifest_digest
        assert store.list() == sorted([image.manifest_digest, *image.blobs])
        for digest, data in image.blobs.items():
            assert Path(store.path(digest)).read_bytes() == data

        layer = json.loads(image.manifest)["layers"][1]["digest"]
        blob = plain_registry.blob_path(layer)
        broken = bytearray(blob.read_bytes())
        broken[len(broken) // 2] ^= 0xFF
        blob.write_bytes(bytes(broken))
        fresh = content.LocalContentStore(str(tmp_path / "fresh"))
        with pytest.raises(errors.InvalidSpec, match="corrupt or tampered"):
            registries.fetch(f"{plain_registry.host}/{repo}:1", store=fresh)
        assert layer not in fresh.list()
        assert list(fresh.iter_ingest()) == []
    finally:
        registries.close()
