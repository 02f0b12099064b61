"""The bench harness's statistics: median, min, max and the ratio."""

from __future__ import annotations

import pytest

from bench import stats


def test_summary_of_odd_and_even_samples() -> None:
    assert stats.summarize([3.0, 1.0, 2.0]) == stats.Summary(n=3, median=2.0, min=1.0, max=3.0)
    assert stats.summarize([4.0, 1.0, 2.0, 3.0]) == stats.Summary(n=4, median=2.5, min=1.0, max=4.0)


def test_median_ignores_one_long_tail() -> None:
    summary = stats.summarize([0.010, 0.011, 0.012, 0.010, 5.0])
    assert summary.median == 0.011
    assert summary.max == 5.0


def test_summary_needs_samples() -> None:
    with pytest.raises(ValueError, match="no samples"):
        stats.summarize([])


def test_ratio_is_ours_over_peer() -> None:
    assert stats.ratio(0.05, 0.025) == 2.0
    assert stats.ratio(1.0, 0.0) is None
