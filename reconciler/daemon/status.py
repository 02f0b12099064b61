"""Stacks and their objects as the API shows them: state, health, drift, the source.

Re-read on every request (STYLE: status is observed, never remembered): the
runtime's records, and, for a stack the loop keeps, the plan against the
revision in force (with ``respect_overrides``, as the loop plans), which gives
each object's pending change and why.
"""

from __future__ import annotations

from reconciler import labels as L
from reconciler.daemon import api_types as T
from reconciler.daemon.app import App
from reconciler.plan import model
from runtime import client, errors


def stack_names(app: App) -> list[str]:
    names: set[str] = set()
    for c in app.runtime.list_containers():
        if c.labels.get(L.MANAGED) == "true" and c.labels.get(L.STACK):
            names.add(c.labels[L.STACK])
    for n in app.runtime.list_networks():
        labels = dict(n.labels)
        if labels.get(L.MANAGED) == "true" and labels.get(L.STACK):
            names.add(labels[L.STACK])
    for v in app.runtime.list_volumes():
        labels = dict(v.labels)
        if labels.get(L.MANAGED) == "true" and labels.get(L.STACK):
            names.add(labels[L.STACK])
    if app.controller is not None:
        names.update(s.stack for s in app.controller.statuses() if s.stack)
    return sorted(names)


def _state(info: client.ContainerInfo) -> str:
    if info.status in ("exited", "dead"):
        text = f"{info.status} ({info.exit_code})"
        return text + ", stopped by operator" if info.operator_stopped else text
    return info.status


def stack_status(app: App, stack: str) -> T.StackStatus:
    from reconciler import observe
    from reconciler.plan import planner

    key = app.controller.key_of_stack(stack) if app.controller is not None else None
    source = app.controller.status_of(key) if app.controller is not None and key else None
    desired = app.controller.desired_of(key) if app.controller is not None and key else None
    observed = observe.observe(app.runtime, stack)
    plan = (
        planner.plan(desired, observed, model.PlanOptions(respect_overrides=True))
        if desired is not None
        else None
    )
    pending: dict[tuple[str, str], model.Action] = {}
    for action in plan.actions if plan is not None else ():
        pending[(action.kind, action.name)] = action
    infos = {c.name: c for c in app.runtime.list_containers()}
    objects: list[T.ObjectStatus] = []

    def add(
        kind: str,
        name: str,
        runtime_name: str | None,
        spec_hash: str | None,
        state: str,
        health: str | None = None,
    ) -> None:
        action = pending.pop((kind, name), None)
        objects.append(
            T.ObjectStatus(
                kind=kind,
                name=name,
                runtime_name=runtime_name,
                spec_hash=spec_hash,
                state=state,
                health=health,
                drift=action.category if action is not None else None,
                reasons=tuple(str(r) for r in action.reasons) if action is not None else (),
            )
        )

    for name, seen in sorted(observed.networks.items()):
        add(
            "Network",
            name,
            seen.runtime_name,
            seen.spec_hash,
            "degraded" if seen.problems else "present",
        )
    for name, seen in sorted(observed.volumes.items()):
        add(
            "Volume",
            name,
            seen.runtime_name,
            seen.spec_hash,
            "degraded" if seen.problems else "present",
        )
    for name, c in sorted(observed.containers.items()):
        info = infos.get(c.runtime_name)
        state = _state(info) if info is not None else c.status
        health = info.health.status if info is not None and info.health is not None else None
        add("Container", name, c.runtime_name, c.spec_hash, state, health)
    for (kind, name), action in sorted(pending.items()):
        if kind == "Image":
            continue
        objects.append(
            T.ObjectStatus(
                kind=kind,
                name=name,
                runtime_name=None,
                spec_hash=None,
                state="missing",
                drift=action.category,
                reasons=tuple(str(r) for r in action.reasons),
            )
        )
    if not objects and source is None:
        raise errors.NotFound(f"no stack named {stack!r}; see GET /v1/stacks")
    notes = tuple(
        T.NoteView(n.kind, n.name, n.message, n.blocking) for n in (plan.notes if plan else ())
    )
    return T.StackStatus(stack=stack, source=source, objects=tuple(objects), notes=notes)
