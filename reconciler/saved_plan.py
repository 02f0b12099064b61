"""Saved plans: ``diff --out plan.json``, then ``apply plan.json``.

The file holds the plan as ``diff --output json`` prints it, the inputs it
was made from (manifest paths, stack, prune options) and fingerprints of the
desired and the observed state. Applying it re-reads the same manifests and
re-observes the host; if either fingerprint differs, the plan is refused
("the manifests changed" / "the host changed") and nothing is done, so CI can
review exactly what will be applied.
"""

from __future__ import annotations

import json
import os
from typing import Any

from reconciler import render
from reconciler.plan import fingerprint, model
from runtime import errors

KIND = "pyreconcile-plan"
VERSION = 1
MAX_BYTES = 16 << 20


def document(
    plan: model.Plan,
    desired: model.DesiredState,
    observed: model.ObservedState,
    *,
    files: list[str],
    options: model.PlanOptions,
) -> dict[str, Any]:
    """The saved plan as data (the daemon returns it; the CLI writes it)."""
    if any(f == "-" for f in files):
        raise errors.InvalidSpec(
            "a saved plan needs manifest files it can read again; stdin (-f -) cannot be"
        )
    return {
        "kind": KIND,
        "schemaVersion": VERSION,
        "stack": plan.stack,
        "files": [os.path.abspath(f) for f in files],
        "options": {"prune": options.prune, "pruneVolumes": options.prune_volumes},
        "desiredFingerprint": fingerprint.desired(desired),
        "observedFingerprint": fingerprint.observed(observed),
        "plan": render.plan_document(plan).model_dump(mode="json", by_alias=True),
    }


def write(path: str, document: dict[str, Any]) -> None:
    tmp = f"{path}.tmp"
    with errors.map_os_errors(f"write the plan to {path}"):
        with open(tmp, "w") as f:
            json.dump(document, f, indent=2)
            f.write("\n")
        os.replace(tmp, path)


def save(
    path: str,
    plan: model.Plan,
    desired: model.DesiredState,
    observed: model.ObservedState,
    *,
    files: list[str],
    options: model.PlanOptions,
) -> None:
    write(path, document(plan, desired, observed, files=files, options=options))


def read(path: str) -> dict[str, Any]:
    with errors.map_os_errors(f"read the plan {path}"), open(path, "rb") as f:
        raw = f.read(MAX_BYTES + 1)
    if len(raw) > MAX_BYTES:
        raise errors.InvalidSpec(f"{path} is larger than {MAX_BYTES >> 20} MiB: not a plan")
    try:
        document = json.loads(raw)
    except ValueError as exc:
        raise errors.InvalidSpec(f"{path} is not a plan file: {exc}") from None
    if not isinstance(document, dict) or document.get("kind") != KIND:
        raise errors.InvalidSpec(f"{path} is not a plan made by `pyreconcile diff --out`")
    if document.get("schemaVersion") != VERSION:
        raise errors.InvalidSpec(
            f"{path} has plan format {document.get('schemaVersion')!r}; "
            f"this version reads {VERSION}"
        )
    files = document.get("files")
    if not isinstance(files, list) or not all(isinstance(f, str) for f in files) or not files:
        raise errors.InvalidSpec(f"{path}: the plan names no manifest files")
    return document


def options_of(document: dict[str, Any]) -> model.PlanOptions:
    opts = document.get("options") or {}
    return model.PlanOptions(
        prune=bool(opts.get("prune", True)), prune_volumes=bool(opts.get("pruneVolumes", False))
    )


def check(
    path: str,
    document: dict[str, Any],
    desired: model.DesiredState,
    observed: model.ObservedState,
) -> None:
    """Refuse the saved plan unless it was made for these manifests and this host."""
    if fingerprint.desired(desired) != document.get("desiredFingerprint"):
        raise errors.FailedPrecondition(
            f"refusing {path}: the manifests (or the files and variables they use) changed "
            "since the plan was made; run `pyreconcile diff --out` again and review it"
        )
    if fingerprint.observed(observed) != document.get("observedFingerprint"):
        raise errors.FailedPrecondition(
            f"refusing {path}: the host changed since the plan was made; "
            "run `pyreconcile diff --out` again and review it"
        )
