"""Prometheus metrics in the text exposition format (version 0.0.4), without a client library.

What the daemon counts is small and fixed (a dozen families), so a registry of
counters, gauges and histograms keyed by label tuples is a page of code and no
dependency. Names follow Prometheus' conventions (``_total`` counters,
``_seconds`` durations, base units).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable

DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

Labels = tuple[tuple[str, str], ...]


def _labels(values: dict[str, str]) -> Labels:
    return tuple(sorted(values.items()))


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _render_labels(labels: Labels, extra: Iterable[tuple[str, str]] = ()) -> str:
    pairs = [*labels, *extra]
    if not pairs:
        return ""
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in pairs) + "}"


def _number(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


class _Family:
    def __init__(self, name: str, kind: str, help_text: str) -> None:
        self.name = name
        self.kind = kind
        self.help = help_text


class Counter(_Family):
    def __init__(self, name: str, help_text: str) -> None:
        super().__init__(name, "counter", help_text)
        self.values: dict[Labels, float] = {}

    def inc(self, amount: float = 1.0, **labels: str) -> None:
        key = _labels(labels)
        self.values[key] = self.values.get(key, 0.0) + amount

    def render(self) -> list[str]:
        return [
            f"{self.name}{_render_labels(k)} {_number(v)}" for k, v in sorted(self.values.items())
        ]


class Gauge(_Family):
    def __init__(self, name: str, help_text: str) -> None:
        super().__init__(name, "gauge", help_text)
        self.values: dict[Labels, float] = {}

    def set(self, value: float, **labels: str) -> None:
        self.values[_labels(labels)] = value

    def replace(self, match: dict[str, str], values: dict[Labels, float]) -> None:
        """Set every series whose labels include ``match`` at once (old ones go)."""
        wanted = set(match.items())
        self.values = {k: v for k, v in self.values.items() if not wanted <= set(k)}
        self.values.update(values)

    def render(self) -> list[str]:
        return [
            f"{self.name}{_render_labels(k)} {_number(v)}" for k, v in sorted(self.values.items())
        ]


class Histogram(_Family):
    def __init__(
        self, name: str, help_text: str, buckets: tuple[float, ...] = DURATION_BUCKETS
    ) -> None:
        super().__init__(name, "histogram", help_text)
        self.buckets = buckets
        self.values: dict[Labels, tuple[list[int], float, int]] = {}

    def observe(self, value: float, **labels: str) -> None:
        key = _labels(labels)
        counts, total, n = self.values.get(key, ([0] * len(self.buckets), 0.0, 0))
        counts = list(counts)
        for i, bound in enumerate(self.buckets):
            if value <= bound:
                counts[i] += 1
        self.values[key] = (counts, total + value, n + 1)

    def render(self) -> list[str]:
        lines = []
        for key, (counts, total, n) in sorted(self.values.items()):
            for bound, count in zip(self.buckets, counts, strict=True):
                lines.append(
                    f"{self.name}_bucket{_render_labels(key, [('le', _number(bound))])} {count}"
                )
            lines.append(f"{self.name}_bucket{_render_labels(key, [('le', '+Inf')])} {n}")
            lines.append(f"{self.name}_sum{_render_labels(key)} {_number(total)}")
            lines.append(f"{self.name}_count{_render_labels(key)} {n}")
        return lines


class Metrics:
    """The daemon's metric families; thread-safe through one lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.rounds = Counter(
            "pyreconcile_reconcile_rounds_total", "Reconcile rounds, by source and result"
        )
        self.duration = Histogram(
            "pyreconcile_reconcile_duration_seconds", "Time of a reconcile round, by source"
        )
        self.errors = Counter(
            "pyreconcile_reconcile_errors_total", "Failed rounds, by source and error category"
        )
        self.changes = Counter(
            "pyreconcile_changes_applied_total",
            "Changes carried out, by stack, operation and drift category",
        )
        self.drift = Gauge(
            "pyreconcile_drift_objects",
            "Objects that differ from the desired state in the last round, by stack and category",
        )
        self.objects = Gauge(
            "pyreconcile_objects",
            "Managed objects seen in the last round, by stack, kind and state",
        )
        self.source_errors = Counter(
            "pyreconcile_source_errors_total", "Sources that failed to load or fetch, by source"
        )
        self.flapping = Gauge(
            "pyreconcile_flapping_containers", "Containers held back by flap detection, by stack"
        )
        self.queue_depth = Gauge("pyreconcile_workqueue_depth", "Keys waiting in the work queue")
        self.retries = Counter(
            "pyreconcile_workqueue_retries_total", "Keys put back with backoff after an error"
        )
        self.triggers = Counter(
            "pyreconcile_triggers_total",
            "What made the loop look again: file, git, exit, api, resync",
        )
        self.requests = Counter(
            "pyreconcile_api_requests_total", "API requests, by method, route and status code"
        )
        self.request_duration = Histogram(
            "pyreconcile_api_request_duration_seconds", "Time to answer an API request, by route"
        )
        self.up = Gauge("pyreconcile_up", "1 while the daemon serves")
        self.up.set(1)
        self._families: list[Counter | Gauge | Histogram] = [
            self.rounds,
            self.duration,
            self.errors,
            self.changes,
            self.drift,
            self.objects,
            self.source_errors,
            self.flapping,
            self.queue_depth,
            self.retries,
            self.triggers,
            self.requests,
            self.request_duration,
            self.up,
        ]

    @property
    def lock(self) -> threading.Lock:
        return self._lock

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        with self._lock:
            self.requests.inc(method=method, route=route, code=str(status))
            self.request_duration.observe(seconds, route=route)

    def render(self) -> str:
        out = []
        with self._lock:
            for family in self._families:
                out.append(f"# HELP {family.name} {family.help}")
                out.append(f"# TYPE {family.name} {family.kind}")
                out.extend(family.render())
        return "\n".join(out) + "\n"
