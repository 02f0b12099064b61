"""Plain data ↔ JSON for the API: one type-driven codec, and the JSON Schema of each type.

The API's bodies are the runtime client's frozen dataclasses
(``runtime.client``) and the daemon's own (``reconciler.daemon.api_types``).
One walk over the type hints does three jobs, so the wire format, the checks of
what comes in and the OpenAPI document cannot disagree:

- :func:`encode` — a value of a type → JSON data: fields in camelCase, tuples
  as arrays, a tuple of ``(key, value)`` string pairs (labels, env,
  annotations) as a JSON object in the same order;
- :func:`decode` — JSON data → a value of the type, strictly: unknown fields,
  missing required fields and wrong types raise :class:`CodecError` with the
  field path (the server answers 400 with it);
- :func:`schema` — the JSON Schema of the type, dataclasses as
  ``#/components/schemas/<Name>`` references.

Why not pydantic (STYLE asks for it at boundaries): the CLI decodes every
answer, and importing pydantic costs more than the whole ``ps`` round trip; the
runtime's types are stdlib dataclasses already. Stdlib only.
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from collections.abc import Mapping
from typing import Any, Literal, Union

__all__ = ["CodecError", "camel", "decode", "encode", "schema"]

_NONE = type(None)


class CodecError(ValueError):
    """Data that does not fit the type: ``path`` is where (``config.mounts[0].target``)."""

    def __init__(self, path: str, message: str) -> None:
        self.path = path
        self.message = message
        super().__init__(f"{path}: {message}" if path else message)


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


@functools.cache
def _fields(cls: type) -> tuple[tuple[str, str, Any, bool], ...]:
    """(python name, JSON name, type, required) of a dataclass."""
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        out.append((f.name, camel(f.name), hints[f.name], required))
    return tuple(out)


@functools.cache
def _json_names(cls: type) -> dict[str, tuple[str, Any, bool]]:
    return {j: (p, t, r) for p, j, t, r in _fields(cls)}


def _is_pairs(tp: Any) -> bool:
    """``tuple[tuple[str, str], ...]``: a mapping kept as ordered pairs."""
    if typing.get_origin(tp) is not tuple:
        return False
    args = typing.get_args(tp)
    return len(args) == 2 and args[1] is Ellipsis and args[0] == tuple[str, str]


def _union_args(tp: Any) -> tuple[Any, ...] | None:
    origin = typing.get_origin(tp)
    if origin is Union or origin is types.UnionType:
        return typing.get_args(tp)
    return None


def encode(value: Any, tp: Any = Any) -> Any:
    """``value`` (of type ``tp``) as JSON data."""
    if value is None:
        return None
    if tp is Any:
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            return encode(value, type(value))
        if isinstance(value, (list, tuple)):
            return [encode(v) for v in value]
        if isinstance(value, Mapping):
            return {str(k): encode(v) for k, v in value.items()}
        return value
    union = _union_args(tp)
    if union is not None:
        for arg in union:
            if arg is not _NONE and _fits(value, arg):
                return encode(value, arg)
        return encode(value)
    if dataclasses.is_dataclass(tp):
        return {j: encode(getattr(value, p), t) for p, j, t, _ in _fields(tp)}  # type: ignore[arg-type]
    if _is_pairs(tp):
        return {k: v for k, v in value}
    origin = typing.get_origin(tp)
    if origin in (tuple, list):
        args = typing.get_args(tp)
        if origin is tuple and args and args[-1] is not Ellipsis:
            return [encode(v, a) for v, a in zip(value, args, strict=True)]
        item = args[0] if args else Any
        return [encode(v, item) for v in value]
    if origin in (dict, Mapping) or tp in (dict, Mapping):
        args = typing.get_args(tp)
        item = args[1] if args else Any
        return {str(k): encode(v, item) for k, v in value.items()}
    return value


def _fits(value: Any, tp: Any) -> bool:
    if tp is Any:
        return True
    if dataclasses.is_dataclass(tp):
        return isinstance(value, tp)  # type: ignore[arg-type]
    origin = typing.get_origin(tp)
    if origin is Literal:
        return value in typing.get_args(tp)
    if origin is not None:
        return isinstance(value, origin)
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, tp)


def decode(data: Any, tp: Any, path: str = "") -> Any:
    """JSON ``data`` as a value of ``tp``; :class:`CodecError` when it does not fit."""
    union = _union_args(tp)
    if union is not None:
        if data is None:
            if _NONE in union:
                return None
            raise CodecError(path, "must not be null")
        errors = []
        for arg in union:
            if arg is _NONE:
                continue
            try:
                return decode(data, arg, path)
            except CodecError as exc:
                errors.append(exc.message)
        raise CodecError(path, " or ".join(dict.fromkeys(errors)))
    if tp is Any:
        return data
    if dataclasses.is_dataclass(tp):
        return _decode_dataclass(data, tp, path)  # type: ignore[arg-type]
    if _is_pairs(tp):
        if not isinstance(data, dict):
            raise CodecError(path, "expected an object of strings")
        for k, v in data.items():
            if not isinstance(v, str):
                raise CodecError(_join(path, k), "expected a string")
        return tuple((str(k), v) for k, v in data.items())
    origin = typing.get_origin(tp)
    if origin is Literal:
        choices = typing.get_args(tp)
        if data not in choices or isinstance(data, bool) != isinstance(choices[0], bool):
            raise CodecError(path, f"expected one of {', '.join(repr(c) for c in choices)}")
        return data
    if origin in (tuple, list):
        if not isinstance(data, list):
            raise CodecError(path, "expected an array")
        args = typing.get_args(tp)
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(data) != len(args):
                raise CodecError(path, f"expected an array of {len(args)} items")
            pairs = enumerate(zip(data, args, strict=True))
            return tuple(decode(v, a, f"{path}[{i}]") for i, (v, a) in pairs)
        item = args[0] if args else Any
        values = [decode(v, item, f"{path}[{i}]") for i, v in enumerate(data)]
        return tuple(values) if origin is tuple else values
    if origin in (dict, Mapping) or tp in (dict, Mapping):
        if not isinstance(data, dict):
            raise CodecError(path, "expected an object")
        args = typing.get_args(tp)
        item = args[1] if args else Any
        return {k: decode(v, item, _join(path, k)) for k, v in data.items()}
    return _decode_scalar(data, tp, path)


def _decode_scalar(data: Any, tp: Any, path: str) -> Any:
    if tp is bool:
        if isinstance(data, bool):
            return data
        raise CodecError(path, "expected true or false")
    if tp is int:
        if isinstance(data, int) and not isinstance(data, bool):
            return data
        raise CodecError(path, "expected an integer")
    if tp is float:
        if isinstance(data, (int, float)) and not isinstance(data, bool):
            if data != data or data in (float("inf"), float("-inf")):
                raise CodecError(path, "expected a finite number")
            return float(data)
        raise CodecError(path, "expected a number")
    if tp is str:
        if isinstance(data, str):
            if "\0" in data:
                raise CodecError(path, "must not contain NUL characters")
            return data
        raise CodecError(path, "expected a string")
    if tp is _NONE:
        if data is None:
            return None
        raise CodecError(path, "expected null")
    raise TypeError(f"codec: unsupported type {tp!r}")  # a bug in the API's types


def _decode_dataclass(data: Any, cls: type, path: str) -> Any:
    if not isinstance(data, dict):
        raise CodecError(path, f"expected an object ({cls.__name__})")
    names = _json_names(cls)
    values: dict[str, Any] = {}
    for key, value in data.items():
        found = names.get(key)
        if found is None:
            known = ", ".join(sorted(names))
            raise CodecError(_join(path, key), f"unknown field (known: {known})")
        values[found[0]] = decode(value, found[1], _join(path, key))
    for key, (_, _, required) in names.items():
        if required and names[key][0] not in values:
            raise CodecError(_join(path, key), "is required")
    try:
        return cls(**values)
    except (TypeError, ValueError) as exc:
        raise CodecError(path, str(exc)) from None


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def schema(tp: Any, components: dict[str, Any]) -> dict[str, Any]:
    """The JSON Schema of ``tp``; dataclasses are added to ``components`` and referenced."""
    union = _union_args(tp)
    if union is not None:
        options = [schema(a, components) for a in union if a is not _NONE]
        base: dict[str, Any] = options[0] if len(options) == 1 else {"anyOf": options}
        if _NONE in union:
            return {"anyOf": [base, {"type": "null"}]} if "$ref" in base else _nullable(base)
        return base
    if tp is Any:
        return {}
    if dataclasses.is_dataclass(tp):
        name = tp.__name__  # type: ignore[union-attr]
        if name not in components:
            components[name] = {}  # recursion guard
            props = {}
            required = []
            for _, j, t, r in _fields(tp):  # type: ignore[arg-type]
                props[j] = schema(t, components)
                if r:
                    required.append(j)
            body: dict[str, Any] = {
                "type": "object",
                "properties": props,
                "additionalProperties": False,
            }
            if required:
                body["required"] = required
            doc = (tp.__doc__ or "").strip()
            if doc and not doc.startswith(f"{name}("):
                body["description"] = doc.split("\n\n")[0].replace("\n", " ")
            components[name] = body
        return {"$ref": f"#/components/schemas/{name}"}
    if _is_pairs(tp):
        return {"type": "object", "additionalProperties": {"type": "string"}}
    origin = typing.get_origin(tp)
    if origin is Literal:
        choices = list(typing.get_args(tp))
        kind = "boolean" if isinstance(choices[0], bool) else "string"
        return {"type": kind, "enum": choices}
    if origin in (tuple, list):
        args = typing.get_args(tp)
        if origin is tuple and args and args[-1] is not Ellipsis:
            return {
                "type": "array",
                "prefixItems": [schema(a, components) for a in args],
                "minItems": len(args),
                "maxItems": len(args),
            }
        return {"type": "array", "items": schema(args[0] if args else Any, components)}
    if origin in (dict, Mapping) or tp in (dict, Mapping):
        args = typing.get_args(tp)
        return {
            "type": "object",
            "additionalProperties": schema(args[1] if args else Any, components),
        }
    scalar = {bool: "boolean", int: "integer", float: "number", str: "string"}.get(tp)
    if scalar is None:
        raise TypeError(f"codec: unsupported type {tp!r}")
    return {"type": scalar}


def _nullable(base: dict[str, Any]) -> dict[str, Any]:
    kind = base.get("type")
    if isinstance(kind, str) and "enum" not in base:
        return {**base, "type": [kind, "null"]}
    return {"anyOf": [base, {"type": "null"}]}
