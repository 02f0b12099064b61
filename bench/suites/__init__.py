"""The suites, by name, in the order a full run does them."""

from __future__ import annotations

from collections.abc import Callable

from bench import context, results
from bench.suites import apply, daemon, diff, memory, network, pull, start

__all__ = ["SUITES"]

SUITES: dict[str, Callable[[context.Context], list[results.CaseResult]]] = {
    "start": start.run,
    "apply": apply.run,
    "memory": memory.run,
    "diff": diff.run,
    "network": network.run,
    "pull": pull.run,
    "daemon": daemon.run,
}
