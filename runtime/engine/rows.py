"""The metadata store's rows: one frozen value per table, and how their
fields are stored in columns (maps as sorted JSON, booleans as integers).

:class:`runtime.engine.metadata.MetadataStore` reads and writes them; the rest
of the engine knows them as ``metadata.ContainerRow`` and so on (re-exported).
"""

from __future__ import annotations

import dataclasses
import enum
import json
import sqlite3
from collections.abc import Mapping
from typing import Any, TypeVar

Pairs = tuple[tuple[str, str], ...]


class Unset(enum.Enum):
    """Marks an ``update_*`` argument that leaves its column as it is."""

    UNSET = 0


UNSET = Unset.UNSET


@dataclasses.dataclass(frozen=True)
class ImageRow:
    id: str
    manifest_digest: str
    config_json: str
    size: int
    created_at: float
    annotations: Pairs = ()


@dataclasses.dataclass(frozen=True)
class ImageRef:
    name: str
    image_id: str


@dataclasses.dataclass(frozen=True)
class SnapshotRow:
    key: str
    parent: str | None
    kind: str  # committed | active | view
    dir_id: str
    created_at: float
    size: int = 0


@dataclasses.dataclass(frozen=True)
class ContainerRow:
    id: str
    name: str
    config_json: str
    image_id: str
    image_digest: str
    snapshot_key: str | None
    oci_runtime: str | None
    created_at: float
    operator_stopped: bool = False
    restart_count: int = 0
    # the last run, as last observed (v2)
    started_at: float | None = None
    finished_at: float | None = None
    exit_code: int | None = None
    oom_killed: bool = False
    lost: bool = False
    exit_error: str | None = None


@dataclasses.dataclass(frozen=True)
class VolumeRow:
    name: str
    driver: str
    options: Pairs
    labels: Pairs
    annotations: Pairs
    mountpoint: str
    created_at: float


@dataclasses.dataclass(frozen=True)
class NetworkRow:
    id: str
    name: str
    driver: str
    subnet: str | None
    gateway: str | None
    ip_range: str | None
    internal: bool
    options: Pairs
    labels: Pairs
    annotations: Pairs
    created_at: float


Row = TypeVar("Row", ImageRow, ImageRef, SnapshotRow, ContainerRow, VolumeRow, NetworkRow)

# Per row type: the table, and for each dataclass field its column and codec.
MAP_FIELDS = {"options", "labels", "annotations"}
BOOL_FIELDS = {"operator_stopped", "internal", "oom_killed", "lost"}
TABLES: dict[type[Any], str] = {
    ImageRow: "images",
    ImageRef: "image_refs",
    SnapshotRow: "snapshots",
    ContainerRow: "containers",
    VolumeRow: "volumes",
    NetworkRow: "networks",
}


def column_of(field: str) -> str:
    return f"{field}_json" if field in MAP_FIELDS else field


def encode_value(field: str, value: Any) -> Any:
    if field in MAP_FIELDS:
        return json.dumps(dict(value), sort_keys=True, separators=(",", ":"))
    if field in BOOL_FIELDS:
        return int(bool(value))
    return value


def decode_value(field: str, value: Any) -> Any:
    if field in MAP_FIELDS:
        return tuple(sorted(json.loads(value).items()))
    if field in BOOL_FIELDS:
        return bool(value)
    return value


def field_names(cls: type[Any]) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(cls))


READERS: dict[type[Any], tuple[tuple[str, str, bool], ...]] = {}


def readers(cls: type[Any]) -> tuple[tuple[str, str, bool], ...]:
    """(field, column, decode?) for each field of ``cls``: worked out once, not per row."""
    readers = READERS.get(cls)
    if readers is None:
        readers = READERS[cls] = tuple(
            (f, column_of(f), f in MAP_FIELDS or f in BOOL_FIELDS) for f in field_names(cls)
        )
    return readers


def row_from(cls: type[Row], row: sqlite3.Row) -> Row:
    return cls(
        **{
            f: decode_value(f, row[column]) if decoded else row[column]
            for f, column, decoded in readers(cls)
        }
    )


def pairs(items: Mapping[str, str] | Pairs | None) -> Pairs:
    """A mapping (or pairs) as sorted pairs: the form rows carry."""
    if items is None:
        return ()
    if isinstance(items, Mapping):
        return tuple(sorted(items.items()))
    return tuple(sorted(items))
