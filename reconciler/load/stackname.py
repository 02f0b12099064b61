"""Which stack the manifests belong to.

In order: the ``stack`` argument (``--stack``); else ``metadata.stack`` of the
documents; else the name of the directory of the first ``-f`` path (for a
directory argument, that directory; for stdin, the current directory),
normalised as Compose normalises project names: lowercase, every run of
characters other than ``a-z0-9`` turned into one ``-``, trimmed, at most 63
characters, so that it is a DNS label (``My_App.v2`` → ``my-app-v2``).

Documents that set ``metadata.stack`` must agree with each other, even when
the argument overrides them: two values mean files of two stacks were mixed.
Only a derived name is normalised; a name the user wrote must already be valid.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence

from reconciler.load import problems

__all__ = ["choose_stack", "normalize_stack_name"]

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def normalize_stack_name(text: str) -> str:
    """A DNS label made from a directory name (``""`` when nothing usable is left)."""
    name = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return name[:63].rstrip("-")


def _directory_of(first: str) -> str:
    if first == "-":
        return os.getcwd()
    absolute = os.path.abspath(first)
    return absolute if os.path.isdir(absolute) else os.path.dirname(absolute)


def choose_stack(
    explicit: str | None,
    declared: Sequence[tuple[str, problems.SourceLocation]],
    paths: Sequence[str],
) -> tuple[str, list[problems.Problem]]:
    """The stack name and the problems with it (``""`` when there is none)."""
    found: list[problems.Problem] = []
    if declared:
        first_name, first_at = declared[0]
        for name, where in declared[1:]:
            if name != first_name:
                found.append(
                    problems.Problem(
                        where,
                        "metadata.stack",
                        f"stack {name!r} differs from {first_name!r} at {first_at}: "
                        "all documents of a stack must name the same one",
                    )
                )
                break
    if explicit is not None:
        if len(explicit) > 63 or not _DNS_LABEL.match(explicit):
            found.append(
                problems.Problem(
                    None,
                    "",
                    f"invalid stack name {explicit!r}: use 1-63 lowercase letters, digits "
                    "and '-', starting and ending with a letter or digit",
                )
            )
        return explicit, found
    if declared:
        return declared[0][0], found
    if not paths:
        return "", found
    directory = _directory_of(paths[0])
    name = normalize_stack_name(os.path.basename(directory))
    if not name:
        found.append(
            problems.Problem(
                None,
                "",
                f"cannot name the stack after the directory {directory!r}: "
                "pass --stack NAME or set metadata.stack",
            )
        )
    return name, found
