"""Durations and quantities as users write them (``5s``, ``1m30s``, ``64Mi``).

Pure functions and annotated types; the canonical form after validation is a
number (seconds as ``float``, bytes as ``int``), so that ``10s`` and ``10``
compare equal and never show up as a phantom change.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BeforeValidator, WithJsonSchema

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h|d)")
_DURATION_SECONDS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
    "d": 86400.0,
}

_QUANTITY = re.compile(r"^(\d+(?:\.\d+)?)\s*([kKmMgGtTpP]i?|[bB]|[kKmMgGtT][bB])?$")
_QUANTITY_FACTOR = {
    "": 1,
    "b": 1,
    "k": 10**3,
    "m": 10**6,
    "g": 10**9,
    "t": 10**12,
    "p": 10**15,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "tb": 10**12,
    "ki": 2**10,
    "mi": 2**20,
    "gi": 2**30,
    "ti": 2**40,
    "pi": 2**50,
}


def parse_duration(value: Any) -> float:
    """Seconds from ``1m30s``, ``500ms``, ``10`` (bare numbers are seconds)."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 10s, 1m30s or 500ms, not a boolean")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError("a duration cannot be negative")
        return float(value)
    if not isinstance(value, str):
        raise ValueError("expected a duration such as 10s, 1m30s or 500ms")
    text = value.strip()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    pos, total = 0, 0.0
    for match in _DURATION_PART.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _DURATION_SECONDS[match.group(2)]
        pos = match.end()
    if pos != len(text) or not text:
        raise ValueError(
            f"invalid duration {value!r}: use a number with a unit, such as 10s, 1m30s or 500ms"
        )
    return total


def parse_quantity(value: Any) -> int:
    """Bytes from ``64Mi``, ``1G``, ``512k``, ``1048576``."""
    if isinstance(value, bool):
        raise ValueError("expected a size such as 64Mi, 1G or 512k, not a boolean")
    if isinstance(value, int):
        if value < 0:
            raise ValueError("a size cannot be negative")
        return value
    if isinstance(value, float) and value.is_integer() and value >= 0:
        return int(value)
    if not isinstance(value, str):
        raise ValueError("expected a size such as 64Mi, 1G or 512k")
    match = _QUANTITY.match(value.strip())
    if not match:
        raise ValueError(
            f"invalid size {value!r}: use a number with a unit, such as 64Mi, 1G or 512k"
        )
    number, unit = match.group(1), (match.group(2) or "").lower()
    return int(float(number) * _QUANTITY_FACTOR[unit])


Duration = Annotated[
    float,
    BeforeValidator(parse_duration),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "number", "minimum": 0},
                {"type": "string", "pattern": r"^(\d+(\.\d+)?(ns|us|µs|ms|s|m|h|d)?)+$"},
            ],
            "description": "seconds, or a duration such as 10s, 1m30s, 500ms",
        }
    ),
]
Quantity = Annotated[
    int,
    BeforeValidator(parse_quantity),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "integer", "minimum": 0},
                {
                    "type": "string",
                    "pattern": r"^\d+(\.\d+)?\s*([kKmMgGtTpP]i?|[bB]|[kKmMgGtT][bB])?$",
                },
            ],
            "description": "bytes, or a size such as 64Mi, 1G, 512k",
        }
    ),
]
