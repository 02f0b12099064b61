"""A work queue in controller-runtime's shape (client-go's ``workqueue``).

- **keyed and deduplicated**: adding a key that waits already is a no-op;
- **one worker per key**: a key being processed is not handed out again; added
  meanwhile, it is queued once more when :meth:`WorkQueue.done` is called;
- **delayed adds**: :meth:`WorkQueue.add_after` (the earliest time wins), for the
  resync and for backoff, without a timer thread (the waiting workers sleep
  until the next due time);
- **rate-limited retries**: :class:`Backoff` gives each key an exponential delay
  with jitter per consecutive failure; :meth:`Backoff.forget` after a success.

Bounded parallelism is the number of workers the controller starts. Pure apart
from ``threading``; the clock and the random source are injected for tests.
"""

from __future__ import annotations

import collections
import heapq
import random
import threading
import time
from collections.abc import Callable


class Backoff:
    """``base * 2**failures``, capped, times a jitter factor in [1 - jitter, 1 + jitter]."""

    def __init__(
        self,
        base: float = 0.5,
        cap: float = 300.0,
        jitter: float = 0.25,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.base = base
        self.cap = cap
        self.jitter = jitter
        self.rand = rand
        self._failures: dict[str, int] = {}
        self._lock = threading.Lock()

    def when(self, key: str) -> float:
        with self._lock:
            n = self._failures.get(key, 0)
            self._failures[key] = n + 1
        delay = min(self.cap, self.base * (2 ** min(n, 32)))
        factor: float = 1 - self.jitter + 2 * self.jitter * self.rand()
        return float(delay * factor)

    def failures(self, key: str) -> int:
        with self._lock:
            return self._failures.get(key, 0)

    def forget(self, key: str) -> None:
        with self._lock:
            self._failures.pop(key, None)


class WorkQueue:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._cond = threading.Condition()
        self._queue: collections.deque[str] = collections.deque()
        self._dirty: set[str] = set()
        self._processing: set[str] = set()
        self._due: dict[str, float] = {}  # key → when it is added
        self._heap: list[tuple[float, str]] = []
        self._shutdown = False

    def add(self, key: str) -> None:
        with self._cond:
            self._add(key)

    def _add(self, key: str) -> None:
        if self._shutdown or key in self._dirty:
            return
        self._dirty.add(key)
        if key in self._processing:
            return  # queued again by done()
        self._queue.append(key)
        self._cond.notify()

    def add_after(self, key: str, delay: float) -> None:
        if delay <= 0:
            self.add(key)
            return
        with self._cond:
            if self._shutdown:
                return
            at = self._clock() + delay
            current = self._due.get(key)
            if current is not None and current <= at:
                return
            self._due[key] = at
            heapq.heappush(self._heap, (at, key))
            self._cond.notify()

    def _promote(self, now: float) -> float | None:
        """Add the keys whose time has come; seconds until the next one (None: none)."""
        while self._heap:
            at, key = self._heap[0]
            if self._due.get(key) != at:
                heapq.heappop(self._heap)  # superseded by an earlier time
                continue
            if at > now:
                return at - now
            heapq.heappop(self._heap)
            del self._due[key]
            self._add(key)
        return None

    def get(self, timeout: float | None = None) -> str | None:
        """The next key (the caller must call :meth:`done`), or None after shut down
        (or when ``timeout`` passes)."""
        deadline = None if timeout is None else self._clock() + timeout
        with self._cond:
            while True:
                if self._shutdown:
                    return None
                wait = self._promote(self._clock())
                if self._queue:
                    key = self._queue.popleft()
                    self._processing.add(key)
                    self._dirty.discard(key)
                    return key
                if deadline is not None:
                    left = deadline - self._clock()
                    if left <= 0:
                        return None
                    wait = left if wait is None else min(wait, left)
                self._cond.wait(wait)

    def done(self, key: str) -> None:
        with self._cond:
            self._processing.discard(key)
            if key in self._dirty:
                self._queue.append(key)
                self._cond.notify()

    def forget_pending(self, key: str) -> None:
        """Drop a delayed add of ``key`` (its source is gone)."""
        with self._cond:
            self._due.pop(key, None)

    def shut_down(self) -> None:
        with self._cond:
            self._shutdown = True
            self._cond.notify_all()

    def depth(self) -> int:
        with self._cond:
            return len(self._queue)

    def due(self, key: str) -> float | None:
        """Seconds until a delayed add of ``key`` (None: none pending)."""
        with self._cond:
            at = self._due.get(key)
            return None if at is None else at - self._clock()

    def processing(self) -> set[str]:
        with self._cond:
            return set(self._processing)
