"""The issue's goals, evaluated against a results document.

Goals are stated once here, as the issue wrote them, and evaluated on the
medians; the harness never adjusts a measurement to a goal. A goal whose case
or contestant did not run reads "not measured".
"""

from __future__ import annotations

import dataclasses
from typing import Literal

from bench import names, results, stats

__all__ = ["GOALS", "Goal", "Verdict", "evaluate"]


@dataclasses.dataclass(frozen=True)
class Goal:
    text: str
    suite: str
    case: str
    ours: str
    peer: str | None = None  # None: an absolute limit (``max_value``)
    max_ratio: float | None = None  # ours / peer must be at most this
    max_value: float | None = None  # ours' median must be below this (the case's unit)


@dataclasses.dataclass(frozen=True)
class Verdict:
    goal: Goal
    state: Literal["met", "missed", "not measured"]
    measured: str


GOALS: tuple[Goal, ...] = (
    Goal(
        "start through the shim path: at most runc's median",
        "start",
        names.START_CASE,
        names.PYR_SHIM,
        peer=names.RUNC,
        max_ratio=1.0,
    ),
    *(
        Goal(
            f"apply of {n}: at least 3x faster than docker-compose + dockerd (cold apply)",
            "apply",
            names.apply_case(n, "cold apply"),
            names.PYR_APPLY,
            peer=names.COMPOSE,
            max_ratio=1 / 3,
        )
        for n in (10, 50)
    ),
    Goal(
        "no-op re-apply of 50: under a tenth of docker-compose's",
        "apply",
        names.apply_case(50, "no-op re-apply"),
        names.PYR_APPLY,
        peer=names.COMPOSE,
        max_ratio=0.1,
    ),
    Goal(
        "memory: shim PSS per container at most containerd-shim-runc-v2's",
        "memory",
        names.MEMORY_PSS_CASE,
        names.PYR_SHIM_PROC,
        peer=names.CONTAINERD_SHIM,
        max_ratio=1.0,
    ),
    Goal(
        "diff of 1000 in-sync objects: under one second",
        "diff",
        names.diff_case(1000, "in sync"),
        names.PYR_DIFF,
        max_value=1.0,
    ),
    Goal(
        "[5] pull, download and verify (like skopeo copy, no unpack): no slower than skopeo",
        "pull",
        names.FETCH_CASE,
        names.PYR_FETCH,
        peer=names.SKOPEO_COPY,
        max_ratio=1.0,
    ),
    Goal(
        "[5] pull ready to run (with unpack) through the engine API: no slower than skopeo "
        "(which does not unpack)",
        "pull",
        names.PULL_CASE,
        names.PYR_PULL_API,
        peer=names.SKOPEO_COPY,
        max_ratio=1.0,
    ),
    Goal(
        "[5] pull ready to run through the engine API: no slower than docker pull",
        "pull",
        names.PULL_CASE,
        names.PYR_PULL_API,
        peer=names.DOCKER_PULL,
        max_ratio=1.0,
    ),
    Goal(
        "[9] daemon: a watched file's edit applied (container replaced) within one second",
        "daemon",
        names.DAEMON_EDIT_CASE,
        names.PYR_DAEMON,
        max_value=1.0,
    ),
    Goal(
        "[9] daemon: idle with 50 containers watched, under 1% of one core",
        "daemon",
        names.DAEMON_IDLE_CASE,
        names.PYR_DAEMON,
        max_value=0.01,
    ),
    Goal(
        "[9] no-op re-apply of 50 through the daemon: under a tenth of docker-compose's",
        "daemon",
        names.DAEMON_NOOP_CASE,
        names.PYR_DAEMON,
        peer=names.COMPOSE,
        max_ratio=0.1,
    ),
)


def _median(case: results.CaseResult, name: str) -> float | None:
    contestant = case.get(name)
    summary = contestant.summary if contestant is not None else None
    return summary.median if summary is not None else None


def evaluate(doc: results.Document, goals: tuple[Goal, ...] = GOALS) -> list[Verdict]:
    verdicts = []
    for goal in goals:
        case = next((c for c in doc.cases if c.suite == goal.suite and c.case == goal.case), None)
        ours = _median(case, goal.ours) if case is not None else None
        if case is None or ours is None:
            verdicts.append(Verdict(goal, "not measured", "—"))
            continue
        if goal.peer is None:
            limit = goal.max_value if goal.max_value is not None else float("inf")
            state: Literal["met", "missed"] = "met" if ours < limit else "missed"
            verdicts.append(Verdict(goal, state, f"median {ours:.3g} {case.unit}"))
            continue
        peer = _median(case, goal.peer)
        r = stats.ratio(ours, peer) if peer is not None else None
        if r is None:
            verdicts.append(Verdict(goal, "not measured", f"{goal.peer}: no result"))
            continue
        limit = goal.max_ratio if goal.max_ratio is not None else float("inf")
        state = "met" if r <= limit else "missed"
        verdicts.append(Verdict(goal, state, f"ratio {r:.2f} (limit {limit:.2f})"))
    return verdicts
