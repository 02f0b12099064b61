"""Compose-style variable interpolation in string values.

Applied to every string *value* (never to keys) after parsing, so positions
stay those of the YAML text. The syntax is Compose's (compose-spec
``12-interpolation.md``), which is a subset of the POSIX shell's:

=====================  =======================================================
``$$``                 a literal ``$``
``$VAR``, ``${VAR}``   the value; unset → empty string, with a warning
``${VAR:-default}``    ``default`` when VAR is unset *or empty*
``${VAR-default}``     ``default`` when VAR is unset
``${VAR:?message}``    an error with ``message`` when VAR is unset or empty
``${VAR?message}``     an error with ``message`` when VAR is unset
``${VAR:+other}``      ``other`` when VAR is set and not empty, else empty
``${VAR+other}``       ``other`` when VAR is set, else empty
=====================  =======================================================

Defaults, messages and alternatives may themselves contain interpolations;
they are expanded only when used. Any other ``$`` (``$1``, ``$(date)``, a
trailing ``$``) is an error that says to write ``$$``, as in Compose: silently
keeping it would make ``$HOME`` and ``$(HOME)`` behave differently for no
visible reason. Values that come out of interpolation are not re-parsed as
YAML: ``"${PORT}"`` stays a string, and the models convert it where a number is
expected.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import Any

from reconciler.load import problems, yamltree

__all__ = ["InterpolationError", "Result", "interpolate", "interpolate_tree"]

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_OPERATORS = (":-", ":?", ":+", "-", "?", "+")


class InterpolationError(ValueError):
    """A syntax error or a required variable without a value."""


def interpolate(text: str, variables: Mapping[str, str], unset: list[str] | None = None) -> str:
    """``text`` with its variables replaced; names of unset variables used are appended to
    ``unset`` (Compose warns about them)."""
    if "$" not in text:
        return text
    return _Expander(text, variables, unset if unset is not None else []).expand(0, len(text))


class _Expander:
    def __init__(self, text: str, variables: Mapping[str, str], unset: list[str]) -> None:
        self.text = text
        self.variables = variables
        self.unset = unset

    def expand(self, start: int, end: int) -> str:
        text, out, i = self.text, [], start
        while i < end:
            j = text.find("$", i, end)
            if j < 0:
                out.append(text[i:end])
                break
            out.append(text[i:j])
            nxt = text[j + 1] if j + 1 < end else ""
            if nxt == "$":
                out.append("$")
                i = j + 2
            elif nxt == "{":
                close = self._closing(j + 2, end)
                out.append(self._braced(j, close))
                i = close + 1
            else:
                match = _NAME.match(text, j + 1, end)
                if not match:
                    shown = text[j : j + 2] if nxt else "$"
                    raise InterpolationError(
                        f"invalid interpolation {shown!r} at character {j + 1}: "
                        "use $VAR or ${VAR}, and write $$ for a literal $"
                    )
                out.append(self._lookup(match.group()))
                i = match.end()
        return "".join(out)

    def _closing(self, start: int, end: int) -> int:
        """The index of the ``}`` that closes the ``${`` just before ``start``."""
        text, depth, i = self.text, 0, start
        while i < end:
            if text.startswith("$$", i):
                i += 2
                continue
            if text.startswith("${", i):
                depth += 1
                i += 2
                continue
            if text[i] == "}":
                if depth == 0:
                    return i
                depth -= 1
            i += 1
        raise InterpolationError(f"unclosed '${{' at character {start - 1}: add the closing '}}'")

    def _lookup(self, name: str) -> str:
        if name in self.variables:
            return self.variables[name]
        self.unset.append(name)
        return ""

    def _braced(self, dollar: int, close: int) -> str:
        text = self.text
        match = _NAME.match(text, dollar + 2, close)
        if not match:
            raise InterpolationError(
                f"invalid interpolation {text[dollar : close + 1]!r}: "
                "expected a variable name (letters, digits, _) after '${'"
            )
        name, rest = match.group(), match.end()
        if rest == close:
            return self._lookup(name)
        op = next((o for o in _OPERATORS if text.startswith(o, rest)), None)
        if op is None:
            raise InterpolationError(
                f"invalid interpolation {text[dollar : close + 1]!r}: after the name use "
                "}, :-, -, :?, ?, :+ or +"
            )
        word = (rest + len(op), close)
        is_set = name in self.variables
        value = self.variables.get(name, "")
        usable = is_set and (value != "" or not op.startswith(":"))
        if op.endswith("-"):
            return value if usable else self.expand(*word)
        if op.endswith("+"):
            return self.expand(*word) if usable else ""
        if usable:
            return value
        message = self.expand(*word)
        what = "is not set" if not is_set else "is empty"
        raise InterpolationError(
            f"required variable {name} {what}" + (f": {message}" if message else "")
        )


@dataclasses.dataclass
class Result:
    """The interpolated data, what went wrong (errors), what to warn about, and the paths
    whose value failed (the validator ignores its own complaints about those)."""

    data: Any
    errors: list[problems.Problem]
    warnings: list[problems.Problem]
    failed: set[yamltree.Path]


def interpolate_tree(
    data: Any, variables: Mapping[str, str], positions: yamltree.Positions
) -> Result:
    """Interpolate every string value in ``data`` (a new structure; ``data`` is not changed)."""
    result = Result(None, [], [], set())

    def walk(value: Any, path: yamltree.Path) -> Any:
        if isinstance(value, str):
            if "$" not in value:
                return value
            unset: list[str] = []
            try:
                out = interpolate(value, variables, unset)
            except InterpolationError as exc:
                result.errors.append(
                    problems.Problem(positions.value(path), yamltree.path_text(path), str(exc))
                )
                result.failed.add(path)
                return value
            for name in dict.fromkeys(unset):
                result.warnings.append(
                    problems.Problem(
                        positions.value(path),
                        yamltree.path_text(path),
                        f"variable {name} is not set: using an empty string "
                        f"(set it, or write ${{{name}:-default}})",
                    )
                )
            return out
        if isinstance(value, dict):
            return {k: walk(v, (*path, k)) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v, (*path, i)) for i, v in enumerate(value)]
        return value

    result.data = walk(data, ())
    return result
