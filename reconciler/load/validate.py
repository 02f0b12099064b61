"""One document → a validated manifest, with pydantic's errors turned into problems.

Design choices:

* ``kind`` and ``apiVersion`` are checked here first, for messages that list
  the kinds and name the version; then the document is validated with the
  model of its kind (what ``TypeAdapter(Document)`` would pick through the
  ``kind`` discriminator, without the tag in the error locations).
* Fields are matched **by their YAML name only** (``by_name=False``): the models
  also accept snake_case names for Python callers, but in a manifest
  ``working_dir`` is a mistake ("did you mean 'workingDir'?"), not a synonym.
* Every pydantic error becomes a :class:`~reconciler.load.problems.Problem` at
  the position of the offending value (the key, for unknown fields; the
  enclosing key, for missing ones), with the camelCase path and a message that
  says what was expected and what was found. Unknown fields and bad literal
  values get the closest allowed spelling.
"""

from __future__ import annotations

import re
import types
import typing
from collections.abc import Iterator
from typing import Any

import pydantic

from reconciler.load import problems, yamltree
from schemas import manifests

__all__ = ["Manifest", "validate_document"]

Manifest = (
    manifests.ImageManifest
    | manifests.ContainerManifest
    | manifests.VolumeManifest
    | manifests.NetworkManifest
)

_MODELS: dict[str, type[pydantic.BaseModel]] = {
    "Image": manifests.ImageManifest,
    "Container": manifests.ContainerManifest,
    "Volume": manifests.VolumeManifest,
    "Network": manifests.NetworkManifest,
}

_EXPECTED = {
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
    "list_type": "a list",
    "string_type": "a string",
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "a whole number",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
}


def validate_document(
    data: Any,
    positions: yamltree.Positions,
    start: problems.SourceLocation,
    ignore: set[yamltree.Path],
) -> tuple[Manifest | None, list[problems.Problem]]:
    """The manifest in ``data``, or ``None`` and the problems that prevent it.

    ``ignore`` holds paths already reported (a failed interpolation): errors at
    or below them are not reported twice.
    """
    found: list[problems.Problem] = []
    if not isinstance(data, dict):
        found.append(
            problems.Problem(
                start,
                "",
                "expected a mapping with apiVersion, kind, metadata and spec, "
                f"got {_kind_of(data)}",
            )
        )
        return None, found
    api_version = data.get("apiVersion")
    if "apiVersion" not in data:
        found.append(
            problems.Problem(
                start, "apiVersion", f"missing apiVersion: add apiVersion: {manifests.API_VERSION}"
            )
        )
    elif api_version != manifests.API_VERSION and ("apiVersion",) not in ignore:
        found.append(
            problems.Problem(
                positions.value(("apiVersion",)),
                "apiVersion",
                f"unsupported apiVersion {api_version!r}: use {manifests.API_VERSION}",
            )
        )
    kind = data.get("kind")
    kinds = ", ".join(manifests.KINDS)
    if "kind" not in data:
        found.append(problems.Problem(start, "kind", f"missing kind: add one of {kinds}"))
        return None, found
    if not isinstance(kind, str) or kind not in _MODELS:
        if ("kind",) not in ignore:
            hint = problems.did_you_mean(kind, manifests.KINDS) if isinstance(kind, str) else ""
            found.append(
                problems.Problem(
                    positions.value(("kind",)),
                    "kind",
                    f"unknown kind {_show(kind)}{hint} (kinds: {kinds})",
                )
            )
        return None, found
    model = _MODELS[kind]
    try:
        manifest = model.model_validate(
            {**data, "apiVersion": manifests.API_VERSION}, by_alias=True, by_name=False
        )
    except pydantic.ValidationError as exc:
        for error in exc.errors(include_url=False):
            problem = _translate(error, model, data, positions, ignore)
            if problem is not None:
                found.append(problem)
        return None, found
    if found:
        return None, found
    return typing.cast(Manifest, manifest), found


def _translate(
    error: Any,
    model: type[pydantic.BaseModel],
    data: dict[str, Any],
    positions: yamltree.Positions,
    ignore: set[yamltree.Path],
) -> problems.Problem | None:
    loc: yamltree.Path = tuple(
        part for part in error["loc"] if not (isinstance(part, str) and "[" in part)
    )
    if loc and loc[0] in _MODELS:  # a discriminator tag, should a caller pass the union
        loc = loc[1:]
    loc = _refine(loc, data, error["type"])
    if any(loc[: len(bad)] == bad for bad in ignore) or loc == ("apiVersion",):
        return None
    kind, value = error["type"], error.get("input")
    path = yamltree.path_text(loc)
    if kind == "extra_forbidden":
        name = str(loc[-1])
        allowed = _fields_at(model, loc[:-1])
        hint = problems.did_you_mean(name, allowed)
        if not hint and allowed:
            hint = f"; the fields here are {problems.format_names(allowed)}"
        return problems.Problem(positions.key(loc), path, f"unknown field {name!r}{hint}")
    if kind == "missing":
        return problems.Problem(
            positions.value(loc), path, f"missing required field {str(loc[-1])!r}"
        )
    if kind in ("value_error", "assertion_error"):
        message = str(error.get("ctx", {}).get("error", error["msg"]))
    elif kind == "literal_error":
        expected = str(error.get("ctx", {}).get("expected", ""))
        options = re.findall(r"'([^']*)'", expected)
        hint = problems.did_you_mean(value, options) if isinstance(value, str) else ""
        message = f"invalid value {_show(value)}{hint} (use {expected})"
    elif kind in _EXPECTED:
        message = f"expected {_EXPECTED[kind]}, got {_show(value)}"
    else:
        text = str(error["msg"])
        message = f"{text[:1].lower()}{text[1:]}, got {_show(value)}"
    return problems.Problem(positions.value(loc), path, message)


def _refine(loc: yamltree.Path, data: dict[str, Any], kind: str) -> yamltree.Path:
    """Map a location in the *validated* ports list back to the item in the YAML.

    Short port syntax expands (``8000-8001:80-81`` is two mappings), so pydantic's
    index into ``spec.ports`` may not be the YAML's; and an unparsable short
    port fails the whole list. Both are traced back to the one item written.
    """
    if loc[:2] != ("spec", "ports"):
        return loc
    raw = data.get("spec", {}).get("ports") if isinstance(data.get("spec"), dict) else None
    if not isinstance(raw, list):
        return loc
    if len(loc) == 2 and kind == "value_error":
        for index, item in enumerate(raw):
            if isinstance(item, str):
                try:
                    manifests.parse_port_short(item)
                except ValueError:
                    return ("spec", "ports", index)
        return loc
    if len(loc) >= 3 and isinstance(loc[2], int):
        expanded = 0
        for index, item in enumerate(raw):
            size = 1
            if isinstance(item, str):
                try:
                    size = len(manifests.parse_port_short(item))
                except ValueError:
                    pass
            if loc[2] < expanded + size:
                if isinstance(item, str):  # the fields of a short form are not in the YAML
                    return ("spec", "ports", index)
                return ("spec", "ports", index, *loc[3:])
            expanded += size
    return loc


def _kind_of(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__  # pragma: no cover - YAML gives nothing else


def _show(value: Any) -> str:
    if isinstance(value, str):
        return repr(value if len(value) <= 60 else value[:57] + "...")
    if isinstance(value, bool | int | float) or value is None:
        return (
            "null"
            if value is None
            else str(value).lower()
            if isinstance(value, bool)
            else str(value)
        )
    return _kind_of(value)


# -- the allowed field names at a path, for "did you mean"


def _candidates(annotation: Any) -> Iterator[Any]:
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        yield from _candidates(typing.get_args(annotation)[0])
    elif origin is typing.Union or origin is types.UnionType:
        for arg in typing.get_args(annotation):
            yield from _candidates(arg)
    else:
        yield annotation


def _step(annotation: Any, part: str | int) -> Any:
    for candidate in _candidates(annotation):
        origin = typing.get_origin(candidate)
        if isinstance(part, int) and origin is list:
            return typing.get_args(candidate)[0]
        if isinstance(part, str) and origin is dict:
            return typing.get_args(candidate)[1]
        is_model = isinstance(candidate, type) and issubclass(candidate, pydantic.BaseModel)
        if isinstance(part, str) and is_model:
            for name, field in candidate.model_fields.items():
                if part in (field.alias, name):
                    return field.annotation
    return None


def _fields_at(model: type[pydantic.BaseModel], path: yamltree.Path) -> list[str]:
    """The YAML names of the fields of the model found at ``path`` (``[]`` if none)."""
    annotation: Any = model
    for part in path:
        annotation = _step(annotation, part)
        if annotation is None:
            return []
    for candidate in _candidates(annotation):
        if isinstance(candidate, type) and issubclass(candidate, pydantic.BaseModel):
            return [field.alias or name for name, field in candidate.model_fields.items()]
    return []
