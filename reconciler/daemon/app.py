"""What the API's handlers share: the runtime, the roots, the loop's hooks.

One ``App`` per daemon, built by :mod:`reconciler.daemon.main`; handlers get it
as their first argument (no module-level singletons).
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from runtime import client

if TYPE_CHECKING:
    from reconciler.daemon import controller, events, metrics


def _ignore(_: str) -> None:
    return None


@dataclasses.dataclass
class App:
    runtime: client.RuntimeClient
    root: str
    run_root: str
    events: events.EventLog
    metrics: metrics.Metrics
    controller: controller.Controller | None = None
    #: a container was changed through the API (its runtime name): the loop looks again
    on_api_write: Callable[[str], None] = _ignore
    #: SIGHUP's work, also ``POST /v1/reload``
    reload: Callable[[], None] = lambda: None
    #: loads chdir to the caller's working directory: one at a time (see api_stacks)
    load_lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)
    version: str = "0"
