"""Plain YAML scalars → Python values, by the YAML 1.2 core schema.

Resolved here from each scalar's text, style and tag, whatever parser backend
produced it and whatever ``%YAML`` directive the file has: ``no``, ``yes``,
``on`` and ``y`` are strings (YAML 1.2; ``restart: no`` must not become
``false``); ``0o17`` is octal and ``017`` is seventeen; there are no timestamps
(``2024-01-01`` stays a string). Quoted and block scalars are strings. Only
the core tags are accepted (``!!str``, ``!!int``, ``!!float``, ``!!bool``,
``!!null``): a manifest has no use for ``!!binary``, ``!!set`` or custom tags,
and refusing them keeps surprises out.
"""

from __future__ import annotations

import math
import re
from typing import Any

__all__ = ["STR", "TAGS_SCALAR", "TAG_MAP", "TAG_SEQ", "resolve_scalar", "short_tag"]

STR = "tag:yaml.org,2002:str"
TAGS_SCALAR = {
    STR,
    "tag:yaml.org,2002:int",
    "tag:yaml.org,2002:float",
    "tag:yaml.org,2002:bool",
    "tag:yaml.org,2002:null",
}
TAG_MAP = "tag:yaml.org,2002:map"
TAG_SEQ = "tag:yaml.org,2002:seq"

_NULL = re.compile(r"^(~|null|Null|NULL|)$")
_BOOL = {"true": True, "True": True, "TRUE": True, "false": False, "False": False, "FALSE": False}
_INT10 = re.compile(r"^[-+]?[0-9]+$")
_INT8 = re.compile(r"^0o[0-7]+$")
_INT16 = re.compile(r"^0x[0-9a-fA-F]+$")
_FLOAT = re.compile(r"^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$")
_INF = re.compile(r"^[-+]?\.(inf|Inf|INF)$")
_NAN = re.compile(r"^\.(nan|NaN|NAN)$")


def resolve_scalar(text: str, style: str | None, tag: str | None) -> Any:
    """A scalar's value under the YAML 1.2 core schema (raises ``ValueError`` for a bad tag)."""
    if tag in (None, "!"):
        if style or tag == "!":
            return text
        if _NULL.match(text):
            return None
        if text in _BOOL:
            return _BOOL[text]
        if _INT10.match(text):
            return int(text)
        if _INT8.match(text):
            return int(text[2:], 8)
        if _INT16.match(text):
            return int(text[2:], 16)
        if _FLOAT.match(text):
            return float(text)
        if _INF.match(text):
            return -math.inf if text.startswith("-") else math.inf
        if _NAN.match(text):
            return math.nan
        return text
    if tag == STR:
        return text
    if tag not in TAGS_SCALAR:
        raise ValueError(
            f"unsupported tag {short_tag(tag)!r}: only !!str, !!int, !!float, !!bool and !!null"
        )
    value: Any = resolve_scalar(text, None, None)
    short = tag.rsplit(":", 1)[-1]
    numeric = isinstance(value, int | float) and not isinstance(value, bool)
    if short == "float" and numeric:
        return float(value)
    if (
        (short == "int" and numeric and isinstance(value, int))
        or (short == "bool" and isinstance(value, bool))
        or (short == "null" and value is None)
    ):
        return value
    raise ValueError(f"{text!r} is not a valid {short}")


def short_tag(tag: str) -> str:
    return "!!" + tag[len("tag:yaml.org,2002:") :] if tag.startswith("tag:yaml.org,2002:") else tag
