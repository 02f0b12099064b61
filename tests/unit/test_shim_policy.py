"""Restart policies and backoff (pure), as Docker defines them."""

from __future__ import annotations

import pytest

from runtime.shim import policy


@pytest.mark.parametrize(
    ("text", "name", "retries"),
    [
        ("no", "no", 0),
        ("always", "always", 0),
        ("unless-stopped", "unless-stopped", 0),
        ("on-failure", "on-failure", 0),
        ("on-failure:3", "on-failure", 3),
        (" on-failure:0 ", "on-failure", 0),
    ],
)
def test_parse(text: str, name: str, retries: int) -> None:
    parsed = policy.parse(text)
    assert (parsed.name, parsed.max_retries) == (name, retries)
    assert policy.parse(str(parsed)) == parsed


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("sometimes", "is not one of"),
        ("always:3", "only on-failure takes a retry count"),
        ("on-failure:x", "must be a number"),
        ("on-failure:-1", "must be a number"),
        ("", "is not one of"),
    ],
)
def test_parse_rejects(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        policy.parse(text)


# (policy, exit code, restarts so far, stopped) -> restart?
CASES = [
    ("no", 1, 0, False, False),
    ("no", 0, 0, False, False),
    ("always", 0, 0, False, True),
    ("always", 137, 99, False, True),
    ("always", 1, 0, True, False),
    ("unless-stopped", 0, 5, False, True),
    ("unless-stopped", 1, 0, True, False),
    ("on-failure", 0, 0, False, False),
    ("on-failure", 1, 1000, False, True),
    ("on-failure:2", 1, 0, False, True),
    ("on-failure:2", 1, 1, False, True),
    ("on-failure:2", 1, 2, False, False),
    ("on-failure:2", 0, 0, False, False),
    ("on-failure:2", 1, 0, True, False),
]


@pytest.mark.parametrize(("text", "code", "count", "stopped", "expected"), CASES)
def test_should_restart(text: str, code: int, count: int, stopped: bool, expected: bool) -> None:
    assert policy.parse(text).should_restart(code, count, stopped=stopped) is expected


def test_backoff_doubles_to_the_cap_and_resets_after_a_stable_run() -> None:
    delays = []
    delay = 0.0
    for _ in range(10):
        delay = policy.next_backoff(delay, run_seconds=0.5)
        delays.append(delay)
    assert delays == [0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 6.4, 10.0, 10.0, 10.0]
    assert policy.next_backoff(10.0, run_seconds=policy.STABLE_AFTER) == 0.1
    assert policy.next_backoff(0.4, run_seconds=9.99) == 0.8
