"""Build planner inputs from manifest dicts, without the loader (unit tests)."""

from __future__ import annotations

import dataclasses
from typing import Any

from pydantic import TypeAdapter

from reconciler import desired as desired_mod
from reconciler.plan import canonical, model, runtime_name_for
from schemas import manifests

_DOCS: TypeAdapter[Any] = TypeAdapter(manifests.Document)


@dataclasses.dataclass(frozen=True)
class _Loaded:
    manifest: Any
    env_from: dict[str, str] = dataclasses.field(default_factory=dict)
    file_digests: dict[str, str] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class _Stack:
    name: str
    objects: tuple[_Loaded, ...]


def doc(kind: str, name: str, spec: dict[str, Any] | None = None, **meta: Any) -> dict[str, Any]:
    d: dict[str, Any] = {
        "apiVersion": "pyreconcile/v1",
        "kind": kind,
        "metadata": {"name": name, **meta},
    }
    if spec is not None:
        d["spec"] = spec
    return d


def desired_from_docs(
    stack: str, docs: list[dict[str, Any]], files: dict[str, dict[str, str]] | None = None
) -> model.DesiredState:
    """``files``: per object name, file path -> digest (what the loader would read)."""
    files = files or {}
    objects = []
    for d in docs:
        m = _DOCS.validate_python(d)
        objects.append(_Loaded(m, file_digests=files.get(m.metadata.name, {})))
    return desired_mod.desired_state(_Stack(stack, tuple(objects)))  # type: ignore[arg-type]


def observed_as_applied(
    desired: model.DesiredState,
    image_ids: dict[str, str],
    status: dict[str, dict[str, Any]] | None = None,
) -> model.ObservedState:
    """The state a perfect apply of ``desired`` leaves, then ``status`` overrides."""
    status = status or {}
    images = {
        ref: model.ObservedImage(reference=ref, id=iid, digest=iid.replace("sha256:", "sha256:f"))
        for ref, iid in image_ids.items()
    }
    for img in desired.images.values():
        if img.reference in images and img.source_digest:
            images[img.reference] = dataclasses.replace(
                images[img.reference], source_digest=img.source_digest
            )
    nets = {}
    for name, n in desired.networks.items():
        rec = canonical.object_record(n.spec, n.metadata_labels)
        nets[name] = model.ObservedObject(
            "Network",
            name,
            runtime_name_for(desired.stack, name),
            canonical.spec_hash(canonical.object_essence(rec)),
            rec,
        )
    vols = {}
    for name, v in desired.volumes.items():
        rec = canonical.object_record(v.spec, v.metadata_labels)
        vols[name] = model.ObservedObject(
            "Volume",
            name,
            runtime_name_for(desired.stack, name),
            canonical.spec_hash(canonical.object_essence(rec)),
            rec,
        )
    containers = {}
    for name, c in desired.containers.items():
        iid = image_ids[c.image_ref]
        rec = canonical.container_record(c, iid)
        over = status.get(name, {})
        containers[name] = model.ObservedContainer(
            name=name,
            runtime_name=runtime_name_for(desired.stack, name),
            id="c" * 64,
            spec_hash=canonical.spec_hash(canonical.container_essence(rec)),
            applied=rec,
            image_id=iid,
            status=over.get("status", "running"),
            exit_code=over.get("exitCode"),
            operator_stopped=over.get("operatorStopped", False),
            config_drift=over.get("configDrift", False),
            rolled_back=over.get("rolledBack", False),
        )
    return model.ObservedState(desired.stack, images, nets, vols, containers)
