"""How a plan's operations are shown: a symbol and a verb each (Terraform's
``+``, ``~``, ``-/+``…). Light on purpose: the CLI's daemon fast path prints
progress with them without importing the planner."""

from __future__ import annotations

__all__ = ["SYMBOL", "VERB"]

SYMBOL = {
    "create": "+",
    "update": "~",
    "recreate": "-/+",
    "delete": "-",
    "start": ">",
    "restart": "~>",
}
VERB = {
    "create": "create",
    "update": "update in place",
    "recreate": "recreate",
    "delete": "delete",
    "start": "start",
    "restart": "restart",
}
