"""Canonical forms, spec hashes and field-by-field differences.

Each managed object carries the canonical record of what was applied (the
``io.pyreconcile.applied-spec`` annotation) and the hash of its *essence*: the
part that cannot change without recreating the object. For a container the
essence is its spec without the fields that change in place, plus the resolved
image id and the digests of the files the spec references (env files, mounted
config files), so "recreate because env.GREETING and file ./app.env changed"
can be said, and a changed file is never missed.

Canonical dicts leave out fields at their default (``exclude_defaults``): a
field added in a later version, at its default, changes no hash and shows no
phantom difference. Values are validated pydantic models dumped to JSON types,
so two spellings of one intent are already equal here.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel

from reconciler.plan import model

CONTAINER_IN_PLACE = (
    "restart",
    "labels",
    "resources",
    "stopGracePeriod",
    "dependsOn",
    "update",
    "networks",
)
"""Container fields applied without a recreate (the runtime updates them in place;
networks by connecting and disconnecting, when the planner finds that possible)."""

SECRET_PREFIXES = ("env.",)
"""Paths whose values are never printed: environment values may be secrets."""


def _dump(value: Any) -> dict[str, Any]:
    dumped: dict[str, Any] = value.model_dump(mode="json", by_alias=True, exclude_defaults=True)
    return dumped


def container_record(desired: model.DesiredContainer, image_id: str | None) -> dict[str, Any]:
    """The full canonical record of a container as it would be applied."""
    spec = _dump(desired.spec)
    spec["image"] = desired.image_ref
    record: dict[str, Any] = {"spec": spec, "imageId": image_id}
    if desired.metadata_labels:
        record["labels"] = dict(sorted(desired.metadata_labels.items()))
    if desired.file_digests:
        record["files"] = dict(sorted(desired.file_digests.items()))
    return record


def container_essence(record: Mapping[str, Any]) -> dict[str, Any]:
    spec = {k: v for k, v in record.get("spec", {}).items() if k not in CONTAINER_IN_PLACE}
    return {"spec": spec, "imageId": record.get("imageId"), "files": record.get("files", {})}


def object_record(spec: Any, labels: Mapping[str, str]) -> dict[str, Any]:
    """The canonical record of a network or a volume."""
    record: dict[str, Any] = {"spec": _dump(spec)}
    if labels:
        record["labels"] = dict(sorted(labels.items()))
    return record


def expanded(record: Mapping[str, Any], spec_model: type[BaseModel]) -> dict[str, Any]:
    """The record with its spec's defaults filled in, for showing differences.

    Records leave defaults out so that hashes stay stable; to say "restart
    changed (no → always)" rather than "restart added", both sides are read
    back through the model. A record the model no longer accepts is shown as it is.
    """
    out = dict(record)
    try:
        spec = spec_model.model_validate(record.get("spec", {}))
    except ValueError:
        return out
    out["spec"] = spec.model_dump(mode="json", by_alias=True)
    if "image" in record.get("spec", {}):
        out["spec"]["image"] = record["spec"]["image"]
    return out


def object_essence(record: Mapping[str, Any]) -> dict[str, Any]:
    return {"spec": record.get("spec", {})}


def spec_hash(essence: Mapping[str, Any]) -> str:
    """sha256 hex of the essence in canonical JSON (sorted keys, no spaces)."""
    text = json.dumps(essence, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": [1]}}`` → ``{"a.b[0]": 1}``.

    Empty maps and lists leave no path: ``labels: {}`` and no labels are the same.
    """
    out: dict[str, Any] = {}
    if isinstance(value, Mapping):
        for key, sub in value.items():
            out.update(flatten(sub, f"{prefix}.{key}" if prefix else str(key)))
    elif isinstance(value, list):
        for index, sub in enumerate(value):
            out.update(flatten(sub, f"{prefix}[{index}]"))
    else:
        out[prefix] = value
    return out


def _show(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else value
    return text if len(text) <= 60 else text[:57] + "..."


def differences(
    before: Mapping[str, Any], after: Mapping[str, Any], *, strip: str = ""
) -> list[model.Reason]:
    """The field paths that differ between two canonical dicts, with what changed.

    Secret-looking paths (env values) say "changed" and never show a value.
    ``strip`` removes a leading path segment (``spec.``) for readability.
    """
    flat_before, flat_after = flatten(before), flatten(after)
    reasons: list[model.Reason] = []
    for path in sorted(set(flat_before) | set(flat_after)):
        old, new = flat_before.get(path, _MISSING), flat_after.get(path, _MISSING)
        old = _MISSING if old is None else old
        new = _MISSING if new is None else new
        if old == new:
            continue
        shown = path[len(strip) :] if strip and path.startswith(strip) else path
        secret = shown.startswith(SECRET_PREFIXES)
        if old is _MISSING:
            detail = "added" if secret else f"added ({_show(new)})"
        elif new is _MISSING:
            detail = "removed"
        elif secret:
            detail = "changed"
        else:
            detail = f"changed ({_show(old)} → {_show(new)})"
        reasons.append(model.Reason(shown, detail))
    return reasons


class _Missing:
    def __repr__(self) -> str:
        return "<missing>"


_MISSING = _Missing()
