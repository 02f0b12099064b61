"""One suite every snapshotter passes (containerd runs its SnapshotterSuite the
same way): the mounts a snapshotter returns are performed with ``mounts.py``
and the world is checked through them, never the snapshotter's internals.

Add an implementation to ``SNAPSHOTTERS`` to put it under contract.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from runtime import errors
from runtime.engine import metadata, mounts, snapshots
from tests.conftest import Roots

pytestmark = pytest.mark.privileged

Factory = Callable[[Path, metadata.MetadataStore], snapshots.Snapshotter]
SNAPSHOTTERS: dict[str, Factory] = {
    "overlay": lambda root, store: snapshots.OverlaySnapshotter(str(root), store),
}


class World:
    """A snapshotter under test plus helpers that mount what it returns."""

    def __init__(self, roots: Roots, factory: Factory) -> None:
        self.base = roots.base
        self.dir = roots.root / "snapshots"
        self.store = metadata.MetadataStore(str(roots.root / "state.db"))
        self.sn = factory(self.dir, self.store)
        self.mounted: list[Path] = []
        self.count = 0

    def mount(self, key: str) -> Path:
        self.count += 1
        target = self.base / f"mnt-{self.count}"
        target.mkdir()
        mounts.mount_all(self.sn.mounts(key), str(target))
        self.mounted.append(target)
        return target

    def unmount_all(self) -> None:
        while self.mounted:
            mounts.unmount(str(self.mounted.pop()))

    def layer(self, name: str, parent: str | None, files: dict[str, str]) -> str:
        """A committed snapshot holding ``files`` (written through a mount)."""
        key = f"prep-{name}"
        self.sn.prepare(key, parent)
        target = self.mount(key)
        for path, text in files.items():
            (target / path).parent.mkdir(parents=True, exist_ok=True)
            if text == "<whiteout>":
                os.unlink(target / path)
            else:
                (target / path).write_text(text)
        mounts.unmount(str(self.mounted.pop()))
        self.sn.commit(name, key)
        return name


@pytest.fixture(params=sorted(SNAPSHOTTERS))
def world(request: pytest.FixtureRequest, roots: Roots) -> Iterator[World]:
    w = World(roots, SNAPSHOTTERS[request.param])
    yield w
    w.unmount_all()
    w.store.close()


def test_prepare_commit_and_layering(world: World) -> None:
    base = world.layer("base", None, {"etc/hostname": "base", "etc/gone": "x", "keep": "k"})
    top = world.layer("top", base, {"etc/hostname": "top", "etc/gone": "<whiteout>", "new": "n"})
    assert world.sn.stat(top) == snapshots.SnapshotInfo(
        "top", "base", "committed", world.sn.stat(top).created_at, world.sn.stat(top).size
    )
    assert world.sn.stat(base).size > 0

    world.sn.prepare("ctr", top)
    rootfs = world.mount("ctr")
    assert (rootfs / "etc/hostname").read_text() == "top"
    assert (rootfs / "keep").read_text() == "k"
    assert (rootfs / "new").read_text() == "n"
    assert not (rootfs / "etc/gone").exists()
    (rootfs / "keep").write_text("changed")
    world.unmount_all()

    view = world.base / "again"
    view.mkdir()
    world.sn.view("look", top)
    mounts.mount_all(world.sn.mounts("look"), str(view))
    try:
        assert (view / "keep").read_text() == "k"  # the container's change stayed in its upper
        with pytest.raises(OSError) as info:
            (view / "x").write_text("no")
        assert info.value.errno == errno.EROFS
    finally:
        mounts.unmount(str(view))
    world.sn.remove("look")
    world.sn.remove("ctr")


def test_single_layer_view_is_read_only(world: World) -> None:
    base = world.layer("base", None, {"f": "1"})
    world.sn.view("v", base)
    target = world.mount("v")
    assert (target / "f").read_text() == "1"
    with pytest.raises(OSError) as info:
        (target / "g").write_text("no")
    assert info.value.errno == errno.EROFS


def test_errors(world: World) -> None:
    base = world.layer("base", None, {"f": "1"})
    world.sn.prepare("active", base)
    with pytest.raises(errors.AlreadyExists):
        world.sn.prepare("active", base)
    with pytest.raises(errors.AlreadyExists):
        world.sn.prepare(base)
    with pytest.raises(errors.NotFound):
        world.sn.prepare("orphan", "no-such-parent")
    with pytest.raises(errors.FailedPrecondition):
        world.sn.prepare("on-active", "active")
    with pytest.raises(errors.FailedPrecondition):
        world.sn.mounts(base)
    with pytest.raises(errors.FailedPrecondition):
        world.sn.commit("again", base)
    with pytest.raises(errors.FailedPrecondition):
        world.sn.remove(base)  # has a child
    world.sn.prepare("second", base)
    world.sn.commit("layer-b", "second")
    world.sn.prepare("third", None)
    with pytest.raises(errors.AlreadyExists):
        world.sn.commit("layer-b", "third")
    assert world.sn.stat("third").kind == "active"  # a failed commit keeps the snapshot
    with pytest.raises(errors.NotFound):
        world.sn.stat("nope")
    with pytest.raises(errors.NotFound):
        world.sn.remove("nope")
    with pytest.raises(errors.InvalidSpec):
        world.sn.prepare("", None)
    assert sorted(i.key for i in world.sn.list()) == ["active", "base", "layer-b", "third"]


def test_remove_everything_leaves_nothing(world: World) -> None:
    base = world.layer("base", None, {"a": "1"})
    mid = world.layer("mid", base, {"b": "2"})
    world.sn.prepare("ctr", mid)
    for key in ("ctr", mid, base):
        world.sn.remove(key)
    assert world.sn.list() == []
    assert os.listdir(world.dir) == []
    assert stat.S_IMODE(os.stat(world.dir).st_mode) == 0o700


def test_long_chains_mount(world: World) -> None:
    """Enough layers that absolute lowerdir paths overflow a page."""
    parent = None
    for i in range(130):
        parent = world.layer(f"l{i}", parent, {f"f{i}": str(i)})
    described = world.sn.prepare("ctr", parent)
    assert len(",".join(described[0].options)) > mounts.page_size()
    target = world.mount("ctr")
    assert (target / "f0").read_text() == "0"
    assert (target / "f129").read_text() == "129"


def test_overlay_specifics(roots: Roots) -> None:
    """Directories are 0700, mounts are descriptions, orphans are cleaned up."""
    store = metadata.MetadataStore(str(roots.root / "state.db"))
    sn = snapshots.OverlaySnapshotter(str(roots.root / "snapshots"), store)
    assert sn.prepare("a") == [mounts.Mount("bind", sn.fs_dir("a"), options=("rbind", "rw"))]
    sn.commit("base", "a")
    got = sn.prepare("b", "base")
    assert got[0].type == "overlay" and "index=off" in got[0].options
    assert mounts.writable_dir(got) == sn.fs_dir("b")
    assert mounts.lower_dirs(got) == [sn.fs_dir("base")]
    target = roots.base / "mounted"
    target.mkdir()
    mounts.mount_all(got, str(target))
    try:
        assert sn.fs_dir("b") in mounts.overlay_upper_dirs()
        with pytest.raises(errors.FailedPrecondition, match="unmount it first"):
            sn.remove("b")
    finally:
        mounts.unmount(str(target))
    sn.remove("b")
    for name in os.listdir(sn.root):
        assert stat.S_IMODE(os.stat(os.path.join(sn.root, name)).st_mode) == 0o700
    os.mkdir(os.path.join(sn.root, "deadbeef"))
    os.mkdir(os.path.join(sn.root, "rm-cafe"))
    os.mkdir(os.path.join(sn.root, "new-inflight"))
    assert sorted(sn.cleanup()) == ["rm-cafe", "rm-deadbeef"]
    assert "new-inflight" in os.listdir(sn.root)
    sn.cleanup(min_age=0)
    assert len(os.listdir(sn.root)) == 1
    with pytest.raises(errors.InvalidSpec):
        snapshots.OverlaySnapshotter(str(roots.root / "bad,dir"), store)
    assert snapshots.chain_ids(["sha256:a", "sha256:b"])[0] == "sha256:a"
    store.close()
