"""Host-wide names of a stack's objects. Pure and import-light (the CLI's
``ps`` and ``logs`` use it without loading the planner)."""

from __future__ import annotations


def runtime_name_for(stack: str, name: str) -> str:
    """``<stack>_<name>``: no DNS label has ``_``, so no two stacks' names collide."""
    return f"{stack}_{name}"
