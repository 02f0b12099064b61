"""Fingerprints of the desired and the observed state, for saved plans.

A saved plan (``diff --out plan.json``) may be applied only to the world it
was made for: ``apply plan.json`` recomputes both fingerprints and refuses
when either differs. They cover exactly what the planner reads, so anything
that could change the plan changes a fingerprint, and nothing else does (a
restart count or a start time does not).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from reconciler.plan import canonical, model


def _digest(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def desired(state: model.DesiredState) -> str:
    return _digest(
        {
            "stack": state.stack,
            "images": {
                n: {
                    "reference": i.reference,
                    "spec": i.spec.model_dump(mode="json", by_alias=True),
                    "source": i.source_digest,
                }
                for n, i in state.images.items()
            },
            "networks": {
                n: canonical.object_record(x.spec, x.metadata_labels)
                for n, x in state.networks.items()
            },
            "volumes": {
                n: canonical.object_record(x.spec, x.metadata_labels)
                for n, x in state.volumes.items()
            },
            "containers": {
                n: canonical.container_record(c, None) for n, c in state.containers.items()
            },
            "suspended": sorted(list(x) for x in state.suspended),
        }
    )


def observed(state: model.ObservedState) -> str:
    return _digest(
        {
            "stack": state.stack,
            "images": {r: i.id for r, i in state.images.items()},
            "sources": {r: i.source_digest for r, i in state.images.items()},
            "networks": {n: [o.spec_hash, o.applied] for n, o in state.networks.items()},
            "volumes": {n: [o.spec_hash, o.applied] for n, o in state.volumes.items()},
            "containers": {
                n: [
                    c.id,
                    c.spec_hash,
                    c.applied,
                    c.image_id,
                    c.status,
                    c.exit_code,
                    c.operator_stopped,
                ]
                for n, c in state.containers.items()
            },
            "foreign": sorted(list(x) for x in state.foreign_names),
        }
    )
