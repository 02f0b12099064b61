"""Flap detection: a container that keeps dying is held back, not restarted in a storm.

Self-heal starts a container that stopped (the plan's ``start``, category
``runtime``). Each such start is recorded; when a container has needed
:attr:`FlapTracker.threshold` of them within :attr:`FlapTracker.window`
seconds it is *flapping*: further starts wait for a hold that doubles at every
new strike (``base_hold``, twice that, four times… up to ``max_hold``). Entering that state is
reported once (an event and a condition), and so is leaving it, when the
container has stayed up for :attr:`FlapTracker.stable` seconds. The first
start after a crash is never delayed, so one kill is repaired at once.

Pure: the caller passes the clock's time (tests use a fake one). Keys are
``stack/name``.
"""

from __future__ import annotations

import collections
import dataclasses
from typing import Literal

Transition = Literal["flapping", "recovered"] | None


@dataclasses.dataclass
class _State:
    starts: collections.deque[float] = dataclasses.field(default_factory=collections.deque)
    strikes: int = 0
    held_until: float = 0.0
    flapping: bool = False


class FlapTracker:
    def __init__(
        self,
        window: float = 60.0,
        threshold: int = 3,
        base_hold: float = 10.0,
        max_hold: float = 300.0,
        stable: float = 60.0,
    ) -> None:
        self.window = window
        self.threshold = threshold
        self.base_hold = base_hold
        self.max_hold = max_hold
        self.stable = stable
        self._states: dict[str, _State] = {}

    def held_until(self, key: str, now: float) -> float | None:
        """When a held container may be started again; None: it may now."""
        state = self._states.get(key)
        if state is None or state.held_until <= now:
            return None
        return state.held_until

    def started(self, key: str, now: float) -> Transition:
        """Record a self-heal start; "flapping" the first time the limit is crossed."""
        state = self._states.setdefault(key, _State())
        state.starts.append(now)
        while state.starts and state.starts[0] < now - self.window:
            state.starts.popleft()
        if len(state.starts) < self.threshold:
            return None
        state.strikes += 1
        hold = min(self.max_hold, self.base_hold * 2 ** (state.strikes - 1))
        state.held_until = now + hold
        if state.flapping:
            return None
        state.flapping = True
        return "flapping"

    def running(self, key: str, now: float) -> Transition:
        """The container runs now: forget it once it has been up long enough."""
        state = self._states.get(key)
        if state is None or not state.starts:
            return None
        if now - state.starts[-1] < self.stable:
            return None
        was = state.flapping
        del self._states[key]
        return "recovered" if was else None

    def forget(self, key: str) -> None:
        self._states.pop(key, None)

    def flapping(self) -> list[str]:
        return sorted(k for k, s in self._states.items() if s.flapping)

    def is_flapping(self, key: str) -> bool:
        state = self._states.get(key)
        return state is not None and state.flapping
