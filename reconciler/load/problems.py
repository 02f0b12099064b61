"""What the loader reports: a problem at a place in a file, and the error that carries them all.

The loader never stops at the first mistake: every stage (YAML, interpolation,
validation, files, cross-document references) adds :class:`Problem` values to
one list, and :func:`reconciler.load.load_stack` raises a single
:class:`LoadError` holding all of them, in file order. ``LoadError`` is an
``InvalidSpec`` (the input is wrong; fix it and retry), so callers that branch
on ``runtime.errors`` categories treat it like any other invalid request.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Iterable

from runtime import errors

__all__ = ["LoadError", "Problem", "SourceLocation", "did_you_mean", "format_names"]


@dataclasses.dataclass(frozen=True, order=True)
class SourceLocation:
    """A place in an input: 1-based line and column; ``file`` is ``"-"`` for stdin.

    ``file`` is the path as the user named it (``deploy/web.yaml``), so that
    messages read like the command line that produced them.
    """

    file: str
    line: int
    column: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


@dataclasses.dataclass(frozen=True)
class Problem:
    """One mistake in the input.

    ``path`` is the field path in camelCase with dots and ``[i]``
    (``spec.mounts[1].target``), or ``""`` for the document or the file as a
    whole. ``location`` is ``None`` only for problems that have no place in a
    file (a bad ``--stack`` argument, no manifest given).
    """

    location: SourceLocation | None
    path: str
    message: str

    def __str__(self) -> str:
        parts = []
        if self.location is not None:
            parts.append(str(self.location))
        if self.path:
            parts.append(self.path)
        parts.append(self.message)
        return ": ".join(parts)


class LoadError(errors.InvalidSpec):
    """The manifests cannot be loaded; ``problems`` lists every mistake found."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems: tuple[Problem, ...] = tuple(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """``", did you mean 'networks'?"`` for the closest choice, or ``""`` when none is close."""
    matches = difflib.get_close_matches(word, sorted(set(choices)), n=1, cutoff=0.6)
    return f", did you mean {matches[0]!r}?" if matches else ""


def format_names(names: Iterable[str]) -> str:
    """``"backend, frontend"``, sorted; ``"none"`` for an empty collection."""
    ordered = sorted(set(names))
    return ", ".join(ordered) if ordered else "none"
