"""Routes of the daemon itself: version, OpenAPI document, metrics, events, sources, status."""

from __future__ import annotations

import json
import os
from typing import Any

from reconciler.daemon import api_types as T
from reconciler.daemon import server, status
from reconciler.daemon.app import App
from reconciler.daemon.server import Call, Param, Route
from runtime import errors

METRICS_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def version(app: App, call: Call) -> Any:
    return T.VersionInfo(
        version=app.version, api_version="v1", pid=os.getpid(), root=app.root, run_root=app.run_root
    )


def openapi_document(app: App, call: Call) -> Any:
    from reconciler.daemon import openapi

    text = json.dumps(openapi.document(app.version), indent=2).encode()
    return server.Raw("application/json", iter([text]))


def metrics(app: App, call: Call) -> Any:
    return server.Raw(METRICS_TYPE, iter([app.metrics.render().encode()]))


def events(app: App, call: Call) -> Any:
    since = call.query.get("since", 0)
    if not call.query.get("follow"):
        return server.Stream(iter(app.events.recent(since)))
    return server.Stream(app.events.follow(since))


def sources(app: App, call: Call) -> Any:
    return app.controller.statuses() if app.controller is not None else []


def reconcile_source(app: App, call: Call) -> Any:
    name = call.params["name"]
    found = app.controller.status_of(name) if app.controller is not None else None
    if app.controller is None or found is None:
        raise errors.NotFound(f"no source named {name!r}; see GET /v1/sources")
    app.controller.trigger(name, "api")
    return found


def stacks(app: App, call: Call) -> Any:
    return [status.stack_status(app, name) for name in status.stack_names(app)]


def stack(app: App, call: Call) -> Any:
    return status.stack_status(app, call.params["stack"])


def reload(app: App, call: Call) -> Any:
    app.reload()


D = "daemon"
ROUTES: list[Route] = [
    Route(
        "GET", "/v1/version", version, "The daemon's version and roots", D, returns=T.VersionInfo
    ),
    Route(
        "GET",
        "/v1/openapi.json",
        openapi_document,
        "This API's OpenAPI document",
        D,
        raw_answer="application/json",
    ),
    Route(
        "GET",
        "/metrics",
        metrics,
        "Prometheus metrics (text format 0.0.4)",
        D,
        raw_answer=METRICS_TYPE,
    ),
    Route(
        "GET",
        "/v1/events",
        events,
        "Recent events, or (follow) every new one, as JSON lines",
        D,
        stream=T.Event,
        query=(
            Param("follow", bool, "keep streaming new events"),
            Param("since", int, "only events after this sequence number"),
        ),
    ),
    Route(
        "GET",
        "/v1/sources",
        sources,
        "The loop's sources and their status",
        D,
        returns=list[T.SourceStatus],
    ),
    Route(
        "POST",
        "/v1/sources/{name}/reconcile",
        reconcile_source,
        "Look at a source again now",
        D,
        returns=T.SourceStatus,
        status=202,
    ),
    Route(
        "GET",
        "/v1/stacks",
        stacks,
        "Every stack with its objects' state and drift",
        D,
        returns=list[T.StackStatus],
    ),
    Route(
        "GET",
        "/v1/stacks/{stack}",
        stack,
        "A stack's objects: state, health, drift",
        D,
        returns=T.StackStatus,
    ),
    Route("POST", "/v1/reload", reload, "Read the configuration file again (as SIGHUP)", D),
]
