"""Run a plan's actions in phases, independent ones in parallel (bounded).

Phases follow the plan's order: images; networks and volumes; orphan
containers deleted; containers; orphan networks; orphan volumes. Inside a
phase, the actions of one object run one after another (an update, then a
start), objects run in parallel, and a container starts only after the
containers it ``dependsOn`` have finished their own actions. The first failure
stops new work; what is running finishes; the first error is raised (the
next round re-plans from what is then observed).
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Callable, Iterable

from reconciler.plan import model

_PHASES: tuple[tuple[tuple[str, ...], tuple[str, ...]], ...] = (
    (("Image",), ("create", "update")),
    (("Network", "Volume"), ("create", "update", "recreate")),
    (("Container",), ("delete",)),
    (("Container",), ("create", "recreate", "update", "start", "restart")),
    (("Network",), ("delete",)),
    (("Volume",), ("delete",)),
)


def phases(actions: Iterable[model.Action]) -> list[list[model.Action]]:
    """The actions grouped by phase, each group in plan order; none is lost."""
    groups: list[list[model.Action]] = [[] for _ in _PHASES]
    for action in actions:
        for index, (kinds, ops) in enumerate(_PHASES):
            if action.kind in kinds and action.op in ops:
                groups[index].append(action)
                break
        else:  # pragma: no cover - every (kind, op) the planner makes has a phase
            raise ValueError(f"no phase for {action.op} {action.resource}")
    return [g for g in groups if g]


def _depends_on(action: model.Action) -> set[str]:
    if isinstance(action.desired, model.DesiredContainer):
        return {d.name for d in action.desired.spec.depends_on}
    return set()


def run_phase(
    actions: list[model.Action],
    do: Callable[[model.Action], None],
    parallelism: int,
) -> None:
    units: dict[tuple[str, str], list[model.Action]] = {}
    for action in actions:
        units.setdefault((action.kind, action.name), []).append(action)
    waits = {
        key: {(key[0], d) for a in unit for d in _depends_on(a) if (key[0], d) in units}
        for key, unit in units.items()
    }

    def run_unit(unit: list[model.Action]) -> None:
        for action in unit:
            do(action)

    if parallelism <= 1 or len(units) == 1:
        for key in _order(waits):
            run_unit(units[key])
        return
    first_error: BaseException | None = None
    done: set[tuple[str, str]] = set()
    with concurrent.futures.ThreadPoolExecutor(max_workers=parallelism) as pool:
        running: dict[concurrent.futures.Future[None], tuple[str, str]] = {}
        waiting = dict(waits)
        while waiting or running:
            if first_error is None:
                for key in sorted(k for k, deps in waiting.items() if deps <= done):
                    running[pool.submit(run_unit, units[key])] = key
                    del waiting[key]
            if not running:
                break  # a cycle (the loader refuses them) or a failure stopped new work
            finished, _ = concurrent.futures.wait(
                running, return_when=concurrent.futures.FIRST_COMPLETED
            )
            for future in finished:
                key = running.pop(future)
                error = future.exception()
                if error is not None and first_error is None:
                    first_error = error
                done.add(key)
    if first_error is not None:
        raise first_error
    if waiting:
        names = ", ".join(f"{k[0].lower()}/{k[1]}" for k in sorted(waiting))
        raise RuntimeError(f"dependency cycle among {names}")


def _order(waits: dict[tuple[str, str], set[tuple[str, str]]]) -> list[tuple[str, str]]:
    """Keys so that each comes after what it waits for (ties by name)."""
    order: list[tuple[str, str]] = []
    placed: set[tuple[str, str]] = set()
    pending = dict(waits)
    while pending:
        ready = sorted(k for k, deps in pending.items() if deps <= placed)
        if not ready:  # a cycle: keep the plan's order for the rest
            ready = sorted(pending)
        for key in ready:
            order.append(key)
            placed.add(key)
            del pending[key]
    return order
