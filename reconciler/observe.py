"""Read the world: what the runtime has now, as the planner's ObservedState.

Called at the start of every round; nothing is cached between rounds (STYLE:
"never infer the world from what you did last").
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Mapping
from typing import Any

from reconciler import convert
from reconciler import labels as L
from reconciler.plan import model, runtime_name_for
from runtime import client


def _applied(annotations: Mapping[str, str]) -> dict[str, Any] | None:
    text = annotations.get(L.APPLIED_SPEC)
    if not text:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def always_pulled(desired: model.DesiredState) -> list[tuple[str, str | None]]:
    """(reference, platform) of the Image objects whose pullPolicy is Always."""
    return [
        (image.reference, image.spec.platform)
        for image in desired.images.values()
        if image.spec.pull_policy == "Always" and image.spec.import_ is None
    ]


def observe(
    runtime: client.RuntimeClient,
    stack: str,
    check_remote: Iterable[tuple[str, str | None]] = (),
) -> model.ObservedState:
    """``check_remote``: (reference, platform) pairs whose registry is asked, when the
    image is present here, which image its tag names now (``ObservedImage.remote_id``)."""
    images: dict[str, model.ObservedImage] = {}
    for image in runtime.list_images():
        annotations = dict(image.annotations)
        for ref in image.references:
            images[ref] = model.ObservedImage(
                reference=ref,
                id=image.id,
                digest=image.digest,
                source_digest=annotations.get(L.IMAGE_SOURCE),
            )
    for ref, platform in check_remote:
        if ref in images:
            remote = runtime.resolve_remote(ref, platform=platform)
            images[ref] = dataclasses.replace(images[ref], remote_id=remote.image_id)

    foreign: set[tuple[str, str]] = set()
    networks: dict[str, model.ObservedObject] = {}
    for net in runtime.list_networks():
        found = _object("Network", stack, net.name, dict(net.labels), dict(net.annotations))
        if found is None:
            foreign.add(("Network", net.name))
        else:
            # drift of the host side (a bridge, veth, address or rule gone): the planner
            # asks for an update, which the engine carries out as a repair
            networks[found.name] = dataclasses.replace(found, problems=tuple(net.problems))
    volumes: dict[str, model.ObservedObject] = {}
    prefix = runtime_name_for(stack, "")
    for vol in runtime.list_volumes():
        found = _object("Volume", stack, vol.name, dict(vol.labels), dict(vol.annotations))
        owner = vol.anonymous_owner
        if found is None and owner and owner.startswith(prefix) and vol.name.startswith(prefix):
            # an anonymous volume of one of the stack's containers: kept while it is
            # desired, deleted with the stack's volumes (``delete --volumes``)
            found = model.ObservedObject(
                kind="Volume",
                name=vol.name[len(prefix) :],
                runtime_name=vol.name,
                spec_hash=None,
                applied=None,
                owner=owner[len(prefix) :],
            )
        if found is None:
            foreign.add(("Volume", vol.name))
        else:
            # a mount gone from the host (after a reboot): the runtime's update repairs it
            volumes[found.name] = dataclasses.replace(found, problems=tuple(vol.problems))
    containers: dict[str, model.ObservedContainer] = {}
    for info in runtime.list_containers():
        labels = info.labels
        if not L.is_managed_by(labels, stack, "Container"):
            foreign.add(("Container", info.name))
            continue
        name = labels.get(L.NAME, "")
        if info.name != runtime_name_for(stack, name):
            # a start-first update's new container (web.next) left by a crash: an orphan
            prefix = runtime_name_for(stack, "")
            name = info.name[len(prefix) :] if info.name.startswith(prefix) else info.name
        containers[name] = model.ObservedContainer(
            name=name,
            runtime_name=info.name,
            id=info.id,
            spec_hash=labels.get(L.SPEC_HASH),
            applied=_applied(info.annotations),
            image_id=info.image_id,
            status=info.status,
            exit_code=info.exit_code,
            operator_stopped=info.operator_stopped,
            restart_count=info.restart_count,
            config_drift=labels.get(L.CONFIG_HASH) != convert.config_digest(info.config),
            rolled_back=info.annotations.get(L.ROLLED_BACK) == "true",
        )
    return model.ObservedState(
        stack=stack,
        images=images,
        networks=networks,
        volumes=volumes,
        containers=containers,
        foreign_names=frozenset(foreign),
    )


def _object(
    kind: model.Kind,
    stack: str,
    runtime_name: str,
    labels: dict[str, str],
    annotations: dict[str, str],
) -> model.ObservedObject | None:
    if not L.is_managed_by(labels, stack, kind):
        return None
    name = labels.get(L.NAME, "")
    if runtime_name != runtime_name_for(stack, name):
        return None
    return model.ObservedObject(
        kind=kind,
        name=name,
        runtime_name=runtime_name,
        spec_hash=labels.get(L.SPEC_HASH),
        applied=_applied(annotations),
    )
