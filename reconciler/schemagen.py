"""Generate the JSON Schemas in ``schemas/json/`` from the pydantic models.

``python -m reconciler.schemagen`` writes every schema of :data:`SCHEMAS`;
``--check`` writes nothing, names the files that are stale or missing and exits
1 (CI runs it; a unit test does too). Other modules add their schemas (the
``diff --output json`` document, for instance) by adding an entry to
:data:`SCHEMAS`: a name and a function returning the schema.

Design choices:

* **Draft-07**, with ``definitions`` instead of 2020-12's ``$defs``: it is the
  draft every consumer reads (yaml-language-server, IntelliJ, ``jsonschema``'s
  ``Draft7Validator``, the Compose spec), and the models need nothing newer.
* **What YAML accepts, not only the canonical form.** The models take short
  forms through before-validators (``ports: ["8080:80"]``, ``mounts:
  ["data:/data"]``, ``networks: [backend]``, ``dependsOn: [db]``, a command as a
  string, env as a ``KEY=value`` list, numbers as env values) which pydantic's
  schema does not show; the tables below add them, so that an editor does not
  flag valid manifests. A table entry that no longer matches the models fails
  the generation (the tables cannot silently rot).
* Stable output: sorted keys, two-space indent, a trailing newline; field
  titles that pydantic derives from names ("Dependson") are dropped,
  descriptions kept.
"""

from __future__ import annotations

import argparse
import copy
import json
import pathlib
import sys
from collections.abc import Callable, Sequence
from typing import Any

import pydantic

from schemas import diff as diff_models
from schemas import manifests

__all__ = ["BASE_ID", "OUT_DIR", "SCHEMAS", "check", "main", "render", "write"]

DRAFT = "http://json-schema.org/draft-07/schema#"
#: Where the schemas are published (the README's modeline uses this address).
BASE_ID = "https://raw.githubusercontent.com/pyreconcile/pyreconcile/main/schemas/json/"
OUT_DIR = pathlib.Path(manifests.__file__).resolve().parent / "json"

_REF = "#/definitions/{model}"

_SCALAR = {"type": ["string", "number", "boolean"]}
_STRING_MAP = {
    "anyOf": [
        {"type": "object", "additionalProperties": _SCALAR},
        {
            "type": "array",
            "items": {"type": "string", "pattern": "^[^=]+="},
            "description": "KEY=value entries",
        },
    ]
}
_ARGV = {
    "anyOf": [
        {"type": "array", "items": {"type": ["string", "number", "boolean"]}},
        {"type": "string", "description": "split into words as a shell would"},
    ]
}

#: (definition, property) → the schema of what YAML may give there.
_PROPERTIES: dict[tuple[str, str], dict[str, Any]] = {
    ("Metadata", "labels"): _STRING_MAP,
    ("Metadata", "annotations"): _STRING_MAP,
    ("ContainerSpec", "env"): _STRING_MAP,
    ("ContainerSpec", "labels"): _STRING_MAP,
    ("VolumeSpec", "driverOpts"): _STRING_MAP,
    ("ContainerSpec", "entrypoint"): {"anyOf": [*_ARGV["anyOf"], {"type": "null"}]},
    ("ContainerSpec", "command"): {"anyOf": [*_ARGV["anyOf"], {"type": "null"}]},
    ("Healthcheck", "test"): _ARGV,
    ("ContainerSpec", "stopSignal"): {
        "anyOf": [{"type": "string"}, {"type": "integer", "minimum": 1}, {"type": "null"}]
    },
    ("ContainerSpec", "ports"): {
        "type": "array",
        "items": {
            "anyOf": [
                {"type": "integer", "minimum": 1, "maximum": 65535},
                {
                    "type": "string",
                    "description": "[ip:][hostPort:]containerPort[/protocol], ranges allowed",
                },
                {"$ref": "#/definitions/PortMapping"},
            ]
        },
    },
    ("Mount", "mode"): {
        "anyOf": [
            {"type": "integer", "minimum": 0},
            {"type": "string", "pattern": "^[0-7]+$"},
            {"type": "null"},
        ]
    },
}

#: definition → (the short string form accepted in its place, a description of both).
_SHORT_FORMS: dict[str, tuple[dict[str, Any], str]] = {
    "Mount": (
        {
            "type": "string",
            "description": "source:target[:ro|rw], or a target alone (an anonymous volume)",
        },
        "a named or anonymous volume, a bind mount of a host path, or a tmpfs",
    ),
    "NetworkAttachment": (
        {"type": "string", "description": "a network's name"},
        "a network to join: its name, or a mapping with name, aliases, ipv4Address",
    ),
    "Dependency": (
        {"type": "string", "description": "a container's name"},
        "a container to wait for: its name, or a mapping with name and condition",
    ),
}


def _finish(schema: dict[str, Any], name: str, title: str, description: str) -> dict[str, Any]:
    schema = copy.deepcopy(schema)
    definitions = schema.pop("$defs", {})
    for (model, prop), replacement in _PROPERTIES.items():
        if model not in definitions:
            continue  # not part of this schema (a Volume has no ContainerSpec)
        properties = definitions[model]["properties"]
        if prop not in properties:
            raise KeyError(f"schemagen: {model}.{prop} is gone from the models; update _PROPERTIES")
        kept = {k: v for k, v in properties[prop].items() if k in ("default", "description")}
        properties[prop] = {**copy.deepcopy(replacement), **kept}
    for model, (short, about) in _SHORT_FORMS.items():
        if model in definitions:
            definitions[model] = {"anyOf": [short, definitions[model]], "description": about}
    _drop_field_titles(definitions)
    _drop_field_titles(schema)
    if definitions:
        schema["definitions"] = definitions
    schema["$schema"] = DRAFT
    schema["$id"] = BASE_ID + f"{name}.schema.json"
    schema["title"] = title
    schema["description"] = description
    return schema


def _drop_field_titles(node: Any) -> None:
    if isinstance(node, dict):
        properties = node.get("properties")
        if isinstance(properties, dict):
            for prop in properties.values():
                if isinstance(prop, dict):
                    prop.pop("title", None)
        for value in node.values():
            _drop_field_titles(value)
    elif isinstance(node, list):
        for value in node:
            _drop_field_titles(value)


def document_schema() -> dict[str, Any]:
    """Any pyreconcile document (the one to use in editors: it picks the kind)."""
    raw = pydantic.TypeAdapter(manifests.Document).json_schema(by_alias=True, ref_template=_REF)
    return _finish(
        raw,
        "document",
        "pyreconcile document",
        f"one document of a pyreconcile stack ({manifests.API_VERSION}): "
        + ", ".join(manifests.KINDS),
    )


def _kind_schema(model: type[pydantic.BaseModel], kind: str) -> Callable[[], dict[str, Any]]:
    def build() -> dict[str, Any]:
        raw = model.model_json_schema(by_alias=True, ref_template=_REF)
        return _finish(
            raw,
            kind.lower(),
            f"pyreconcile {kind}",
            f"a {kind} document of a pyreconcile stack ({manifests.API_VERSION})",
        )

    return build


#: name → function returning the schema, written to ``schemas/json/<name>.schema.json``.
def diff_schema() -> dict[str, Any]:
    """The document `pyreconcile diff --output json` prints (schemas.diff)."""
    schema = diff_models.DiffDocument.model_json_schema(
        by_alias=True, mode="serialization", ref_template=_REF
    )
    return _finish(
        schema,
        "diff",
        "pyreconcile diff output",
        "The plan of `pyreconcile diff --output json`, versioned by schemaVersion.",
    )


SCHEMAS: dict[str, Callable[[], dict[str, Any]]] = {
    "diff": diff_schema,
    "document": document_schema,
    "image": _kind_schema(manifests.ImageManifest, "Image"),
    "container": _kind_schema(manifests.ContainerManifest, "Container"),
    "volume": _kind_schema(manifests.VolumeManifest, "Volume"),
    "network": _kind_schema(manifests.NetworkManifest, "Network"),
}


def render(name: str) -> str:
    """The text of one schema file: sorted keys, two-space indent, a final newline."""
    return json.dumps(SCHEMAS[name](), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def _path(out_dir: pathlib.Path, name: str) -> pathlib.Path:
    return out_dir / f"{name}.schema.json"


def check(out_dir: pathlib.Path = OUT_DIR) -> list[pathlib.Path]:
    """The schema files that are missing or differ from what the models generate."""
    stale = []
    for name in sorted(SCHEMAS):
        path = _path(out_dir, name)
        try:
            current = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            current = None
        if current != render(name):
            stale.append(path)
    return stale


def write(out_dir: pathlib.Path = OUT_DIR) -> list[pathlib.Path]:
    """Write the schemas that changed; returns the files written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for path in check(out_dir):
        name = path.name.removesuffix(".schema.json")
        tmp = path.with_suffix(".tmp")
        tmp.write_text(render(name), encoding="utf-8")
        tmp.replace(path)
        written.append(path)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m reconciler.schemagen",
        description="write the JSON Schemas of the manifests into schemas/json/",
    )
    parser.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 if a file is stale"
    )
    parser.add_argument("--out", type=pathlib.Path, default=OUT_DIR, help="output directory")
    args = parser.parse_args(argv)
    if args.check:
        stale = check(args.out)
        for path in stale:
            print(
                f"stale: {path} (regenerate with: python -m reconciler.schemagen)",
                file=sys.stderr,
            )
        return 1 if stale else 0
    for path in write(args.out):
        print(f"wrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
