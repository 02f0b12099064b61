"""Run contestants interleaved: warm-up rounds, then A B A B … measured rounds.

Interleaving spreads slow drifts of a shared machine (another job starting,
page cache filling, CPU frequency) over every contestant alike, which running
all of A and then all of B does not. The schedule is pure; ``run`` executes it
against anything with a ``name`` and a ``cycle()`` that returns named timings
(one cycle may measure several phases, e.g. apply → re-apply → teardown).

A contestant whose cycle raises is dropped from the remaining rounds and keeps
its error: the run goes on for the others and the table says what failed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

__all__ = ["Cycler", "Outcome", "Slot", "run", "schedule"]


class Cycler(Protocol):
    @property
    def name(self) -> str: ...

    def cycle(self) -> Mapping[str, float]:
        """Do one full measured cycle and return its timings (or values) by metric."""
        ...


@dataclasses.dataclass(frozen=True)
class Slot:
    round: int  # 0-based within its kind (warm-up rounds and measured rounds count apart)
    contestant: str
    warmup: bool


@dataclasses.dataclass
class Outcome:
    """What one contestant produced: samples by metric, and the error that stopped it."""

    samples: dict[str, list[float]] = dataclasses.field(default_factory=dict)
    error: str | None = None


def schedule(names: Sequence[str], runs: int, warmup: int) -> list[Slot]:
    """Warm-up rounds first, then measured rounds; each round visits every name in order."""
    if runs < 1:
        raise ValueError("runs must be at least 1")
    if warmup < 0:
        raise ValueError("warmup must not be negative")
    if len(set(names)) != len(names):
        raise ValueError("contestant names must be unique")
    slots = [Slot(r, n, True) for r in range(warmup) for n in names]
    slots += [Slot(r, n, False) for r in range(runs) for n in names]
    return slots


def run(
    contestants: Sequence[Cycler],
    runs: int,
    warmup: int,
    progress: Callable[[Slot, Mapping[str, float] | None], None] | None = None,
) -> dict[str, Outcome]:
    """Execute the schedule; return each contestant's outcome by name."""
    by_name = {c.name: c for c in contestants}
    outcomes = {c.name: Outcome() for c in contestants}
    for slot in schedule([c.name for c in contestants], runs, warmup):
        outcome = outcomes[slot.contestant]
        if outcome.error is not None:
            continue
        try:
            values = by_name[slot.contestant].cycle()
        except Exception as exc:  # one contestant's failure must not stop the others
            outcome.error = f"{type(exc).__name__}: {exc}".strip()
            if progress is not None:
                progress(slot, None)
            continue
        if progress is not None:
            progress(slot, values)
        if not slot.warmup:
            for metric, value in values.items():
                outcome.samples.setdefault(metric, []).append(value)
    return outcomes
