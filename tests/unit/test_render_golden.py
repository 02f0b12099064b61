"""Golden files for the plan as people and machines read it.

One plan with every kind of action, reason and note, rendered as text and as
the JSON document; the JSON must also validate against the checked-in
``schemas/json/diff.schema.json``. ``UPDATE_GOLDEN=1 pytest …`` rewrites the
files after an intended change (review the diff).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import jsonschema
import pytest

from reconciler import render
from reconciler.plan import model, plan
from tests.support.stacks import desired_from_docs, doc, observed_as_applied

GOLDEN = Path(__file__).resolve().parent.parent / "golden"
SCHEMA = Path(__file__).resolve().parents[2] / "schemas" / "json" / "diff.schema.json"


def _plan() -> model.Plan:
    before = desired_from_docs(
        "shop",
        [
            doc("Container", "web", {"image": "busybox", "env": {"TOKEN": "old-secret"}}),
            doc("Container", "api", {"image": "busybox", "restart": "no"}),
            doc("Container", "job", {"image": "busybox"}),
            doc("Container", "old", {"image": "busybox"}),
            doc("Volume", "cache"),
            doc("Volume", "data"),
        ],
    )
    observed = observed_as_applied(
        before,
        {"docker.io/library/busybox:latest": "sha256:" + "1" * 64},
        {"job": {"status": "exited", "exitCode": 3}},
    )
    desired = desired_from_docs(
        "shop",
        [
            doc("Container", "web", {"image": "busybox", "env": {"TOKEN": "new-secret"}}),
            doc("Container", "api", {"image": "busybox", "restart": "always"}),
            doc("Container", "job", {"image": "busybox"}),
            doc("Container", "new", {"image": "busybox", "mounts": ["data:/d"]}),
            doc("Volume", "data", {"driverOpts": {"type": "tmpfs", "device": "tmpfs"}}),
            doc("Network", "backend", {"subnet": "10.89.1.0/24"}),
        ],
    )
    return plan(desired, observed, model.PlanOptions(prune_volumes=False))


def _check(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN") == "1":
        path.write_text(text)
    assert path.exists(), f"{path} is missing: run with UPDATE_GOLDEN=1 to create it"
    assert text == path.read_text(), f"{name} differs from the golden file (UPDATE_GOLDEN=1)"


def test_text_plan_matches_golden() -> None:
    text = render.plan_text(_plan())
    assert "new-secret" not in text and "old-secret" not in text
    _check("plan.txt", text)


def test_json_plan_matches_golden_and_schema() -> None:
    text = render.plan_json(_plan())
    assert "secret" not in text
    document = json.loads(text)
    jsonschema.Draft7Validator(json.loads(SCHEMA.read_text())).validate(document)
    _check("plan.json", text)


def test_in_sync_text() -> None:
    assert render.plan_text(model.Plan("s", ())) == "stack s: in sync, nothing to do\n"


@pytest.mark.parametrize("colour", [True, False])
def test_colour_only_when_asked(colour: bool) -> None:
    text = render.plan_text(_plan(), colour=colour)
    assert ("\x1b[" in text) is colour
