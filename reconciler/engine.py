"""Apply, diff and delete a stack: converge by repetition.

``apply`` observes, plans, executes, and observes again until the plan is
empty (STYLE: "compute the next steps, do them, look again"). An action that
comes back after it was carried out in this same apply (a container that
exits at once after every start) is not repeated: apply stops and reports it,
rather than loop.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from reconciler import execute, logs, observe
from reconciler.plan import model, planner
from runtime import client, errors

log = logs.get_logger(__name__)

MAX_ROUNDS = 6


@dataclasses.dataclass(frozen=True)
class ApplyResult:
    first_plan: model.Plan
    final_plan: model.Plan
    rounds: int
    executed: tuple[model.Action, ...]

    @property
    def converged(self) -> bool:
        return self.final_plan.in_sync


class NotConverged(errors.Terminal):
    def __init__(self, message: str, plan: model.Plan) -> None:
        super().__init__(message)
        self.plan = plan


Guard = Callable[[model.Plan, model.ObservedState], None]
"""Called with the first plan and what it was made from, before anything changes."""


def observe_and_plan(
    runtime: client.RuntimeClient,
    desired: model.DesiredState,
    options: model.PlanOptions | None = None,
) -> tuple[model.ObservedState, model.Plan]:
    observed = observe.observe(runtime, desired.stack, observe.always_pulled(desired))
    return observed, planner.plan(desired, observed, options)


def diff(
    runtime: client.RuntimeClient,
    desired: model.DesiredState,
    options: model.PlanOptions | None = None,
) -> model.Plan:
    return observe_and_plan(runtime, desired, options)[1]


def apply(
    runtime: client.RuntimeClient,
    desired: model.DesiredState,
    plan_options: model.PlanOptions | None = None,
    execute_options: execute.ExecuteOptions | None = None,
    on_event: execute.Event | None = None,
    max_rounds: int = MAX_ROUNDS,
    guard: Guard | None = None,
) -> ApplyResult:
    plan_options = plan_options or model.PlanOptions()
    execute_options = execute_options or execute.ExecuteOptions()
    executed: list[model.Action] = []
    done: set[tuple[str, str, str]] = set()
    first: model.Plan | None = None
    bound = log.bind(stack=desired.stack)
    for round_no in range(1, max_rounds + 1):
        observed, current = observe_and_plan(runtime, desired, plan_options)
        if first is None:
            first = current
            if guard is not None:
                guard(current, observed)
            execute.check_allowed(current, execute_options)
        if current.in_sync:
            return ApplyResult(first, current, round_no, tuple(executed))
        repeated = [a for a in current.actions if (a.op, a.kind, a.name) in done]
        if repeated:
            detail = "; ".join(
                f"{a.op} {a.resource}: {'; '.join(str(r) for r in a.reasons)}" for a in repeated
            )
            raise NotConverged(
                f"did not converge: still needed after being done: {detail}", current
            )
        bound.debug("round_planned", round=round_no, actions=len(current.actions))
        execute.Executor(runtime, desired, execute_options, _logged(on_event)).run(current)
        for action in current.actions:
            done.add((action.op, action.kind, action.name))
            executed.append(action)
    final = diff(runtime, desired, plan_options)
    if not final.in_sync:
        raise NotConverged(f"did not converge in {max_rounds} rounds", final)
    assert first is not None
    return ApplyResult(first, final, max_rounds, tuple(executed))


def _logged(on_event: execute.Event | None) -> execute.Event:
    def emit(event: str, action: model.Action, detail: str) -> None:
        if event == "action_done":
            log.info(
                "change_applied",
                op=action.op,
                resource=action.resource,
                category=action.category,
            )
        if on_event is not None:
            on_event(event, action, detail)

    return emit


def delete_stack(
    runtime: client.RuntimeClient,
    stack: str,
    *,
    volumes: bool = False,
    on_event: execute.Event | None = None,
) -> model.Plan:
    """Remove every managed object of the stack (volumes only when asked)."""
    empty = model.DesiredState(stack=stack)
    options = model.PlanOptions(prune=True, prune_volumes=volumes)
    plan = diff(runtime, empty, options)
    execute.Executor(
        runtime, empty, execute.ExecuteOptions(allow_data_loss=volumes), _logged(on_event)
    ).run(plan)
    return plan
