"""The pure planner: desired + observed → an ordered, explained Plan."""

from reconciler.plan import canonical, model
from reconciler.plan.planner import plan, runtime_name_for

__all__ = ["canonical", "model", "plan", "runtime_name_for"]
