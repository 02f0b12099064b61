"""desired + observed → Plan. Pure: no I/O, no logging, no clock.

The order of the returned actions is the order of execution:

1. images (imports and pulls),
2. networks and volumes (creates, recreates, in-place updates),
3. orphan containers deleted (frees names, ports and volumes),
4. containers in ``dependsOn`` order (create, recreate, update, start),
5. orphan networks, then orphan volumes (only with ``prune_volumes``).

A container whose image is about to be imported or pulled is not judged in
this round (its image id is unknown): the executor re-plans after every phase,
and a note says so. The loop converges because every action makes the next
observation closer to the desired state, and re-planning from scratch never
repeats an action whose effect is already visible.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from reconciler.naming import runtime_name_for
from reconciler.plan import canonical, model
from schemas import manifests


def plan(
    desired: model.DesiredState,
    observed: model.ObservedState,
    options: model.PlanOptions | None = None,
) -> model.Plan:
    options = options or model.PlanOptions()
    actions: list[model.Action] = []
    notes: list[model.Note] = []

    notes.extend(_foreign_conflicts(desired, observed))
    image_actions = list(_plan_images(desired, observed))
    actions.extend(image_actions)
    pending_images = {
        a.desired.reference for a in image_actions if isinstance(a.desired, model.DesiredImage)
    }

    recreated: set[tuple[str, str]] = set()
    pairs: tuple[tuple[model.Kind, Mapping[str, Any], Mapping[str, model.ObservedObject]], ...] = (
        ("Network", desired.networks, observed.networks),
        ("Volume", desired.volumes, observed.volumes),
    )
    for kind, wanted, seen in pairs:
        for name in sorted(wanted):
            action = _plan_object(kind, wanted[name], seen.get(name))
            if action is not None:
                actions.append(action)
                if action.op == "recreate":
                    recreated.add((kind, name))

    if options.prune:
        for name in sorted(set(observed.containers) - set(desired.containers), reverse=True):
            actions.append(model.Action("delete", "Container", name, "orphan", (_ORPHAN,)))

    for name in _dependency_order(desired.containers):
        want = desired.containers[name]
        seen_container = observed.containers.get(name)
        if want.image_ref in pending_images:
            if seen_container is not None:
                notes.append(
                    model.Note(
                        "Container",
                        name,
                        f"judged again after image {want.image_ref} is imported or pulled",
                    )
                )
            else:
                actions.append(
                    model.Action("create", "Container", name, "missing", (_MISSING,), desired=want)
                )
            continue
        image = observed.images.get(want.image_ref)
        container_actions, note = _plan_container(
            want,
            seen_container,
            image.id if image else None,
            recreated,
            options,
            _namespace_networks(desired),
        )
        actions.extend(container_actions)
        if note is not None:
            notes.append(note)

    actions = _restart_dependents(desired, actions)

    if options.prune:
        for name in sorted(set(observed.networks) - set(desired.networks)):
            actions.append(model.Action("delete", "Network", name, "orphan", (_ORPHAN,)))
        for name in sorted(set(observed.volumes) - set(desired.volumes)):
            owner = observed.volumes[name].owner
            if owner is not None and owner in desired.containers:
                continue  # an anonymous volume of a desired container: it stays with it
            if options.prune_volumes:
                reason = _ORPHAN if owner is None else _anonymous_orphan(owner)
                actions.append(
                    model.Action("delete", "Volume", name, "orphan", (reason,), destructive=True)
                )
            else:
                what = (
                    "no longer desired"
                    if owner is None
                    else f"an anonymous volume of container {owner}, which is no longer desired"
                )
                notes.append(
                    model.Note(
                        "Volume",
                        name,
                        f"{what}; kept because volumes hold data "
                        "(apply --prune-volumes removes it)",
                    )
                )
    actions, held = _hold_suspended(desired, actions)
    notes.extend(held)
    return model.Plan(desired.stack, tuple(actions), tuple(notes))


_MISSING = model.Reason("", "not present")
_ORPHAN = model.Reason("", "managed by this stack but no longer desired")


def _anonymous_orphan(owner: str) -> model.Reason:
    return model.Reason("", f"an anonymous volume of container {owner}, no longer desired")


_OUT_OF_BAND = model.Reason(
    "", "its runtime configuration was changed outside pyreconcile (out-of-band spec drift)"
)


def _hold_suspended(
    desired: model.DesiredState, actions: list[model.Action]
) -> tuple[list[model.Action], list[model.Note]]:
    """Drop the actions on suspended objects (metadata.suspend); say what waits."""
    if not desired.suspended:
        return actions, []
    kept: list[model.Action] = []
    held: dict[tuple[model.Kind, str], list[model.Action]] = {}
    for action in actions:
        key = (action.kind, action.name)
        if key in desired.suspended:
            held.setdefault(key, []).append(action)
        else:
            kept.append(action)
    notes = [
        model.Note(
            kind,
            name,
            "reconciling is suspended (metadata.suspend); held back: "
            + "; ".join(
                f"{a.op} ({', '.join(str(r) for r in a.reasons)})" for a in held[(kind, name)]
            ),
        )
        for kind, name in sorted(held)
    ]
    return kept, notes


def _foreign_conflicts(
    desired: model.DesiredState, observed: model.ObservedState
) -> Iterable[model.Note]:
    groups: tuple[tuple[model.Kind, Mapping[str, Any]], ...] = (
        ("Container", desired.containers),
        ("Network", desired.networks),
        ("Volume", desired.volumes),
    )
    for kind, names in groups:
        for name in sorted(names):
            runtime_name = runtime_name_for(desired.stack, name)
            if (kind, runtime_name) in observed.foreign_names:
                yield model.Note(
                    kind,
                    name,
                    f"{kind.lower()} {runtime_name!r} exists and is not managed by this stack; "
                    "remove or rename it, or rename this object",
                    blocking=True,
                )


def _plan_images(
    desired: model.DesiredState, observed: model.ObservedState
) -> Iterable[model.Action]:
    wanted: dict[str, model.DesiredImage] = {}
    for image in desired.images.values():
        wanted.setdefault(image.reference, image)
    for container in desired.containers.values():
        if container.image_ref not in wanted:
            wanted[container.image_ref] = model.DesiredImage(
                name=container.image_ref,
                reference=container.image_ref,
                spec=manifests.ImageSpec(ref=container.image_ref),
            )
    for reference in sorted(wanted, key=lambda r: wanted[r].name):
        image = wanted[reference]
        seen = observed.images.get(reference)
        if seen is None:
            how = (
                f"import from {image.spec.import_.path}"
                if image.spec.import_
                else "pull from its registry"
            )
            yield model.Action(
                "create",
                "Image",
                image.name,
                "missing",
                (model.Reason("", f"{reference} is not present locally; {how}"),),
                desired=image,
            )
        elif image.spec.import_ is None and seen.remote_id and seen.remote_id != seen.id:
            # pullPolicy Always: the registry was asked (by observe) and the tag moved
            yield model.Action(
                "update",
                "Image",
                image.name,
                "image",
                (
                    model.Reason(
                        reference,
                        f"the registry's tag now names image {_short(seen.remote_id)} "
                        f"(here: {_short(seen.id)}); pull it",
                    ),
                ),
                desired=image,
            )
        elif (
            image.spec.import_ and image.source_digest and seen.source_digest != image.source_digest
        ):
            yield model.Action(
                "update",
                "Image",
                image.name,
                "external",
                (
                    model.Reason(
                        f"file {image.spec.import_.path}",
                        f"changed ({_short(seen.source_digest)} → {_short(image.source_digest)})",
                    ),
                ),
                desired=image,
            )


def _plan_object(
    kind: model.Kind,
    want: model.DesiredNetwork | model.DesiredVolume,
    seen: model.ObservedObject | None,
) -> model.Action | None:
    record = canonical.object_record(want.spec, want.metadata_labels)
    essence_hash = canonical.spec_hash(canonical.object_essence(record))
    destructive = kind == "Volume"
    if seen is None:
        return model.Action(
            "create",
            kind,
            want.name,
            "missing",
            (_MISSING,),
            desired=want,
            spec_hash=essence_hash,
            applied=record,
        )
    applied = seen.applied or {}
    if seen.spec_hash != essence_hash:
        spec_model = type(want.spec)
        reasons = canonical.differences(
            canonical.object_essence(canonical.expanded(applied, spec_model)),
            canonical.object_essence(canonical.expanded(record, spec_model)),
            strip="spec.",
        ) or [model.Reason("", "spec hash differs from the recorded one")]
        if destructive:
            reasons.append(model.Reason("", "recreating a volume deletes its data"))
        return model.Action(
            "recreate",
            kind,
            want.name,
            "spec",
            tuple(reasons),
            destructive=destructive,
            desired=want,
            spec_hash=essence_hash,
            applied=record,
        )
    label_changes = canonical.differences(
        {"labels": applied.get("labels", {})}, {"labels": record.get("labels", {})}
    )
    # a network whose bridge, veth, address or firewall rules went missing on the host:
    # the runtime's update of a network repairs its host side
    drift = [model.Reason("host", problem) for problem in seen.problems]
    if label_changes or drift:
        return model.Action(
            "update",
            kind,
            want.name,
            "spec" if label_changes else "runtime",
            (*label_changes, *drift),
            desired=want,
            spec_hash=essence_hash,
            applied=record,
        )
    return None


def _plan_container(
    want: model.DesiredContainer,
    seen: model.ObservedContainer | None,
    image_id: str | None,
    recreated: set[tuple[str, str]],
    options: model.PlanOptions,
    namespace_networks: frozenset[str] = frozenset(("host", "none")),
) -> tuple[list[model.Action], model.Note | None]:
    """A create or a recreate alone; else an in-place update and/or a start."""
    record = canonical.container_record(want, image_id)
    essence_hash = canonical.spec_hash(canonical.container_essence(record))

    def action(
        op: model.Op, category: model.Category, reasons: Iterable[model.Reason]
    ) -> model.Action:
        return model.Action(
            op,
            "Container",
            want.name,
            category,
            tuple(reasons),
            desired=want,
            spec_hash=essence_hash,
            applied=record,
        )

    if seen is None:
        return [action("create", "missing", (_MISSING,))], None
    applied: Mapping[str, Any] = seen.applied or {}
    if seen.rolled_back and options.respect_overrides:
        return [], model.Note(
            "Container",
            want.name,
            "rolled back by an operator; self-heal leaves it until the next apply",
        )
    if seen.spec_hash != essence_hash:
        reasons, category = _recreate_reasons(applied, record)
        if want.spec.update.strategy == "start-first":
            blocker = overlap_blocker(want.spec)
            if blocker is not None:
                reasons.append(
                    model.Reason(
                        "update.strategy", f"start-first not possible ({blocker}): stop-first"
                    )
                )
        if seen.rolled_back:
            reasons.append(model.Reason("", "rolled back by an operator; apply rolls it forward"))
        return [action("recreate", category, reasons)], None
    dependencies = _recreated_dependencies(want, recreated, applied)
    if dependencies:
        return [action("recreate", "spec", dependencies)], None
    if seen.config_drift:
        return [action("recreate", "spec", (_OUT_OF_BAND,))], None
    actions = []
    in_place: list[model.Reason] = []
    blocker = None
    if applied != record:  # the same record has nothing to update: skip reading both back
        before = canonical.expanded(applied, manifests.ContainerSpec)
        after = canonical.expanded(record, manifests.ContainerSpec)
        in_place = canonical.differences(_in_place(before), _in_place(after), strip="spec.")
        blocker = _network_change_blocker(
            before.get("spec", {}).get("networks") or [],
            after.get("spec", {}).get("networks") or [],
            namespace_networks,
        )
    if blocker is not None:
        reasons = [r for r in in_place if r.path.startswith("networks")]
        reasons.append(model.Reason("networks", blocker))
        return [action("recreate", "spec", reasons)], None
    if in_place:
        actions.append(action("update", "spec", in_place))
    start, note = _runtime_drift(want, seen, options)
    if start is not None:
        actions.append(start)
    return actions, note


_PAST = {"recreate": "is recreated", "restart": "is restarted"}


def _namespace_networks(desired: model.DesiredState) -> frozenset[str]:
    """Network names that decide a container's namespace (host, none): joining or
    leaving one needs a new container."""
    return frozenset(
        {"host", "none"}
        | {n for n, net in desired.networks.items() if net.spec.driver in ("host", "none")}
    )


def _network_change_blocker(
    before: list[dict[str, Any]], after: list[dict[str, Any]], namespaced: frozenset[str]
) -> str | None:
    """Why a change of a container's networks cannot be made by connecting and
    disconnecting it (None: it can, or nothing changed).

    Live changes keep the order of the networks that stay (the first one holds the
    default route) and add new ones at the end; a move to or from host, none or
    no network at all changes the namespace itself.
    """
    if before == after:
        return None
    old = [n.get("name") for n in before]
    new = [n.get("name") for n in after]
    if not old or not new:
        return "joining the first network or leaving the last one needs a new container"
    if any(n in namespaced for n in (*old, *new)):
        return "a change of host or none networking needs a new container"
    kept = [n for n in old if n in new]
    if not kept:
        return "leaving every network it is on needs a new container"
    if new[: len(kept)] != kept:
        return "a new order of networks (the first holds the default route) needs a new container"
    by_name = {n.get("name"): n for n in before}
    changed = [
        n.get("name") for n in after if n.get("name") in by_name and by_name[n.get("name")] != n
    ]
    if changed:
        return f"a changed alias or address on network {changed[0]} needs a new container"
    return None


def overlap_blocker(spec: manifests.ContainerSpec) -> str | None:
    """Why two copies of this container cannot run at once (start-first), or None."""
    fixed = [p for p in spec.ports if p.host_port]
    if fixed:
        return f"fixed host port {fixed[0].host_port}/{fixed[0].protocol}"
    static = [n for n in spec.networks if n.ipv4_address]
    if static:
        return f"static address {static[0].ipv4_address} on network {static[0].name}"
    return None


def _restart_dependents(
    desired: model.DesiredState, actions: list[model.Action]
) -> list[model.Action]:
    """Add a restart after every container whose dependency (``dependsOn`` with
    ``restart: true``) is recreated or restarted, unless it is itself created,
    recreated or started by the plan. Walks the dependency order, so a chain
    a → b → c restarts both b and c."""
    touched = {
        a.name: a.op
        for a in actions
        if a.kind == "Container" and a.op in ("create", "recreate", "start", "restart")
    }
    result = list(actions)
    for name in _dependency_order(desired.containers):
        want = desired.containers[name]
        if name in touched:
            continue
        causes = [
            d.name
            for d in want.spec.depends_on
            if d.restart and touched.get(d.name) in ("recreate", "restart")
        ]
        if not causes:
            continue
        reasons = tuple(model.Reason(f"dependency {c}", _PAST[touched[c]]) for c in causes)
        restart = model.Action("restart", "Container", name, "spec", reasons, desired=want)
        last = max(
            (i for i, a in enumerate(result) if a.kind == "Container" and a.name == name),
            default=None,
        )
        result.insert(len(result) if last is None else last + 1, restart)
        touched[name] = "restart"
    return result


def _recreate_reasons(
    applied: Mapping[str, Any], record: Mapping[str, Any]
) -> tuple[list[model.Reason], model.Category]:
    if not applied:
        return [model.Reason("", "no applied spec recorded; spec hash differs")], "spec"
    before = canonical.container_essence(canonical.expanded(applied, manifests.ContainerSpec))
    after = canonical.container_essence(canonical.expanded(record, manifests.ContainerSpec))
    spec_reasons = canonical.differences(before["spec"], after["spec"])
    reasons = list(spec_reasons)
    image_changed = before.get("imageId") != after.get("imageId")
    if image_changed:
        reasons.append(
            model.Reason(
                "image", f"digest {_short(before.get('imageId'))} → {_short(after.get('imageId'))}"
            )
        )
    file_reasons = [
        model.Reason(f"file {path}", detail)
        for path, detail in _file_changes(before.get("files", {}), after.get("files", {}))
    ]
    reasons.extend(file_reasons)
    if not reasons:
        reasons.append(model.Reason("", "spec hash differs from the recorded one"))
    category: model.Category = (
        "spec"
        if spec_reasons or not (image_changed or file_reasons)
        else "image"
        if image_changed
        else "external"
    )
    return reasons, category


def _file_changes(before: Mapping[str, str], after: Mapping[str, str]) -> list[tuple[str, str]]:
    changes = []
    for path in sorted(set(before) | set(after)):
        if path not in before:
            changes.append((path, "added"))
        elif path not in after:
            changes.append((path, "no longer referenced"))
        elif before[path] != after[path]:
            changes.append((path, f"changed ({_short(before[path])} → {_short(after[path])})"))
    return changes


def _in_place(record: Mapping[str, Any]) -> dict[str, Any]:
    spec = record.get("spec", {})
    part: dict[str, Any] = {"spec": {k: spec[k] for k in canonical.CONTAINER_IN_PLACE if k in spec}}
    if record.get("labels"):
        part["labels"] = record["labels"]
    return part


def _recreated_dependencies(
    want: model.DesiredContainer,
    recreated: set[tuple[str, str]],
    applied: Mapping[str, Any] | None = None,
) -> list[model.Reason]:
    """The recreated networks and volumes the container uses now or will use: the
    executor removes a recreated object's users first, so they must be created again."""
    reasons = []
    now = [n.get("name") for n in ((applied or {}).get("spec", {}).get("networks") or [])]
    for name in dict.fromkeys([*(a.name for a in want.spec.networks), *now]):
        if ("Network", name) in recreated:
            reasons.append(model.Reason(f"network {name}", "is recreated"))
    for mount in want.spec.mounts:
        if mount.type == "volume" and mount.source and ("Volume", mount.source) in recreated:
            reasons.append(model.Reason(f"volume {mount.source}", "is recreated"))
    return reasons


def _runtime_drift(
    want: model.DesiredContainer, seen: model.ObservedContainer, options: model.PlanOptions
) -> tuple[model.Action | None, model.Note | None]:
    if seen.status in ("running", "restarting", "paused"):
        return None, None
    if seen.operator_stopped:
        if options.respect_overrides:
            return None, model.Note(
                "Container",
                want.name,
                "stopped by an operator; self-heal leaves it stopped until apply or start",
            )
        reason = model.Reason("", "stopped by an operator; apply starts it again")
    elif seen.status == "created":
        reason = model.Reason("", "created but not started")
    elif seen.status == "dead":
        reason = model.Reason("", "its shim was lost (exit 137); start it again")
    elif seen.exit_code == 0 and not want.spec.restart.startswith(("always", "unless-stopped")):
        return None, None  # a one-shot that completed is converged
    else:
        reason = model.Reason("", f"exited with code {seen.exit_code}")
    return (
        model.Action("start", "Container", want.name, "runtime", (reason,), desired=want),
        None,
    )


def _dependency_order(containers: Mapping[str, model.DesiredContainer]) -> list[str]:
    """Names so that every container comes after what it depends on (ties by name).

    The loader rejects cycles; a cycle here still yields every name once.
    """
    order: list[str] = []
    state: dict[str, int] = {}

    def visit(name: str) -> None:
        if state.get(name) is not None:
            return
        state[name] = 0
        for dep in sorted(d.name for d in containers[name].spec.depends_on):
            if dep in containers and state.get(dep) is None:
                visit(dep)
        state[name] = 1
        order.append(name)

    for name in sorted(containers):
        visit(name)
    return order


def _short(digest: Any) -> str:
    if not isinstance(digest, str):
        return "(none)"
    algo, _, hexpart = digest.partition(":")
    return f"{algo}:{hexpart[:12]}" if hexpart else digest[:12]
