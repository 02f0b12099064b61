"""The API's OpenAPI 3.1 document, built from the route table and the codec.

``python -m reconciler.daemon.openapi`` writes ``schemas/json/openapi.json``;
``--check`` writes nothing and exits 1 when the checked-in file is stale (a
unit test runs it). The daemon serves the same document at
``GET /v1/openapi.json``. Every operation lists the error answers it can
give, each an ``ErrorBody``; streams are ``application/x-ndjson`` whose schema
is that of one line.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
from collections.abc import Sequence
from typing import Any

from reconciler.daemon import api_daemon, api_runtime, api_stacks, api_types, codec
from reconciler.daemon.server import Route

API_VERSION = "1.0.0"
OUT = pathlib.Path(api_types.__file__).resolve().parents[2] / "schemas" / "json" / "openapi.json"

ERRORS = {
    "400": "malformed request: bad JSON, a wrong field, an invalid name",
    "404": "no such object or endpoint",
    "405": "method not allowed",
    "409": "exists already, or in the wrong state",
    "411": "a body without a length",
    "413": "the body is too large",
    "500": "the runtime failed (not the request's fault)",
    "503": "the runtime or the daemon is unavailable",
}


def routes() -> list[Route]:
    return [*api_daemon.ROUTES, *api_stacks.ROUTES, *api_runtime.ROUTES]


def _operation_id(route: Route) -> str:
    words = [route.method.lower()]
    for segment in route.segments[1:] if route.segments[0] == "v1" else route.segments:
        if segment.startswith("{"):
            words.append("by_" + segment[1:-1])
        else:
            words.append(segment.replace(".", "_").replace("-", "_"))
    return "_".join(words)


def _operation(route: Route, components: dict[str, Any]) -> dict[str, Any]:
    op: dict[str, Any] = {
        "operationId": _operation_id(route),
        "summary": route.summary,
        "tags": [route.tag],
    }
    parameters = [
        {
            "name": s[1:-1],
            "in": "path",
            "required": True,
            "schema": {"type": "string", "minLength": 1},
        }
        for s in route.segments
        if s.startswith("{")
    ]
    for param in route.query:
        entry: dict[str, Any] = {"name": param.name, "in": "query", "required": False}
        entry["schema"] = codec.schema(param.type, components)
        if param.description:
            entry["description"] = param.description
        parameters.append(entry)
    if parameters:
        op["parameters"] = parameters
    if route.body is not None:
        body_schema = codec.schema(route.body, components)
        required = any(r for _, _, _, r in codec._fields(route.body))
        op["requestBody"] = {
            "required": required,
            "content": {"application/json": {"schema": body_schema}},
        }
    elif route.raw_body is not None:
        op["requestBody"] = {
            "required": True,
            "content": {route.raw_body: {"schema": {"type": "string", "format": "binary"}}},
        }
    responses: dict[str, Any] = {}
    if route.upgrade is not None:
        responses["101"] = {"description": f"switched to {route.upgrade}"}
    elif route.stream is not None:
        responses["200"] = {
            "description": "JSON lines, one value each",
            "content": {"application/x-ndjson": {"schema": codec.schema(route.stream, components)}},
        }
    elif route.raw_answer is not None:
        responses["200"] = {
            "description": "the document",
            "content": {
                route.raw_answer: {
                    "schema": {"type": "object"}
                    if route.raw_answer == "application/json"
                    else {"type": "string"}
                }
            },
        }
    elif route.returns is None:
        responses["204"] = {"description": "done"}
    else:
        responses[str(route.status)] = {
            "description": "done",
            "content": {"application/json": {"schema": codec.schema(route.returns, components)}},
        }
    error = {"application/json": {"schema": codec.schema(api_types.ErrorBody, components)}}
    for code, text in ERRORS.items():
        responses[code] = {"description": text, "content": error}
    op["responses"] = responses
    return op


def document(version: str = API_VERSION) -> dict[str, Any]:
    components: dict[str, Any] = {}
    paths: dict[str, Any] = {}
    for route in routes():
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(route, components)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "pyreconcile daemon API",
            "version": API_VERSION,
            "description": "HTTP/1.1 on the daemon's unix socket (<run root>/pyreconcile.sock). "
            'Errors are JSON: {"message": …, "category": …}.',
        },
        "servers": [{"url": "http://localhost"}],
        "paths": dict(sorted(paths.items())),
        "components": {"schemas": dict(sorted(components.items()))},
    }


def render() -> str:
    return json.dumps(document(), indent=2, sort_keys=True) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m reconciler.daemon.openapi")
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if stale")
    parser.add_argument("--out", type=pathlib.Path, default=OUT)
    args = parser.parse_args(argv)
    text = render()
    current = args.out.read_text() if args.out.exists() else None
    if args.check:
        if current != text:
            print(f"{args.out} is stale: run python -m reconciler.daemon.openapi", file=sys.stderr)
            return 1
        return 0
    if current != text:
        args.out.write_text(text)
        print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
