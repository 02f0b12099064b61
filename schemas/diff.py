"""The machine-readable plan that ``pyreconcile diff --output json`` prints.

Versioned: ``schemaVersion`` changes only when a field changes meaning or
goes away; new fields may appear within a version.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from schemas._base import Model

SCHEMA_VERSION = 1


class DiffReason(Model):
    path: str = Field(description="field path (env.GREETING), 'image', 'file PATH', or ''")
    detail: str


class DiffChange(Model):
    resource: str = Field(description="kind/name, e.g. container/web")
    kind: Literal["Image", "Network", "Volume", "Container"]
    name: str
    action: Literal["create", "update", "recreate", "delete", "start", "restart"]
    category: Literal["missing", "spec", "image", "runtime", "orphan", "external"]
    destructive: bool
    reasons: list[DiffReason]


class DiffNote(Model):
    resource: str
    message: str
    blocking: bool


class DiffSummary(Model):
    create: int = 0
    update: int = 0
    recreate: int = 0
    delete: int = 0
    start: int = 0
    restart: int = 0


class DiffDocument(Model):
    schema_version: Literal[1] = 1
    stack: str
    in_sync: bool
    destructive: bool
    summary: DiffSummary
    changes: list[DiffChange]
    notes: list[DiffNote]
