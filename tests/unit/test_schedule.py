"""The executor's scheduler: phases, dependency order, bounded parallelism, failure."""

from __future__ import annotations

import threading
import time

import pytest

from reconciler import schedule
from reconciler.plan import model
from tests.support.stacks import desired_from_docs, doc


def _containers(spec_by_name: dict[str, list[str]]) -> list[model.Action]:
    docs = [
        doc("Container", n, {"image": "busybox", "dependsOn": deps})
        for n, deps in spec_by_name.items()
    ]
    desired = desired_from_docs("s", docs)
    return [
        model.Action("create", "Container", n, "missing", (), desired=desired.containers[n])
        for n in spec_by_name
    ]


def test_phases_follow_the_plan_order() -> None:
    acts = [
        model.Action("delete", "Volume", "v", "orphan", ()),
        model.Action("create", "Container", "c", "missing", ()),
        model.Action("delete", "Network", "n", "orphan", ()),
        model.Action("create", "Image", "i", "missing", ()),
        model.Action("delete", "Container", "old", "orphan", ()),
        model.Action("create", "Volume", "v2", "missing", ()),
    ]
    got = [[a.resource for a in p] for p in schedule.phases(acts)]
    assert got == [
        ["image/i"],
        ["volume/v2"],
        ["container/old"],
        ["container/c"],
        ["network/n"],
        ["volume/v"],
    ]


@pytest.mark.parametrize("parallelism", [1, 4])
def test_dependencies_finish_first(parallelism: int) -> None:
    acts = _containers({"web": ["api"], "api": ["db"], "db": [], "other": []})
    finished: list[str] = []
    lock = threading.Lock()

    def do(action: model.Action) -> None:
        time.sleep(0.01)
        with lock:
            finished.append(action.name)

    schedule.run_phase(acts, do, parallelism)
    assert finished.index("db") < finished.index("api") < finished.index("web")
    assert sorted(finished) == ["api", "db", "other", "web"]


def test_runs_in_parallel_within_the_bound() -> None:
    acts = _containers({f"c{i}": [] for i in range(8)})
    active = 0
    peak = 0
    lock = threading.Lock()

    def do(action: model.Action) -> None:
        nonlocal active, peak
        with lock:
            active += 1
            peak = max(peak, active)
        time.sleep(0.05)
        with lock:
            active -= 1

    started = time.monotonic()
    schedule.run_phase(acts, do, 4)
    assert peak == 4
    assert time.monotonic() - started < 0.05 * 8 * 0.75


def test_first_failure_stops_new_work_and_is_raised() -> None:
    acts = _containers({"bad": [], "after": ["bad"], "x": []})
    seen: list[str] = []

    def do(action: model.Action) -> None:
        seen.append(action.name)
        if action.name == "bad":
            raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        schedule.run_phase(acts, do, 4)
    assert "after" not in seen
