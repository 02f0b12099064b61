"""What ``apply``, ``diff`` and ``delete`` print, and the exit codes they end
with: one wording whether the engine ran in this process, in a daemon through
the typed client, or through the daemon fast path (:mod:`reconciler.cli.quick`).
Stdlib only (the fast path must not import click or the planner)."""

from __future__ import annotations

from collections.abc import Iterable, Sized

from reconciler.verbs import SYMBOL, VERB

__all__ = [
    "applied_lines",
    "deleted_lines",
    "diff_exit_code",
    "problems_found",
    "progress_line",
]

Note = tuple[str, str, str]  # kind, name, message


def applied_lines(stack: str, executed: int, rounds: int, notes: Iterable[Note]) -> list[str]:
    """``apply``'s summary (stdout)."""
    if executed:
        lines = [
            f"stack {stack}: applied {executed} change{'s' if executed != 1 else ''}, "
            f"in sync after {rounds} round{'s' if rounds != 1 else ''}"
        ]
    else:
        lines = [f"stack {stack}: in sync, nothing to do"]
    return lines + [f"  - {kind.lower()}/{name}: {message}" for kind, name, message in notes]


def deleted_lines(stack: str, count: int, notes: Iterable[Note]) -> list[str]:
    """``delete``'s summary (stdout)."""
    lines = [f"stack {stack}: deleted {count} object{'s' if count != 1 else ''}"]
    return lines + [f"  - {kind.lower()}/{name}: {message}" for kind, name, message in notes]


def progress_line(
    event: str, op: str | None, resource: str | None, detail: str, *, quiet: bool = False
) -> str | None:
    """A progress line of an apply or delete (stderr), or None for an event not shown.
    A notice (``detail``) is shown even when ``quiet``; the actions' lines are not."""
    if event == "notice":
        return detail
    if quiet:
        return None
    if event == "action_started" and op in SYMBOL and resource:
        return f"{SYMBOL[op]:>3} {resource}: {VERB[op]}…"
    if event == "action_failed":
        return f"  ! {resource}: {detail}"
    return None


def problems_found(problems: Sized) -> str:
    """The last line of a load that failed (after one line per problem)."""
    n = len(problems)
    return f"{n} problem{'s' if n != 1 else ''} found; nothing was changed"


def diff_exit_code(
    *,
    in_sync: bool,
    blocked: bool,
    destructive: bool,
    exit_code_style: str,
    fail_on_destructive: bool,
) -> int:
    """``diff``'s exit code: terraform style 0 in sync, 2 changes, 1 blocked (error);
    ``diff`` style 0, 1, 2; 3 for a destructive plan with ``--fail-on-destructive``."""
    error_code = 1 if exit_code_style == "terraform" else 2
    if blocked:
        return error_code
    if fail_on_destructive and destructive:
        return 3
    if in_sync:
        return 0
    return 2 if exit_code_style == "terraform" else 1
