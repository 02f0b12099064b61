"""The daemon's events: what changed, why, and the result, for people and programs.

An :class:`EventLog` keeps the last :data:`KEEP` events in memory (``GET
/v1/events`` answers them) and hands new ones to followers (``?follow=true``,
``pyreconcile events -f``). A follower that does not keep up loses its oldest
queued events, never blocks the loop: events are a view, the state of the world
is re-read by whoever needs it. Each event is also logged (structlog, JSON).
"""

from __future__ import annotations

import collections
import queue
import threading
import time
from collections.abc import Iterator

import structlog

from reconciler.daemon import api_types

log = structlog.get_logger(__name__)

KEEP = 1000
FOLLOWER_QUEUE = 1000


class EventLog:
    def __init__(
        self, keep: int = KEEP, clock: collections.abc.Callable[[], float] = time.time
    ) -> None:
        self._recent: collections.deque[api_types.Event] = collections.deque(maxlen=keep)
        self._followers: list[queue.Queue[api_types.Event]] = []
        self._lock = threading.Lock()
        self._seq = 0
        self._clock = clock

    def emit(
        self,
        type: str,
        *,
        source: str | None = None,
        stack: str | None = None,
        object: str | None = None,
        message: str = "",
        result: str | None = None,
        revision: str | None = None,
    ) -> api_types.Event:
        with self._lock:
            self._seq += 1
            event = api_types.Event(
                time=self._clock(),
                type=type,
                source=source,
                stack=stack,
                object=object,
                message=message,
                result=result,
                revision=revision,
                seq=self._seq,
            )
            self._recent.append(event)
            followers = list(self._followers)
        for box in followers:
            while True:
                try:
                    box.put_nowait(event)
                    break
                except queue.Full:
                    try:
                        box.get_nowait()  # drop the oldest for a slow follower
                    except queue.Empty:
                        pass
        fields = {
            k: v
            for k, v in (
                ("source", source),
                ("stack", stack),
                ("object", object),
                ("result", result),
                ("revision", revision),
            )
            if v is not None
        }
        level = log.warning if result == "error" else log.info
        level(type, message=message, **fields)
        return event

    def recent(self, since: int = 0) -> list[api_types.Event]:
        with self._lock:
            return [e for e in self._recent if e.seq > since]

    def follow(
        self, since: int = 0, stop: threading.Event | None = None, tick: float = 0.25
    ) -> Iterator[api_types.Event | None]:
        """The recent events after ``since``, then new ones as they come; ``None``
        every ``tick`` seconds of quiet (for the server's liveness check)."""
        box: queue.Queue[api_types.Event] = queue.Queue(maxsize=FOLLOWER_QUEUE)
        with self._lock:
            backlog = [e for e in self._recent if e.seq > since]
            self._followers.append(box)
        try:
            yield from backlog
            while stop is None or not stop.is_set():
                try:
                    yield box.get(timeout=tick)
                except queue.Empty:
                    yield None
        finally:
            with self._lock:
                self._followers.remove(box)
