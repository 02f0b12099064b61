"""Plans for people (Terraform-like text) and for machines (the JSON document).

Text goes to stdout; colour only when the stream is a TTY and ``NO_COLOR`` is
unset. Values of env variables never appear (the planner already withholds
them).
"""

from __future__ import annotations

import os
from typing import TextIO

from reconciler.plan import model
from reconciler.verbs import SYMBOL, VERB
from schemas import diff as diff_schema

COLOUR = {
    "create": "32",
    "update": "33",
    "recreate": "35",
    "delete": "31",
    "start": "36",
    "restart": "36",
}


def use_colour(stream: TextIO) -> bool:
    return stream.isatty() and "NO_COLOR" not in os.environ


def plan_text(plan: model.Plan, colour: bool = False) -> str:
    def paint(text: str, code: str) -> str:
        return f"\x1b[{code}m{text}\x1b[0m" if colour else text

    lines = []
    if plan.in_sync:
        lines.append(f"stack {plan.stack}: in sync, nothing to do")
    else:
        counts = plan.summary()
        parts = [f"{n} to {op}" for op, n in counts.items() if n]
        lines.append(f"stack {plan.stack}: " + ", ".join(parts))
        lines.append("")
        for action in plan.actions:
            head = f"{SYMBOL[action.op]:>3} {action.resource}"
            tail = f"  ({VERB[action.op]}; {action.category}"
            tail += ", DESTROYS DATA)" if action.destructive else ")"
            lines.append(paint(head, COLOUR[action.op]) + tail)
            for reason in action.reasons:
                lines.append(f"      {reason}")
    if plan.notes:
        lines.append("")
        lines.append("notes:")
        for note in plan.notes:
            mark = "!" if note.blocking else "-"
            lines.append(f"  {mark} {note.kind.lower()}/{note.name}: {note.message}")
    return "\n".join(lines) + "\n"


def plan_document(plan: model.Plan) -> diff_schema.DiffDocument:
    return diff_schema.DiffDocument(
        stack=plan.stack,
        in_sync=plan.in_sync,
        destructive=plan.destructive,
        summary=diff_schema.DiffSummary(**plan.summary()),
        changes=[
            diff_schema.DiffChange(
                resource=a.resource,
                kind=a.kind,
                name=a.name,
                action=a.op,
                category=a.category,
                destructive=a.destructive,
                reasons=[diff_schema.DiffReason(path=r.path, detail=r.detail) for r in a.reasons],
            )
            for a in plan.actions
        ],
        notes=[
            diff_schema.DiffNote(
                resource=f"{n.kind.lower()}/{n.name}", message=n.message, blocking=n.blocking
            )
            for n in plan.notes
        ],
    )


def plan_json(plan: model.Plan) -> str:
    return plan_document(plan).model_dump_json(by_alias=True, indent=2) + "\n"
