"""The pure planner: desired + observed → an ordered, explained Plan."""

from reconciler.naming import runtime_name_for
from reconciler.plan import canonical, model
from reconciler.plan.planner import plan

__all__ = ["canonical", "model", "plan", "runtime_name_for"]
