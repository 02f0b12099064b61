"""The overlayfs snapshotter (containerd's model).

A snapshot is a directory tree identified by a *key*. ``prepare`` makes an
*active* (writable) snapshot on top of a *committed* parent; ``commit`` turns
an active snapshot into a committed one under a new name; ``view`` makes a
read-only one. Image layers are committed snapshots named by their **chain
id** (``sha256(parent_chain + " " + diff_id)``, the first layer's chain id is
its diff_id), so a layer shared by two images is unpacked once. A container's
root filesystem is an active snapshot whose parent is its image's top layer.

The snapshotter only returns mount descriptions (``mounts.Mount``), never
mounts: an active snapshot with parents is an overlay (``lowerdir`` = the
parent chain top first, ``upperdir``/``workdir`` its own, ``index=off`` so
an upper directory is never tied to one set of lowers); without a parent it is
a bind mount of its own directory; a view of one layer is a read-only bind
mount, of several an overlay without an upper (read-only by nature).

On disk (``snapshots_dir``, 0700, root only; CVE-2021-41091)::

    <dir_id>/fs      the layer's files, or the container's upper directory
    <dir_id>/work    overlayfs work directory (active snapshots)
    new-<random>/    being created; renamed to <dir_id> inside the transaction
    rm-<dir_id>/     being removed, after its row is gone

``dir_id`` is 8 hex digits: short paths keep the overlay mount data under the
kernel's one-page limit for ~100 layers; ``mounts.mount_all`` shortens longer
chains further. Rows live in the metadata store's ``snapshots`` table; a
crash leaves at most orphan directories, which ``cleanup`` removes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
import secrets
import shutil
import stat
import tempfile
import time
from collections.abc import Iterator
from typing import Protocol

from runtime import errors
from runtime.engine import metadata, mounts

Mount = mounts.Mount
MAX_KEY_LENGTH = 1024
MAX_CHAIN = 500
_UNSAFE_IN_OVERLAY_PATHS = (",", ":", "\\", "\n")


def chain_id(parent: str | None, diff_id: str) -> str:
    """The OCI chain id of a layer: its diff_id alone, or hashed with its parent's chain id."""
    if parent is None:
        return diff_id
    return "sha256:" + hashlib.sha256(f"{parent} {diff_id}".encode()).hexdigest()


def chain_ids(diff_ids: list[str]) -> list[str]:
    """The chain id of each layer, bottom first."""
    result: list[str] = []
    for diff_id in diff_ids:
        result.append(chain_id(result[-1] if result else None, diff_id))
    return result


@dataclasses.dataclass(frozen=True)
class SnapshotInfo:
    key: str
    parent: str | None
    kind: str  # committed | active | view
    created_at: float
    size: int  # bytes on disk, measured at commit (0 for active snapshots)


class Snapshotter(Protocol):
    """What the image store and the container code need of a snapshotter."""

    def prepare(self, key: str, parent: str | None = None) -> list[Mount]: ...
    def view(self, key: str, parent: str | None = None) -> list[Mount]: ...
    def mounts(self, key: str) -> list[Mount]: ...
    def commit(self, name: str, key: str) -> None: ...
    def remove(self, key: str) -> None: ...
    def stat(self, key: str) -> SnapshotInfo: ...
    def exists(self, key: str) -> bool: ...
    def list(self) -> list[SnapshotInfo]: ...


def _check_key(key: str, what: str = "snapshot key") -> None:
    if not isinstance(key, str) or not key or "\x00" in key or len(key) > MAX_KEY_LENGTH:
        raise errors.InvalidSpec(f"invalid {what} {key!r}")


def disk_usage(path: str) -> int:
    """Bytes used below ``path`` (each inode counted once), without following links."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for top, dirs, files in os.walk(path):
        for name in dirs + files:
            st = os.lstat(os.path.join(top, name))
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_blocks * 512
    return total


class OverlaySnapshotter:
    """Snapshots as overlayfs layers; see the module docstring."""

    def __init__(self, root: str, store: metadata.MetadataStore) -> None:
        if any(c in root for c in _UNSAFE_IN_OVERLAY_PATHS):
            raise errors.InvalidSpec(
                f"snapshot directory {root!r} contains a character overlayfs options cannot "
                f"carry ({' '.join(_UNSAFE_IN_OVERLAY_PATHS)!r}): choose another --root"
            )
        self.root = os.path.abspath(root)
        self._store = store
        with errors.map_os_errors(f"create the snapshot directory {root}"):
            os.makedirs(self.root, mode=0o700, exist_ok=True)
            os.chmod(self.root, 0o700)

    # -- paths -------------------------------------------------------------------

    def _dir(self, dir_id: str) -> str:
        return os.path.join(self.root, dir_id)

    def fs_dir(self, key: str) -> str:
        """The snapshot's own directory of files (the upper directory when active)."""
        return os.path.join(self._dir(self._store.get_snapshot(key).dir_id), "fs")

    def _chain_dirs(self, parent: str | None) -> list[str]:
        """The ``fs`` directories of ``parent`` and its ancestors, top first."""
        found: list[str] = []
        key = parent
        while key is not None:
            if len(found) >= MAX_CHAIN:
                raise errors.FailedPrecondition(f"snapshot chain of {parent} is too long or loops")
            row = self._store.get_snapshot(key)
            found.append(os.path.join(self._dir(row.dir_id), "fs"))
            key = row.parent
        return found

    # -- creation ----------------------------------------------------------------

    def prepare(self, key: str, parent: str | None = None) -> list[Mount]:
        """A new writable snapshot on top of the committed ``parent``."""
        return self._create(key, parent, "active")

    def view(self, key: str, parent: str | None = None) -> list[Mount]:
        """A new read-only snapshot of the committed ``parent``."""
        return self._create(key, parent, "view")

    def _create(self, key: str, parent: str | None, kind: str) -> list[Mount]:
        _check_key(key)
        parent_fs = None
        if parent is not None:
            _check_key(parent, "parent snapshot key")
            try:
                prow = self._store.get_snapshot(parent)
            except errors.NotFound:
                raise errors.NotFound(f"parent snapshot {parent} does not exist") from None
            if prow.kind != "committed":
                raise errors.FailedPrecondition(
                    f"parent snapshot {parent} is {prow.kind}: "
                    "only a committed snapshot can be a parent"
                )
            parent_fs = os.path.join(self._dir(prow.dir_id), "fs")
        with errors.map_os_errors(f"create snapshot {key} in {self.root}"):
            tmp = tempfile.mkdtemp(prefix="new-", dir=self.root)
        try:
            with errors.map_os_errors(f"create snapshot {key} in {tmp}"):
                self._populate(tmp, parent_fs, kind)
            with self._store.transaction(f"create snapshot {key}"):
                if self.exists(key):
                    raise errors.AlreadyExists(f"snapshot {key} exists already")
                dir_id = self._new_dir_id()
                row = metadata.SnapshotRow(key, parent, kind, dir_id, time.time())
                self._store.insert_snapshot(row)
                with errors.map_os_errors(f"create snapshot {key}"):
                    os.rename(tmp, self._dir(dir_id))
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return self._mounts(row)

    def _populate(self, tmp: str, parent_fs: str | None, kind: str) -> None:
        fs = os.path.join(tmp, "fs")
        os.mkdir(fs, 0o755)
        os.chmod(fs, 0o755)
        if parent_fs is not None:  # the upper's root would hide the image's root mode/owner
            st = os.stat(parent_fs)
            os.chown(fs, st.st_uid, st.st_gid)
            os.chmod(fs, stat.S_IMODE(st.st_mode))
        if kind == "active":
            os.mkdir(os.path.join(tmp, "work"), 0o700)

    def _new_dir_id(self) -> str:
        taken = {r.dir_id for r in self._store.list_snapshots()}
        for _ in range(100):
            dir_id = secrets.token_hex(4)
            if dir_id not in taken and not os.path.lexists(self._dir(dir_id)):
                return dir_id
        raise errors.Transient(
            f"no free snapshot directory name in {self.root}"
        )  # pragma: no cover

    # -- mounts ------------------------------------------------------------------

    def mounts(self, key: str) -> list[Mount]:
        """The mounts of an active snapshot or a view."""
        row = self._store.get_snapshot(key)
        if row.kind == "committed":
            raise errors.FailedPrecondition(
                f"snapshot {key} is committed: make a view or prepare on top of it to mount it"
            )
        return self._mounts(row)

    def _mounts(self, row: metadata.SnapshotRow) -> list[Mount]:
        own = self._dir(row.dir_id)
        parents = self._chain_dirs(row.parent)
        if row.kind == "view":
            if len(parents) <= 1:
                source = parents[0] if parents else os.path.join(own, "fs")
                return [Mount("bind", source, options=("rbind", "ro"))]
            return [Mount("overlay", "overlay", options=("lowerdir=" + ":".join(parents),))]
        if not parents:
            return [Mount("bind", os.path.join(own, "fs"), options=("rbind", "rw"))]
        return [
            Mount(
                "overlay",
                "overlay",
                options=(
                    "index=off",
                    f"workdir={own}/work",
                    f"upperdir={own}/fs",
                    "lowerdir=" + ":".join(parents),
                ),
            )
        ]

    # -- commit, remove ----------------------------------------------------------

    def commit(self, name: str, key: str) -> None:
        """Turn the active snapshot ``key`` into the committed snapshot ``name``.

        ``AlreadyExists`` when ``name`` exists (another process unpacked the
        same layer first): the caller removes ``key`` and uses ``name``.
        """
        _check_key(name, "snapshot name")
        row = self._store.get_snapshot(key)
        if row.kind != "active":
            raise errors.FailedPrecondition(f"snapshot {key} is {row.kind}, not active")
        with errors.map_os_errors(f"measure snapshot {key}"):
            size = disk_usage(os.path.join(self._dir(row.dir_id), "fs"))
        self._store.commit_snapshot(key, name, size)

    def remove(self, key: str) -> None:
        """Remove a snapshot that has no children and is not mounted as an
        overlay upper directory in this mount namespace."""
        with self._store.transaction(f"remove snapshot {key}"):
            row = self._store.get_snapshot(key)
            children = self._store.snapshot_children(key)
            if children:
                raise errors.FailedPrecondition(
                    f"snapshot {key} has {len(children)} child snapshot(s) "
                    f"({children[0].key}…): remove them first"
                )
            upper = os.path.join(self._dir(row.dir_id), "fs")
            if row.kind == "active" and upper in mounts.overlay_upper_dirs():
                raise errors.FailedPrecondition(
                    f"snapshot {key} is mounted (overlay upperdir {upper}): unmount it first"
                )
            self._store.delete_snapshot(key)
            trash = self._dir(f"rm-{row.dir_id}")
            with (
                errors.map_os_errors(f"remove snapshot {key}"),
                contextlib.suppress(FileNotFoundError),
            ):
                os.rename(self._dir(row.dir_id), trash)
        with errors.map_os_errors(f"remove snapshot {key} directory {trash}"):
            _rmtree(trash)

    def cleanup(self, min_age: float = 3600.0) -> list[str]:
        """Remove directories no snapshot owns (left by a crash); returns their names.

        ``new-*`` directories younger than ``min_age`` seconds may belong to a
        ``prepare`` in flight in another process and are kept.
        """
        removed = []
        with self._store.transaction("clean up snapshot directories"):
            owned = {r.dir_id for r in self._store.list_snapshots()}
            for name in os.listdir(self.root):
                path = self._dir(name)
                if name in owned:
                    continue
                if name.startswith("new-") and time.time() - os.lstat(path).st_mtime < min_age:
                    continue
                trash = name if name.startswith("rm-") else f"rm-{name}"
                if trash != name:
                    os.rename(path, self._dir(trash))
                removed.append(trash)
        for trash in removed:
            with errors.map_os_errors(f"remove {self._dir(trash)}"):
                _rmtree(self._dir(trash))
        return removed

    # -- inspection --------------------------------------------------------------

    def stat(self, key: str) -> SnapshotInfo:
        return _info(self._store.get_snapshot(key))

    def exists(self, key: str) -> bool:
        try:
            self._store.get_snapshot(key)
        except errors.NotFound:
            return False
        return True

    def usage(self, key: str) -> int:
        """Bytes used by the snapshot's own directory now (for active snapshots)."""
        with errors.map_os_errors(f"measure snapshot {key}"):
            return disk_usage(self.fs_dir(key))

    def list(self) -> list[SnapshotInfo]:
        return [_info(r) for r in self._store.list_snapshots()]

    def walk(self) -> Iterator[SnapshotInfo]:
        yield from self.list()


def _info(row: metadata.SnapshotRow) -> SnapshotInfo:
    return SnapshotInfo(row.key, row.parent, row.kind, row.created_at, row.size)


def _rmtree(path: str) -> None:
    """Remove a tree we own (fd-based, never follows symlinks); absent is fine."""
    with contextlib.suppress(FileNotFoundError):
        shutil.rmtree(path)
