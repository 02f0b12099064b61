"""The content store: verified writes, nothing half-written in blobs/, digests
validated before they touch a path."""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import pytest

from runtime import errors
from runtime.engine import content


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@pytest.fixture
def store(tmp_path: Path) -> content.LocalContentStore:
    return content.LocalContentStore(str(tmp_path / "content"))


def blobs(store: content.LocalContentStore) -> list[str]:
    return sorted(os.listdir(os.path.join(store.root, "blobs", "sha256")))


def test_write_read_list_delete(store: content.LocalContentStore) -> None:
    data = b"hello world" * 1000
    digest, size = store.write_stream(io.BytesIO(data), sha(data), len(data))
    assert (digest, size) == (sha(data), len(data))
    assert store.has(digest) and store.size(digest) == len(data)
    with store.open(digest) as f:
        assert f.read() == data
    assert store.path(digest).endswith("/blobs/sha256/" + digest.split(":")[1])
    assert store.list() == [digest]
    assert store.write_bytes(b"abc") == (sha(b"abc"), 3)
    assert store.read_bytes(sha(b"abc"), 10) == b"abc"
    with pytest.raises(errors.InvalidSpec):
        store.read_bytes(digest, 10)
    store.delete(digest)
    assert not store.has(digest)
    with pytest.raises(errors.NotFound):
        store.delete(digest)
    with pytest.raises(errors.NotFound):
        store.open(digest)
    assert os.listdir(os.path.join(store.root, "ingest")) == []


def test_existing_blob_is_not_read_again(store: content.LocalContentStore) -> None:
    store.write_bytes(b"x")

    class Exploding(io.BytesIO):
        def read(self, size: int | None = -1, /) -> bytes:
            raise AssertionError("read an existing blob")

    assert store.write_stream(Exploding(), sha(b"x"), 1) == (sha(b"x"), 1)
    with pytest.raises(errors.InvalidSpec):
        store.write_stream(Exploding(), sha(b"x"), 2)


@pytest.mark.parametrize(
    ("digest", "size"),
    [(sha(b"other"), None), (None, 3), (None, 100), (sha(b"payload"), 6)],
    ids=["wrong-digest", "too-long", "too-short", "right-digest-wrong-size"],
)
def test_wrong_digest_or_size_leaves_nothing(
    store: content.LocalContentStore, digest: str | None, size: int | None
) -> None:
    with pytest.raises(errors.InvalidSpec):
        store.write_stream(io.BytesIO(b"payload"), digest, size)
    assert blobs(store) == []
    assert os.listdir(os.path.join(store.root, "ingest")) == []


def test_max_size_stops_the_copy(store: content.LocalContentStore) -> None:
    with pytest.raises(errors.InvalidSpec, match="larger"):
        store.write_stream(io.BytesIO(b"x" * 100), max_size=10)
    assert blobs(store) == []


@pytest.mark.parametrize(
    "digest",
    [
        "sha256:../../etc/passwd",
        "sha256:" + "A" * 64,
        "sha256:" + "a" * 63,
        "md5:" + "a" * 32,
        "sha256:" + "a" * 64 + "/x",
        "../" + "a" * 64,
        "",
    ],
)
def test_digests_are_validated_before_use(store: content.LocalContentStore, digest: str) -> None:
    for call in (store.has, store.path, store.open, store.delete):
        with pytest.raises(errors.InvalidSpec):
            call(digest)
    with pytest.raises(errors.InvalidSpec):
        store.write_bytes(b"x", digest)


def test_sha512_blobs(store: content.LocalContentStore) -> None:
    digest = "sha512:" + hashlib.sha512(b"big").hexdigest()
    assert store.write_bytes(b"big", digest) == (digest, 3)
    assert digest in store.list()


def test_cleanup_of_abandoned_ingest_files(store: content.LocalContentStore) -> None:
    stale = os.path.join(store.root, "ingest", "ingest-crashed")
    Path(stale).write_bytes(b"partial")
    os.utime(stale, (0, 0))
    assert store.cleanup_ingest(older_than=60) == 1
    assert not os.path.exists(stale)
