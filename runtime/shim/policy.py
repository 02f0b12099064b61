"""Restart policies, decided inside the shim so they work while the reconciler is down.

Docker's semantics: ``no`` never restarts; ``always`` and ``unless-stopped``
restart after any exit; ``on-failure[:N]`` restarts after a non-zero exit, at
most ``N`` times (no ``N``, or ``0``, means no limit, as in moby's restart
manager). An intentional stop (the ``stop`` or ``shutdown`` request) never
restarts. ``always`` and ``unless-stopped`` behave the same here: they differ
only in what the engine does when it starts again, which is not the shim's job.

Backoff: 100 ms before the first restart, doubling after each run that ended
within :data:`STABLE_AFTER` seconds, capped at :data:`BACKOFF_CAP`; a run that
lasted longer resets it. Pure functions, no clock: the shim passes durations in.
Stdlib only and import-free: the shim imports this under ``python -I -S``.
"""

from __future__ import annotations

NO = "no"
ALWAYS = "always"
ON_FAILURE = "on-failure"
UNLESS_STOPPED = "unless-stopped"
NAMES = (NO, ALWAYS, ON_FAILURE, UNLESS_STOPPED)

BACKOFF_START = 0.1
BACKOFF_CAP = 10.0
STABLE_AFTER = 10.0


class RestartPolicy:
    """A parsed policy: its name and, for ``on-failure``, the retry limit (0: none)."""

    __slots__ = ("max_retries", "name")

    def __init__(self, name: str, max_retries: int = 0) -> None:
        self.name = name
        self.max_retries = max_retries

    def __repr__(self) -> str:
        return f"RestartPolicy({self!s})"

    def __str__(self) -> str:
        if self.name == ON_FAILURE and self.max_retries:
            return f"{ON_FAILURE}:{self.max_retries}"
        return self.name

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RestartPolicy):
            return NotImplemented
        return (self.name, self.max_retries) == (other.name, other.max_retries)

    def __hash__(self) -> int:
        return hash((self.name, self.max_retries))

    def should_restart(self, exit_code: int, restart_count: int, *, stopped: bool) -> bool:
        """Whether a run that ended with ``exit_code`` is followed by another.

        ``restart_count`` is the number of restarts done so far; ``stopped`` is
        True when the exit was asked for (``stop``/``shutdown``).
        """
        if stopped or self.name == NO:
            return False
        if self.name in (ALWAYS, UNLESS_STOPPED):
            return True
        if exit_code == 0:
            return False
        return self.max_retries == 0 or restart_count < self.max_retries


def parse(text: str) -> RestartPolicy:
    """Parse ``no | always | unless-stopped | on-failure[:N]``; ValueError when invalid."""
    name, sep, count = text.strip().partition(":")
    if name not in NAMES:
        raise ValueError(
            f"restart policy {text!r} is not one of no, always, on-failure[:N], unless-stopped"
        )
    if not sep:
        return RestartPolicy(name)
    if name != ON_FAILURE:
        raise ValueError(f"restart policy {text!r}: only on-failure takes a retry count")
    if not count.isdigit():
        raise ValueError(f"restart policy {text!r}: the retry count must be a number >= 0")
    return RestartPolicy(name, int(count))


def next_backoff(previous: float, run_seconds: float) -> float:
    """The delay before the next restart, given the previous delay (0 at first).

    A run of at least :data:`STABLE_AFTER` seconds resets the delay to the start.
    """
    if previous <= 0 or run_seconds >= STABLE_AFTER:
        return BACKOFF_START
    return min(previous * 2, BACKOFF_CAP)
