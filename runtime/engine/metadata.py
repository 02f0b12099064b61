"""The engine's metadata: one SQLite file (``<root>/state.db``) shared by the
daemon and any CLI that runs the engine in-process.

Layout (schema version 2)::

    state.db
    ├── schema_version(version)                    one row: the applied migration
    ├── images                                     one row per image config
    │   id PK ("sha256:…" config digest) · manifest_digest · config_json (the
    │   OCI image config, verbatim) · size · created_at · annotations_json
    ├── image_refs                                 normalised names → images
    │   name PK ("docker.io/library/busybox:latest") · image_id → images.id
    │   (ON DELETE CASCADE: deleting an image drops its names)
    ├── snapshots                                  the snapshotter's records
    │   key PK (a chain id when committed) · parent → snapshots.key (NO ACTION:
    │   a parent with children cannot go) · kind committed|active|view ·
    │   dir_id UNIQUE (snapshots/<dir_id>/) · created_at · size
    ├── containers
    │   id PK · name UNIQUE · config_json (opaque to this module) · image_id ·
    │   image_digest · snapshot_key · oci_runtime · created_at ·
    │   operator_stopped 0|1 · restart_count · and the last run as the engine
    │   last observed it (v2), so it outlives the bundle in the run root:
    │   started_at · finished_at (NULL while it runs) · exit_code · oom_killed 0|1
    │   · lost 0|1 (its shim died without recording an exit) · exit_error
    ├── volumes
    │   name PK · driver · options_json · labels_json · annotations_json ·
    │   mountpoint · created_at
    └── networks
        id PK · name UNIQUE · driver · subnet · gateway · ip_range · internal 0|1
        · options_json · labels_json · annotations_json · created_at

``containers.image_id`` and ``snapshot_key`` are deliberately not foreign
keys: the image store refuses to delete an image a container uses, and the
container's active snapshot is made before and removed after its row.
Maps (labels, options, annotations) are stored as JSON objects with sorted
keys and returned as sorted ``(key, value)`` tuples, like ``runtime.client``.

Version history (``_MIGRATIONS``; add a new entry, never edit an applied one):
  1. the tables above.
  2. containers: started_at, finished_at, exit_code, oom_killed, lost, exit_error.

Concurrency: WAL journal, ``busy_timeout`` of 10 s, foreign keys on. Writes
run in short ``BEGIN IMMEDIATE`` transactions, so two writers queue on the
lock instead of failing half-way; reads are single statements in autocommit
mode. One connection per store, shared by threads under a lock.
Errors are mapped here, once: a unique or primary-key violation becomes
``AlreadyExists``, a foreign-key violation ``FailedPrecondition``, a busy or
locked database after the timeout ``Transient``, anything else ``Terminal``.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from runtime import errors
from runtime.engine.rows import (
    TABLES,
    UNSET,
    ContainerRow,
    ImageRef,
    ImageRow,
    NetworkRow,
    Pairs,
    Row,
    SnapshotRow,
    Unset,
    VolumeRow,
    column_of,
    encode_value,
    field_names,
    pairs,
    row_from,
)

__all__ = [
    "BUSY_TIMEOUT",
    "SCHEMA_VERSION",
    "UNSET",
    "ContainerRow",
    "ImageRef",
    "ImageRow",
    "MetadataStore",
    "NetworkRow",
    "Pairs",
    "SnapshotRow",
    "Unset",
    "VolumeRow",
    "map_sqlite_errors",
    "pairs",
]

SCHEMA_VERSION = 2
BUSY_TIMEOUT = 10.0


_MIGRATIONS: tuple[tuple[int, tuple[str, ...]], ...] = (
    (
        1,
        (
            """CREATE TABLE images (
                id TEXT PRIMARY KEY,
                manifest_digest TEXT NOT NULL,
                config_json TEXT NOT NULL,
                size INTEGER NOT NULL,
                created_at REAL NOT NULL,
                annotations_json TEXT NOT NULL DEFAULT '{}')""",
            "CREATE INDEX images_manifest ON images(manifest_digest)",
            """CREATE TABLE image_refs (
                name TEXT PRIMARY KEY,
                image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE)""",
            "CREATE INDEX image_refs_image ON image_refs(image_id)",
            """CREATE TABLE snapshots (
                key TEXT PRIMARY KEY,
                parent TEXT REFERENCES snapshots(key),
                kind TEXT NOT NULL CHECK (kind IN ('committed', 'active', 'view')),
                dir_id TEXT NOT NULL UNIQUE,
                created_at REAL NOT NULL,
                size INTEGER NOT NULL DEFAULT 0)""",
            "CREATE INDEX snapshots_parent ON snapshots(parent)",
            """CREATE TABLE containers (
                id TEXT PRIMARY KEY,
                name TEXT NOT NULL UNIQUE,
                config_json TEXT NOT NULL,
                image_id TEXT NOT NULL,
                image_digest TEXT NOT NULL,
                snapshot_key TEXT,
                oci_runtime TEXT,
                created_at REAL NOT NULL,
                operator_stopped INTEGER NOT NULL DEFAULT 0,
                restart_count INTEGER NOT NULL DEFAULT 0)""",
            "CREATE INDEX containers_image ON containers(image_id)",
            """CREATE TABLE volumes (
                name TEXT PRIMARY KEY,
                driver TEXT NOT NULL,
                options_json TEXT NOT NULL DEFAULT '{}',
                labels_json TEXT NOT NULL DEFAULT '{}',
                annotations_json TEXT NOT NULL DEFAULT '{}',
                mountpoint TEXT NOT NULL,
                created_at REAL NOT NULL)""",
            """CREATE TABLE networks (
                id TEXT PRIMARY KEY,
                name TEXT NOT NULL UNIQUE,
                driver TEXT NOT NULL,
                subnet TEXT,
                gateway TEXT,
                ip_range TEXT,
                internal INTEGER NOT NULL DEFAULT 0,
                options_json TEXT NOT NULL DEFAULT '{}',
                labels_json TEXT NOT NULL DEFAULT '{}',
                annotations_json TEXT NOT NULL DEFAULT '{}',
                created_at REAL NOT NULL)""",
        ),
    ),
    (
        2,
        (
            "ALTER TABLE containers ADD COLUMN started_at REAL",
            "ALTER TABLE containers ADD COLUMN finished_at REAL",
            "ALTER TABLE containers ADD COLUMN exit_code INTEGER",
            "ALTER TABLE containers ADD COLUMN oom_killed INTEGER NOT NULL DEFAULT 0",
            "ALTER TABLE containers ADD COLUMN lost INTEGER NOT NULL DEFAULT 0",
            "ALTER TABLE containers ADD COLUMN exit_error TEXT",
        ),
    ),
)


def _changes(arguments: Mapping[str, Any], key: str) -> dict[str, Any]:
    """An ``update_*`` method's keyword arguments (its ``locals()``) minus self and key."""
    return {k: v for k, v in arguments.items() if k not in ("self", key)}


@contextlib.contextmanager
def map_sqlite_errors(what: str) -> Iterator[None]:
    """Turn ``sqlite3`` errors raised in the block into runtime categories.

    Branches on SQLite's extended result codes, never on message text.
    """
    try:
        yield
    except errors.RuntimeError_:
        raise
    except sqlite3.Error as exc:
        code = getattr(exc, "sqlite_errorcode", None)
        if code in (sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY):
            raise errors.AlreadyExists(f"{what}: it exists already") from exc
        if code == sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY:
            raise errors.FailedPrecondition(
                f"{what}: other records still refer to it, or it refers to a missing one"
            ) from exc
        if code is not None and code & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
            raise errors.Transient(
                f"{what}: the state database stayed locked for {BUSY_TIMEOUT:.0f}s; retry"
            ) from exc
        if code is not None and code & 0xFF == sqlite3.SQLITE_CONSTRAINT:
            raise errors.InvalidSpec(f"{what}: {exc}") from exc
        raise errors.Terminal(f"{what}: state database error: {exc}") from exc


class MetadataStore:
    """CRUD over the state database; safe across threads and processes."""

    def __init__(self, path: str, *, busy_timeout: float = BUSY_TIMEOUT) -> None:
        self.path = path
        self._lock = threading.RLock()
        self._depth = 0
        parent = os.path.dirname(os.path.abspath(path))
        with errors.map_os_errors(f"create the state directory {parent}"):
            os.makedirs(parent, mode=0o711, exist_ok=True)
        with map_sqlite_errors(f"open the state database {path}"):
            self._db = sqlite3.connect(
                path, timeout=busy_timeout, isolation_level=None, check_same_thread=False
            )
            self._db.row_factory = sqlite3.Row
            self._db.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
            self._db.execute("PRAGMA foreign_keys = ON")
            self._db.execute("PRAGMA journal_mode = WAL")
            self._db.execute("PRAGMA synchronous = FULL")
        self._migrate()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- transactions ---------------------------------------------------------

    @contextlib.contextmanager
    def transaction(self, what: str = "update the state database") -> Iterator[None]:
        """A write transaction (``BEGIN IMMEDIATE``); nested calls join the outer one.

        Keep the body short: other processes wait on the lock meanwhile.
        """
        with self._lock, map_sqlite_errors(what):
            if self._depth:
                self._depth += 1
                try:
                    yield
                finally:
                    self._depth -= 1
                return
            self._db.execute("BEGIN IMMEDIATE")
            self._depth = 1
            try:
                yield
                self._depth = 0
                self._db.execute("COMMIT")
            except BaseException as exc:
                self._depth = 0
                if self._db.in_transaction:
                    try:
                        self._db.execute("ROLLBACK")
                    except sqlite3.Error as rollback_exc:
                        exc.add_note(f"rollback failed too: {rollback_exc}")
                raise

    def _migrate(self) -> None:
        with self.transaction(f"migrate the state database {self.path}"):
            self._db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            row = self._db.execute("SELECT version FROM schema_version").fetchone()
            current = row[0] if row else 0
            if current > SCHEMA_VERSION:
                raise errors.FailedPrecondition(
                    f"state database {self.path} has schema v{current}, newer than this "
                    f"pyreconcile understands (v{SCHEMA_VERSION}): upgrade pyreconcile"
                )
            for version, statements in _MIGRATIONS:
                if version <= current:
                    continue
                for statement in statements:
                    self._db.execute(statement)
                current = version
            self._db.execute("DELETE FROM schema_version")
            self._db.execute("INSERT INTO schema_version (version) VALUES (?)", (current,))

    def schema_version(self) -> int:
        row = self._one("SELECT version FROM schema_version", (), "read the schema version")
        return int(row[0]) if row else 0

    # -- generic helpers ------------------------------------------------------

    def _one(self, sql: str, args: Sequence[Any], what: str) -> sqlite3.Row | None:
        with self._lock, map_sqlite_errors(what):
            row: sqlite3.Row | None = self._db.execute(sql, tuple(args)).fetchone()
            return row

    def _all(self, sql: str, args: Sequence[Any], what: str) -> list[sqlite3.Row]:
        with self._lock, map_sqlite_errors(what):
            return list(self._db.execute(sql, tuple(args)).fetchall())

    def _insert(self, row: Any, what: str) -> None:
        fields = field_names(type(row))
        columns = ", ".join(column_of(f) for f in fields)
        marks = ", ".join("?" for _ in fields)
        values = [encode_value(f, getattr(row, f)) for f in fields]
        with self.transaction(what):
            self._db.execute(
                f"INSERT INTO {TABLES[type(row)]} ({columns}) VALUES ({marks})", values
            )

    def _get(self, cls: type[Row], column: str, value: Any, what: str) -> Row:
        row = self._one(f"SELECT * FROM {TABLES[cls]} WHERE {column} = ?", (value,), what)
        if row is None:
            raise errors.NotFound(f"{what}: not found")
        return row_from(cls, row)

    def _list(self, cls: type[Row], order: str, what: str) -> list[Row]:
        rows = self._all(f"SELECT * FROM {TABLES[cls]} ORDER BY {order}", (), what)
        return [row_from(cls, r) for r in rows]

    def _update(
        self, cls: type[Row], key: str, value: Any, changes: Mapping[str, Any], what: str
    ) -> Row:
        """Set the columns of ``changes`` (dataclass field names; UNSET skipped)."""
        items = {f: v for f, v in changes.items() if v is not UNSET}
        with self.transaction(what):
            if items:
                sets = ", ".join(f"{column_of(f)} = ?" for f in items)
                params = [encode_value(f, v) for f, v in items.items()] + [value]
                cur = self._db.execute(f"UPDATE {TABLES[cls]} SET {sets} WHERE {key} = ?", params)
                if cur.rowcount == 0:
                    raise errors.NotFound(f"{what}: not found")
            return self._get(cls, key, value, what)

    def _delete(self, cls: type[Any], key: str, value: Any, what: str) -> None:
        with self.transaction(what):
            cur = self._db.execute(f"DELETE FROM {TABLES[cls]} WHERE {key} = ?", (value,))
            if cur.rowcount == 0:
                raise errors.NotFound(f"{what}: not found")

    # -- images ---------------------------------------------------------------

    def insert_image(self, row: ImageRow) -> None:
        self._insert(row, f"record image {row.id}")

    def get_image(self, image_id: str) -> ImageRow:
        return self._get(ImageRow, "id", image_id, f"image {image_id}")

    def list_images(self) -> list[ImageRow]:
        return self._list(ImageRow, "created_at, id", "list images")

    def find_images(
        self, *, id_prefix: str | None = None, manifest_digest: str | None = None
    ) -> list[ImageRow]:
        """Images whose id starts with ``id_prefix`` or whose manifest is ``manifest_digest``."""
        if id_prefix is not None:
            escaped = id_prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            sql, arg = "SELECT * FROM images WHERE id LIKE ? ESCAPE '\\' ORDER BY id", escaped + "%"
        elif manifest_digest is not None:
            sql, arg = "SELECT * FROM images WHERE manifest_digest = ? ORDER BY id", manifest_digest
        else:
            return self.list_images()
        return [row_from(ImageRow, r) for r in self._all(sql, (arg,), "find images")]

    def update_image(
        self, image_id: str, *, annotations: Mapping[str, str] | Pairs | Unset = UNSET
    ) -> ImageRow:
        return self._update(
            ImageRow, "id", image_id, {"annotations": annotations}, f"image {image_id}"
        )

    def delete_image(self, image_id: str) -> None:
        """Delete an image row; its references go with it (cascade)."""
        self._delete(ImageRow, "id", image_id, f"image {image_id}")

    def set_image_ref(self, name: str, image_id: str) -> None:
        """Point ``name`` at ``image_id``, replacing what it pointed at."""
        with self.transaction(f"tag image {image_id} as {name}"):
            self._db.execute(
                "INSERT INTO image_refs (name, image_id) VALUES (?, ?) "
                "ON CONFLICT(name) DO UPDATE SET image_id = excluded.image_id",
                (name, image_id),
            )

    def get_image_ref(self, name: str) -> ImageRef:
        return self._get(ImageRef, "name", name, f"image reference {name}")

    def list_image_refs(self, image_id: str | None = None) -> list[ImageRef]:
        if image_id is None:
            rows = self._all("SELECT * FROM image_refs ORDER BY name", (), "list image references")
        else:
            rows = self._all(
                "SELECT * FROM image_refs WHERE image_id = ? ORDER BY name",
                (image_id,),
                f"list references of image {image_id}",
            )
        return [row_from(ImageRef, r) for r in rows]

    def delete_image_ref(self, name: str) -> None:
        self._delete(ImageRef, "name", name, f"image reference {name}")

    # -- snapshots ------------------------------------------------------------

    def insert_snapshot(self, row: SnapshotRow) -> None:
        self._insert(row, f"record snapshot {row.key}")

    def get_snapshot(self, key: str) -> SnapshotRow:
        return self._get(SnapshotRow, "key", key, f"snapshot {key}")

    def list_snapshots(self) -> list[SnapshotRow]:
        return self._list(SnapshotRow, "created_at, key", "list snapshots")

    def snapshot_children(self, key: str) -> list[SnapshotRow]:
        rows = self._all(
            "SELECT * FROM snapshots WHERE parent = ? ORDER BY key", (key,), f"children of {key}"
        )
        return [row_from(SnapshotRow, r) for r in rows]

    def commit_snapshot(self, key: str, name: str, size: int) -> SnapshotRow:
        """Turn the active snapshot ``key`` into the committed snapshot ``name``."""
        with self.transaction(f"commit snapshot {key} as {name}"):
            row = self.get_snapshot(key)
            if row.kind != "active":
                raise errors.FailedPrecondition(
                    f"snapshot {key} is {row.kind}, not active: only active snapshots commit"
                )
            if self._one("SELECT 1 FROM snapshots WHERE key = ?", (name,), "check snapshot"):
                raise errors.AlreadyExists(f"commit snapshot {key}: {name} exists already")
            if self.snapshot_children(key):
                raise errors.FailedPrecondition(f"snapshot {key} has children: cannot commit")
            self._db.execute(
                "UPDATE snapshots SET key = ?, kind = 'committed', size = ? WHERE key = ?",
                (name, size, key),
            )
            return self.get_snapshot(name)

    def delete_snapshot(self, key: str) -> None:
        self._delete(SnapshotRow, "key", key, f"snapshot {key}")

    # -- containers -----------------------------------------------------------

    def insert_container(self, row: ContainerRow) -> None:
        self._insert(row, f"record container {row.name}")

    def get_container(self, container_id: str) -> ContainerRow:
        return self._get(ContainerRow, "id", container_id, f"container {container_id}")

    def get_container_by_name(self, name: str) -> ContainerRow:
        return self._get(ContainerRow, "name", name, f"container {name}")

    def list_containers(self, *, image_id: str | None = None) -> list[ContainerRow]:
        if image_id is None:
            return self._list(ContainerRow, "created_at, id", "list containers")
        rows = self._all(
            "SELECT * FROM containers WHERE image_id = ? ORDER BY created_at, id",
            (image_id,),
            f"list containers of image {image_id}",
        )
        return [row_from(ContainerRow, r) for r in rows]

    def update_container(
        self,
        container_id: str,
        *,
        name: str | Unset = UNSET,
        config_json: str | Unset = UNSET,
        image_id: str | Unset = UNSET,
        image_digest: str | Unset = UNSET,
        snapshot_key: str | Unset | None = UNSET,
        oci_runtime: str | Unset | None = UNSET,
        operator_stopped: bool | Unset = UNSET,
        restart_count: int | Unset = UNSET,
        started_at: float | Unset | None = UNSET,
        finished_at: float | Unset | None = UNSET,
        exit_code: int | Unset | None = UNSET,
        oom_killed: bool | Unset = UNSET,
        lost: bool | Unset = UNSET,
        exit_error: str | Unset | None = UNSET,
    ) -> ContainerRow:
        changes = _changes(locals(), "container_id")
        return self._update(ContainerRow, "id", container_id, changes, f"container {container_id}")

    def delete_container(self, container_id: str) -> None:
        self._delete(ContainerRow, "id", container_id, f"container {container_id}")

    # -- volumes --------------------------------------------------------------

    def insert_volume(self, row: VolumeRow) -> None:
        self._insert(row, f"record volume {row.name}")

    def get_volume(self, name: str) -> VolumeRow:
        return self._get(VolumeRow, "name", name, f"volume {name}")

    def list_volumes(self) -> list[VolumeRow]:
        return self._list(VolumeRow, "name", "list volumes")

    def update_volume(
        self,
        name: str,
        *,
        driver: str | Unset = UNSET,
        options: Mapping[str, str] | Pairs | Unset = UNSET,
        labels: Mapping[str, str] | Pairs | Unset = UNSET,
        annotations: Mapping[str, str] | Pairs | Unset = UNSET,
        mountpoint: str | Unset = UNSET,
    ) -> VolumeRow:
        changes = _changes(locals(), "name")
        return self._update(VolumeRow, "name", name, changes, f"volume {name}")

    def delete_volume(self, name: str) -> None:
        self._delete(VolumeRow, "name", name, f"volume {name}")

    # -- networks -------------------------------------------------------------

    def insert_network(self, row: NetworkRow) -> None:
        self._insert(row, f"record network {row.name}")

    def get_network(self, network_id: str) -> NetworkRow:
        return self._get(NetworkRow, "id", network_id, f"network {network_id}")

    def get_network_by_name(self, name: str) -> NetworkRow:
        return self._get(NetworkRow, "name", name, f"network {name}")

    def list_networks(self) -> list[NetworkRow]:
        return self._list(NetworkRow, "name", "list networks")

    def update_network(
        self,
        network_id: str,
        *,
        name: str | Unset = UNSET,
        driver: str | Unset = UNSET,
        subnet: str | Unset | None = UNSET,
        gateway: str | Unset | None = UNSET,
        ip_range: str | Unset | None = UNSET,
        internal: bool | Unset = UNSET,
        options: Mapping[str, str] | Pairs | Unset = UNSET,
        labels: Mapping[str, str] | Pairs | Unset = UNSET,
        annotations: Mapping[str, str] | Pairs | Unset = UNSET,
    ) -> NetworkRow:
        changes = _changes(locals(), "network_id")
        return self._update(NetworkRow, "id", network_id, changes, f"network {network_id}")

    def delete_network(self, network_id: str) -> None:
        self._delete(NetworkRow, "id", network_id, f"network {network_id}")
