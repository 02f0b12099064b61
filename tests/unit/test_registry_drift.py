"""Image drift through the registry (pullPolicy Always) on the fake runtime:
``diff`` asks the registry which image the tag names now and reports an
image update with the old and new ids; ``apply`` pulls it and recreates the
containers that use it; IfNotPresent never asks; Never refuses to pull."""

from __future__ import annotations

import pytest

from reconciler import engine, render
from runtime import client, errors
from runtime.fake import FakeRuntime
from tests.support.stacks import desired_from_docs, doc

REF = "registry.example:5000/team/app:1"


def stack(policy: str, **spec: object) -> list[dict[str, object]]:
    return [
        doc("Image", "app", {"ref": REF, "pullPolicy": policy, **spec}),
        doc("Container", "web", {"image": "app", "command": ["sleep", "1000"]}),
    ]


def test_always_reports_a_moved_tag_and_apply_recreates() -> None:
    rt = FakeRuntime()
    first = rt.publish(REF, content=b"v1")
    desired = desired_from_docs("s", stack("Always"))
    result = engine.apply(rt, desired)
    assert result.converged
    assert rt.get_container("s_web").image_id == first.image_id
    assert engine.diff(rt, desired).in_sync  # the registry agrees: nothing to do

    second = rt.publish(REF, content=b"v2")
    plan = engine.diff(rt, desired)
    (action,) = plan.actions
    assert (action.op, action.kind, action.category) == ("update", "Image", "image")
    text = render.plan_text(plan)
    assert second.image_id.split(":")[1][:12] in text and first.image_id.split(":")[1][:12] in text
    assert [n.name for n in plan.notes] == ["web"]  # judged again after the pull

    calls = len(rt.calls)
    again = engine.apply(rt, desired)
    assert again.converged
    ops = [(a.op, a.kind, a.category) for a in again.executed]
    assert ("update", "Image", "image") in ops and ("recreate", "Container", "image") in ops
    assert rt.get_container("s_web").image_id == second.image_id
    assert f"pull_image {REF}" in rt.calls[calls:]
    assert engine.diff(rt, desired).in_sync


def test_if_not_present_never_asks_the_registry() -> None:
    rt = FakeRuntime()
    rt.publish(REF, content=b"v1")
    desired = desired_from_docs("s", stack("IfNotPresent"))
    engine.apply(rt, desired)
    rt.publish(REF, content=b"v2")
    asked: list[str] = []
    original = rt.resolve_remote

    def counting(reference: str, *, platform: str | None = None) -> client.RemoteImage:
        asked.append(reference)
        return original(reference, platform=platform)

    rt.resolve_remote = counting  # type: ignore[method-assign]
    assert engine.diff(rt, desired).in_sync
    assert asked == []


def test_never_refuses_to_pull_and_platform_is_passed() -> None:
    rt = FakeRuntime()
    rt.publish(REF, content=b"v1")
    with pytest.raises(errors.NotFound, match="pullPolicy is Never"):
        engine.apply(rt, desired_from_docs("s", stack("Never")))
    pulled: list[str | None] = []
    original = rt.pull_image

    def recording(reference: str, **kw: object) -> client.ImageInfo:
        pulled.append(kw.get("platform"))  # type: ignore[arg-type]
        return original(reference, **kw)  # type: ignore[arg-type]

    rt.pull_image = recording  # type: ignore[method-assign]
    engine.apply(rt, desired_from_docs("s", stack("IfNotPresent", platform="linux/arm64")))
    assert pulled == ["linux/arm64"]


def test_a_tag_gone_from_the_registry_makes_diff_fail() -> None:
    """diff cannot tell whether the host drifted: an error (exit 1), not "in sync"."""
    rt = FakeRuntime()
    rt.publish(REF, content=b"v1")
    desired = desired_from_docs("s", stack("Always"))
    engine.apply(rt, desired)
    rt.registry.clear()
    with pytest.raises(errors.NotFound):
        engine.diff(rt, desired)
