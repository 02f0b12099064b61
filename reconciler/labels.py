"""The labels and annotations pyreconcile puts on the objects it manages."""

from __future__ import annotations

MANAGED = "io.pyreconcile.managed"
STACK = "io.pyreconcile.stack"
NAME = "io.pyreconcile.name"
KIND = "io.pyreconcile.kind"
SPEC_HASH = "io.pyreconcile.spec-hash"
CONFIG_HASH = "io.pyreconcile.config-hash"  # containers: digest of the runtime config
APPLIED_SPEC = "io.pyreconcile.applied-spec"  # annotation: the canonical applied record (JSON)
HISTORY = "io.pyreconcile.history"  # annotation: earlier applied specs, for rollback
ROLLED_BACK = "io.pyreconcile.rolled-back"  # annotation: set by `rollback`, an override
IMAGE_SOURCE = "io.pyreconcile.import-source-digest"  # image annotation


def managed(stack: str, kind: str, name: str, spec_hash: str | None = None) -> dict[str, str]:
    labels = {MANAGED: "true", STACK: stack, KIND: kind, NAME: name}
    if spec_hash:
        labels[SPEC_HASH] = spec_hash
    return labels


def is_managed_by(labels: dict[str, str], stack: str, kind: str) -> bool:
    return labels.get(MANAGED) == "true" and labels.get(STACK) == stack and labels.get(KIND) == kind
