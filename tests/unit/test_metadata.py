"""The SQLite metadata store: schema, CRUD, error mapping, and several
processes writing at once."""

from __future__ import annotations

import multiprocessing
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from runtime import errors
from runtime.engine import metadata

IMG = "sha256:" + "a" * 64


@pytest.fixture
def store(tmp_path: Path) -> Iterator[metadata.MetadataStore]:
    s = metadata.MetadataStore(str(tmp_path / "state.db"))
    yield s
    s.close()


def image(image_id: str = IMG) -> metadata.ImageRow:
    return metadata.ImageRow(image_id, "sha256:" + "b" * 64, "{}", 10, 1.0, (("k", "v"),))


def container(cid: str = "c1", name: str = "web", image_id: str = IMG) -> metadata.ContainerRow:
    return metadata.ContainerRow(
        cid, name, '{"x": 1}', image_id, "sha256:" + "b" * 64, cid, None, 2.0
    )


def test_schema_and_pragmas(store: metadata.MetadataStore, tmp_path: Path) -> None:
    assert store.schema_version() == metadata.SCHEMA_VERSION
    db = sqlite3.connect(tmp_path / "state.db")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {
        "schema_version",
        "images",
        "image_refs",
        "snapshots",
        "containers",
        "volumes",
        "networks",
    } <= tables
    db.close()
    again = metadata.MetadataStore(str(tmp_path / "state.db"))  # reopening migrates nothing
    assert again.schema_version() == metadata.SCHEMA_VERSION
    again.close()


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    metadata.MetadataStore(str(tmp_path / "s.db")).close()
    db = sqlite3.connect(tmp_path / "s.db")
    db.execute("UPDATE schema_version SET version = 99")
    db.commit()
    db.close()
    with pytest.raises(errors.FailedPrecondition, match="upgrade"):
        metadata.MetadataStore(str(tmp_path / "s.db"))


def test_images_and_refs(store: metadata.MetadataStore) -> None:
    store.insert_image(image())
    with pytest.raises(errors.AlreadyExists):
        store.insert_image(image())
    assert store.get_image(IMG) == image()
    store.set_image_ref("docker.io/library/busybox:latest", IMG)
    store.set_image_ref("docker.io/library/busybox:1", IMG)
    assert [r.name for r in store.list_image_refs(IMG)] == [
        "docker.io/library/busybox:1",
        "docker.io/library/busybox:latest",
    ]
    with pytest.raises(errors.FailedPrecondition):
        store.set_image_ref("x:y", "sha256:" + "f" * 64)  # no such image
    assert [i.id for i in store.find_images(id_prefix="sha256:aaaa")] == [IMG]
    assert store.find_images(id_prefix="sha256:a%") == []
    assert [i.id for i in store.find_images(manifest_digest="sha256:" + "b" * 64)] == [IMG]
    assert store.update_image(IMG, annotations={"z": "1"}).annotations == (("z", "1"),)
    store.delete_image(IMG)
    assert store.list_image_refs() == []  # cascaded
    with pytest.raises(errors.NotFound):
        store.get_image(IMG)
    with pytest.raises(errors.NotFound):
        store.delete_image_ref("docker.io/library/busybox:1")


def test_snapshots_parent_and_commit(store: metadata.MetadataStore) -> None:
    store.insert_snapshot(metadata.SnapshotRow("base", None, "committed", "d1", 1.0))
    store.insert_snapshot(metadata.SnapshotRow("work", "base", "active", "d2", 2.0))
    with pytest.raises(errors.AlreadyExists):
        store.insert_snapshot(metadata.SnapshotRow("other", None, "active", "d2", 2.0))
    with pytest.raises(errors.FailedPrecondition):
        store.insert_snapshot(metadata.SnapshotRow("orphan", "nope", "active", "d3", 2.0))
    with pytest.raises(errors.InvalidSpec):
        store.insert_snapshot(metadata.SnapshotRow("bad", None, "weird", "d4", 2.0))
    assert [c.key for c in store.snapshot_children("base")] == ["work"]
    with pytest.raises(errors.FailedPrecondition):
        store.delete_snapshot("base")  # has a child
    row = store.commit_snapshot("work", "layer2", 123)
    assert (row.key, row.kind, row.parent, row.dir_id, row.size) == (
        "layer2",
        "committed",
        "base",
        "d2",
        123,
    )
    with pytest.raises(errors.FailedPrecondition):
        store.commit_snapshot("layer2", "again", 0)
    store.delete_snapshot("layer2")
    store.delete_snapshot("base")
    assert store.list_snapshots() == []


def test_containers_volumes_networks(store: metadata.MetadataStore) -> None:
    store.insert_container(container())
    with pytest.raises(errors.AlreadyExists):
        store.insert_container(container("c2", "web"))  # same name
    got = store.update_container("c1", operator_stopped=True, restart_count=3, oci_runtime="crun")
    assert (got.operator_stopped, got.restart_count, got.oci_runtime, got.config_json) == (
        True,
        3,
        "crun",
        '{"x": 1}',
    )
    assert store.update_container("c1", snapshot_key=None).snapshot_key is None
    assert store.get_container_by_name("web").id == "c1"
    assert [c.id for c in store.list_containers(image_id=IMG)] == ["c1"]
    with pytest.raises(errors.NotFound):
        store.update_container("nope", restart_count=1)
    store.delete_container("c1")
    assert store.list_containers() == []

    vol = metadata.VolumeRow("data", "local", (), (("a", "1"),), (), "/v/data/_data", 3.0)
    store.insert_volume(vol)
    assert store.get_volume("data") == vol
    assert store.update_volume("data", labels={"b": "2", "a": "1"}).labels == (
        ("a", "1"),
        ("b", "2"),
    )
    store.delete_volume("data")
    with pytest.raises(errors.NotFound):
        store.get_volume("data")

    net = metadata.NetworkRow(
        "n1", "backend", "bridge", "10.89.1.0/24", "10.89.1.1", None, False, (), (), (), 4.0
    )
    store.insert_network(net)
    with pytest.raises(errors.AlreadyExists):
        store.insert_network(
            metadata.NetworkRow("n2", "backend", "bridge", None, None, None, True, (), (), (), 4.0)
        )
    assert store.get_network_by_name("backend") == net
    assert store.update_network("n1", internal=True, gateway=None).internal is True
    assert [n.name for n in store.list_networks()] == ["backend"]
    store.delete_network("n1")


def test_transaction_rolls_back(store: metadata.MetadataStore) -> None:
    with pytest.raises(errors.AlreadyExists), store.transaction():
        store.insert_image(image())
        store.insert_image(image())
    assert store.list_images() == []


def _writer(path: str, worker: int, count: int) -> None:
    s = metadata.MetadataStore(path)
    for i in range(count):
        with s.transaction():
            s.insert_volume(metadata.VolumeRow(f"v{worker}-{i}", "local", (), (), (), "/x", 0.0))
            n = len(s.list_volumes())
            s.update_volume(f"v{worker}-{i}", labels={"seen": str(n)})
    s.close()


def test_several_processes_write_at_once(tmp_path: Path) -> None:
    path = str(tmp_path / "shared.db")
    metadata.MetadataStore(path).close()
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(path, w, 40)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]
    s = metadata.MetadataStore(path)
    rows = s.list_volumes()
    assert len(rows) == 160
    # each transaction saw a consistent count: all distinct, 1..160
    assert sorted(int(dict(r.labels)["seen"]) for r in rows) == list(range(1, 161))
    s.close()


def test_locked_database_is_transient(tmp_path: Path) -> None:
    path = str(tmp_path / "l.db")
    holder = metadata.MetadataStore(path)
    waiter = metadata.MetadataStore(path, busy_timeout=0.2)
    with holder.transaction():
        holder.insert_volume(metadata.VolumeRow("a", "local", (), (), (), "/x", 0.0))
        with pytest.raises(errors.Transient) as info:
            waiter.insert_volume(metadata.VolumeRow("b", "local", (), (), (), "/x", 0.0))
        assert info.value.retryable
    waiter.insert_volume(metadata.VolumeRow("b", "local", (), (), (), "/x", 0.0))
    holder.close()
    waiter.close()
