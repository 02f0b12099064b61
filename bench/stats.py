"""Summary statistics of one contestant's samples.

Medians, not means: a shared 2-core VM has long tails (another job's burst),
and the median is the number that stays put between runs. Min and max are kept
so that a reader sees the spread.
"""

from __future__ import annotations

import dataclasses
import statistics
from collections.abc import Sequence

__all__ = ["Summary", "ratio", "summarize"]


@dataclasses.dataclass(frozen=True)
class Summary:
    n: int
    median: float
    min: float
    max: float


def summarize(samples: Sequence[float]) -> Summary:
    """Median, min and max of ``samples`` (at least one)."""
    if not samples:
        raise ValueError("no samples to summarize")
    return Summary(
        n=len(samples),
        median=float(statistics.median(samples)),
        min=float(min(samples)),
        max=float(max(samples)),
    )


def ratio(ours: float, peer: float) -> float | None:
    """``ours / peer``: below 1 means pyreconcile takes less (time, memory).

    None when the peer's value is zero (the ratio has no meaning then).
    """
    if peer == 0:
        return None
    return ours / peer
