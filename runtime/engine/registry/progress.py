"""Progress of a pull or push: events per blob, byte counters rate-limited to
one event per blob every 100 ms (and the last), safe to call from the worker
threads that download or upload layers."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable

from runtime import client
from runtime.engine import oci_layout


class Reporter:
    """Byte counters per blob, reported at most every 100 ms per blob (thread-safe)."""

    def __init__(self, callback: client.ProgressCallback | None, interval: float = 0.1) -> None:
        self._callback = callback
        self._interval = interval
        self._lock = threading.Lock()
        self._done: dict[str, int] = {}
        self._last: dict[str, float] = {}

    def emit(self, event: client.ProgressEvent) -> None:
        if self._callback is not None:
            self._callback(event)

    def counter(
        self, action: client.ProgressAction, digest: str, total: int
    ) -> Callable[[int], None]:
        def on_bytes(n: int) -> None:
            now = time.monotonic()
            with self._lock:
                self._done[digest] = self._done.get(digest, 0) + n
                current = self._done[digest]
                due = now - self._last.get(digest, 0.0) >= self._interval or current >= total
                if due:
                    self._last[digest] = now
            if due:
                self.emit(client.ProgressEvent(action, digest, current, total))

        return on_bytes


def unique(layers: Iterable[oci_layout.Descriptor]) -> list[oci_layout.Descriptor]:
    seen: set[str] = set()
    out = []
    for layer in layers:
        if layer.digest not in seen:
            seen.add(layer.digest)
            out.append(layer)
    return out
