"""Interleaving: the schedule (warm-up first, then A B A B …) and the loop that
runs it, with fake contestants (no processes)."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from bench import interleave


def test_schedule_warms_up_then_alternates() -> None:
    slots = interleave.schedule(["a", "b"], runs=2, warmup=1)
    assert [(s.contestant, s.warmup, s.round) for s in slots] == [
        ("a", True, 0),
        ("b", True, 0),
        ("a", False, 0),
        ("b", False, 0),
        ("a", False, 1),
        ("b", False, 1),
    ]


@pytest.mark.parametrize(
    ("names", "runs", "warmup", "message"),
    [
        (["a"], 0, 0, "runs"),
        (["a"], 1, -1, "warmup"),
        (["a", "a"], 1, 0, "unique"),
    ],
)
def test_schedule_rejects_bad_sizes(names: list[str], runs: int, warmup: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        interleave.schedule(names, runs, warmup)


class Fake:
    def __init__(self, name: str, log: list[str], fail_at: int | None = None) -> None:
        self.name = name
        self._log = log
        self._calls = 0
        self._fail_at = fail_at

    def cycle(self) -> Mapping[str, float]:
        self._calls += 1
        self._log.append(self.name)
        if self._fail_at is not None and self._calls == self._fail_at:
            raise OSError("peer broke")
        return {"total": float(self._calls), "phase": 10.0 * self._calls}


def test_run_interleaves_and_drops_warmup_samples() -> None:
    log: list[str] = []
    outcomes = interleave.run([Fake("a", log), Fake("b", log)], runs=3, warmup=2)
    assert log == ["a", "b"] * 5
    # the first two calls were warm-up: their values are not kept
    assert outcomes["a"].samples == {"total": [3.0, 4.0, 5.0], "phase": [30.0, 40.0, 50.0]}
    assert outcomes["b"].error is None


def test_a_failing_contestant_is_dropped_and_the_others_go_on() -> None:
    log: list[str] = []
    seen: list[tuple[str, bool]] = []
    outcomes = interleave.run(
        [Fake("a", log, fail_at=2), Fake("b", log)],
        runs=3,
        warmup=0,
        progress=lambda slot, values: seen.append((slot.contestant, values is None)),
    )
    assert log == ["a", "b", "a", "b", "b"]
    assert outcomes["a"].error == "OSError: peer broke"
    assert outcomes["a"].samples == {"total": [1.0], "phase": [10.0]}
    assert outcomes["b"].samples["total"] == [1.0, 2.0, 3.0]
    assert ("a", True) in seen
