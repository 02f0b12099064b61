"""What a container was before: the applied specs kept for ``rollback``.

Every recreate carries the replaced container's applied record (and its exact
environment, which env files fed) into the new container's
``io.pyreconcile.history`` annotation, newest last, at most ``DEPTH`` deep.
``pyreconcile rollback NAME`` recreates the container from the newest entry,
pinned to the image id it ran then, and pushes the current one in its place,
so a second rollback returns to where the first started. A rolled-back
container is marked: self-heal leaves it alone until the next explicit apply
(an operator override, like ``stop``).
"""

from __future__ import annotations

import json
from typing import Any

from reconciler import labels as L
from reconciler.plan import model
from runtime import client, errors
from schemas import manifests

DEPTH = 5


def entries(info: client.ContainerInfo) -> list[dict[str, Any]]:
    text = info.annotations.get(L.HISTORY)
    if not text:
        return []
    try:
        value = json.loads(text)
    except ValueError:
        return []
    return [e for e in value if isinstance(e, dict)] if isinstance(value, list) else []


def entry_of(info: client.ContainerInfo) -> dict[str, Any] | None:
    text = info.annotations.get(L.APPLIED_SPEC)
    if not text:
        return None
    try:
        record = json.loads(text)
    except ValueError:
        return None
    return {"record": record, "env": dict(info.config.env), "createdAt": info.created_at}


def pushed(info: client.ContainerInfo) -> str:
    """The history a container replacing ``info`` carries: its history plus itself."""
    history = entries(info)
    current = entry_of(info)
    if current is not None:
        history.append(current)
    return encode(history)


def entries_text(text: str | None) -> list[dict[str, Any]]:
    """The entries of an encoded history (as ``pushed`` returns it)."""
    if not text:
        return []
    try:
        value = json.loads(text)
    except ValueError:
        return []
    return [e for e in value if isinstance(e, dict)] if isinstance(value, list) else []


def encode(history: list[dict[str, Any]]) -> str:
    return json.dumps(history[-DEPTH:], sort_keys=True, separators=(",", ":"))


def desired_from(entry: dict[str, Any], name: str) -> tuple[model.DesiredContainer, str]:
    """A desired container (and its pinned image id) from a history entry."""
    record = entry.get("record") or {}
    spec_data = dict(record.get("spec") or {})
    image_id = record.get("imageId")
    if not isinstance(image_id, str):
        raise errors.FailedPrecondition(f"container {name}: its history entry names no image")
    try:
        spec = manifests.ContainerSpec.model_validate(spec_data)
    except ValueError as exc:
        raise errors.FailedPrecondition(
            f"container {name}: its earlier spec no longer validates: {exc}"
        ) from None
    env = {str(k): str(v) for k, v in (entry.get("env") or {}).items()}
    env_from = {k: v for k, v in env.items() if k not in spec.env}
    want = model.DesiredContainer(
        name=name,
        spec=spec,
        metadata_labels=dict(record.get("labels") or {}),
        image_ref=spec.image,
        env_from=env_from,
        file_digests=dict(record.get("files") or {}),
    )
    return want, image_id
