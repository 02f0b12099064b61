"""Convergence and idempotence on the fake runtime.

Hypothesis draws a stack that was applied before, perturbations of the world
since (crashes, operator stops, containers removed behind our back), and a new
desired stack. Applying the desired stack must converge in a bounded number of
rounds, after which the plan is empty and a second apply changes nothing.
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler import engine, observe
from reconciler.plan import model, plan
from runtime import client, errors
from runtime.fake import FakeRuntime
from tests.support.stacks import desired_from_docs, doc

NAMES = ["a", "b", "c", "d", "e"]


@st.composite
def stacks(draw: st.DrawFn) -> list[dict[str, Any]]:
    containers = draw(st.lists(st.sampled_from(NAMES), unique=True, max_size=5))
    volumes = draw(st.lists(st.sampled_from(["v1", "v2"]), unique=True, max_size=2))
    networks = draw(st.lists(st.sampled_from(["n1", "n2"]), unique=True, max_size=2))
    docs: list[dict[str, Any]] = []
    for v in volumes:
        opts = draw(st.sampled_from([{}, {"driverOpts": {"type": "tmpfs", "device": "tmpfs"}}]))
        docs.append(doc("Volume", v, opts))
    for n in networks:
        docs.append(
            doc("Network", n, {"subnet": draw(st.sampled_from(["10.89.1.0/24", "10.89.2.0/24"]))})
        )
    for i, name in enumerate(containers):
        earlier = containers[:i]
        spec: dict[str, Any] = {
            "image": draw(st.sampled_from(["busybox", "alpine"])),
            "env": draw(
                st.dictionaries(
                    st.sampled_from(["A", "B"]), st.sampled_from(["1", "2"]), max_size=2
                )
            ),
            "restart": draw(st.sampled_from(["no", "always", "on-failure:3"])),
            "labels": draw(
                st.dictionaries(
                    st.sampled_from(["x", "y"]), st.sampled_from(["1", "2"]), max_size=1
                )
            ),
        }
        if volumes and draw(st.booleans()):
            spec["mounts"] = [f"{draw(st.sampled_from(volumes))}:/data"]
        if networks and draw(st.booleans()):
            spec["networks"] = [draw(st.sampled_from(networks))]
        if earlier and draw(st.booleans()):
            spec["dependsOn"] = [draw(st.sampled_from(earlier))]
        if draw(st.booleans()):
            spec["resources"] = {"memory": draw(st.sampled_from(["64Mi", "128Mi"]))}
        docs.append(doc("Container", name, spec))
    return docs


perturbations = st.lists(
    st.tuples(st.sampled_from(["crash", "stop", "remove", "crash0"]), st.sampled_from(NAMES)),
    max_size=4,
)


def _runtime() -> FakeRuntime:
    rt = FakeRuntime()
    rt.add_image("busybox", client.ImageConfig(cmd=("sh",)))
    rt.add_image("alpine", client.ImageConfig(cmd=("sh",)))
    return rt


def _perturb(rt: FakeRuntime, stack: str, changes: list[tuple[str, str]]) -> None:
    for what, name in changes:
        runtime_name = f"{stack}_{name}"
        if runtime_name not in rt.containers:
            continue
        if what == "crash":
            rt.crash(runtime_name, 1)
        elif what == "crash0":
            rt.crash(runtime_name, 0)
        elif what == "stop":
            rt.stop_container(runtime_name, operator=True)
        elif what == "remove":
            try:
                rt.remove_container(runtime_name, force=True)
            except errors.RuntimeError_:
                pass


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(before=stacks(), changes=perturbations, after=stacks())
def test_apply_converges_and_is_idempotent(
    before: list[dict[str, Any]], changes: list[tuple[str, str]], after: list[dict[str, Any]]
) -> None:
    rt = _runtime()
    options = model.PlanOptions(prune=True, prune_volumes=True)
    allow = engine.execute.ExecuteOptions(allow_data_loss=True, dependency_timeout=0.0)
    first = desired_from_docs("s", before)
    engine.apply(rt, first, options, allow)
    _perturb(rt, "s", changes)

    desired = desired_from_docs("s", after)
    result = engine.apply(rt, desired, options, allow)
    assert result.converged
    assert result.rounds <= 3
    assert plan(desired, observe.observe(rt, "s"), options).in_sync

    calls = len(rt.calls)
    again = engine.apply(rt, desired, options, allow)
    assert again.executed == ()
    assert len(rt.calls) == calls

    # the world matches the manifests: every desired container exists with its env
    for name, want in desired.containers.items():
        info = rt.get_container(f"s_{name}")
        assert dict(info.config.env) == dict(want.spec.env)
        assert info.status in ("running", "exited")
    assert {c.name for c in rt.list_containers()} == {f"s_{n}" for n in desired.containers}
    assert {v.name for v in rt.list_volumes()} == {f"s_{n}" for n in desired.volumes}


def test_crash_loop_is_reported_not_repeated() -> None:
    """A container that dies right after every start must not make apply loop."""

    class CrashingRuntime(FakeRuntime):
        def start_container(self, name: str) -> client.ContainerInfo:
            super().start_container(name)
            self.crash(name, 2)
            return self.get_container(name)

    rt = CrashingRuntime()
    rt.add_image("busybox")
    desired = desired_from_docs(
        "s", [doc("Container", "a", {"image": "busybox", "restart": "always"})]
    )
    try:
        engine.apply(rt, desired)
    except engine.NotConverged as exc:
        assert "start container/a" in str(exc)
        assert "exited with code 2" in str(exc)
    else:
        raise AssertionError("apply should report the crash loop")
    assert rt.calls.count("start_container s_a") == 2  # created+started once, restarted once
