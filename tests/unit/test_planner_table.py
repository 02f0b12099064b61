"""The planner, one YAML case per behaviour (tests/plan_cases/*.yaml).

A case gives what was applied before (``applied``, with the image ids of that
time), the image store now (``images``), runtime status overrides, networks'
drift on the host (``networkProblems``), volumes' (``volumeProblems``),
anonymous volumes and their owners (``anonymousVolumes``), the desired
manifests, and the expected actions in order as
``"<op> <resource> <category>[: reason; reason…]"`` (reasons match as
substrings), plus expected notes as substrings.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from reconciler.plan import model, plan
from schemas.reference import normalize_reference
from tests.support.stacks import desired_from_docs, observed_as_applied

CASES = sorted((Path(__file__).parent.parent / "plan_cases").glob("*.yaml"))


def _load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = YAML(typ="safe").load(path.read_text())
    return data


def _ids(images: dict[str, str]) -> dict[str, str]:
    return {normalize_reference(k): v for k, v in images.items()}


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_plan_case(path: Path) -> None:
    case = _load(path)
    stack = case.get("stack", "demo")
    images_now = _ids(case.get("images", {}))
    desired = desired_from_docs(stack, case["desired"], case.get("files"))
    if "applied" in case:
        before = desired_from_docs(stack, case["applied"], case.get("appliedFiles"))
        applied_images = _ids(case.get("appliedImages", case.get("images", {})))
        observed = observed_as_applied(before, applied_images, case.get("status"))
        observed = model.ObservedState(
            stack,
            {r: o for r, o in _store(images_now).items()},
            observed.networks,
            observed.volumes,
            observed.containers,
            frozenset(tuple(x) for x in case.get("foreign", [])),
        )
    else:
        observed = model.ObservedState(
            stack,
            _store(images_now),
            foreign_names=frozenset(tuple(x) for x in case.get("foreign", [])),
        )
    problems = case.get("networkProblems", {})  # network drift on the host
    if problems:
        networks = {
            name: dataclasses.replace(seen, problems=tuple(problems.get(name, ())))
            for name, seen in observed.networks.items()
        }
        observed = dataclasses.replace(observed, networks=networks)
    volume_problems = case.get("volumeProblems", {})  # a volume's mount gone from the host
    anonymous = case.get("anonymousVolumes", {})  # name -> owner (a container's name)
    if volume_problems or anonymous:
        volumes = {
            name: dataclasses.replace(seen, problems=tuple(volume_problems.get(name, ())))
            for name, seen in observed.volumes.items()
        }
        for name, owner in anonymous.items():
            volumes[name] = model.ObservedObject(
                "Volume", name, f"{stack}_{name}", None, None, owner=owner
            )
        observed = dataclasses.replace(observed, volumes=volumes)
    for ref, digest in case.get("imageSources", {}).items():
        key = normalize_reference(ref)
        old = observed.images[key]
        images = dict(observed.images)
        images[key] = model.ObservedImage(old.reference, old.id, old.digest, digest)
        observed = model.ObservedState(
            stack,
            images,
            observed.networks,
            observed.volumes,
            observed.containers,
            observed.foreign_names,
        )
    opts = case.get("options", {})
    options = model.PlanOptions(
        prune=opts.get("prune", True),
        prune_volumes=opts.get("pruneVolumes", False),
        respect_overrides=opts.get("respectOverrides", False),
    )
    result = plan(desired, observed, options)

    got = [f"{a.op} {a.resource} {a.category}" for a in result.actions]
    want = [line.split(": ", 1)[0].strip() for line in case.get("expect", [])]
    assert got == want, _explain(result)
    for action, line in zip(result.actions, case.get("expect", []), strict=True):
        if ": " in line:
            text = "; ".join(str(r) for r in action.reasons)
            for part in line.split(": ", 1)[1].split(";"):
                assert part.strip() in text, f"{action.resource}: {part.strip()!r} not in {text!r}"
    destructive = {f"{a.op} {a.resource}" for a in result.actions if a.destructive}
    assert destructive == set(case.get("destructive", [])), _explain(result)
    notes = [f"{n.kind.lower()}/{n.name}: {n.message}" for n in result.notes]
    for expected in case.get("notes", []):
        assert any(expected in n for n in notes), f"{expected!r} not in {notes}"
    assert len(notes) == len(case.get("notes", [])), notes
    assert result.blocked == case.get("blocked", False)


def _store(images: dict[str, str]) -> dict[str, model.ObservedImage]:
    return {r: model.ObservedImage(r, i, i) for r, i in images.items()}


def _explain(result: model.Plan) -> str:
    lines = [
        f"{a.op} {a.resource} {a.category}: {'; '.join(str(r) for r in a.reasons)}"
        for a in result.actions
    ]
    return "plan was:\n  " + "\n  ".join(lines or ["(empty)"])
