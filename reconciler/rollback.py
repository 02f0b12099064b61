"""``pyreconcile rollback NAME``: back to the container's previously applied spec."""

from __future__ import annotations

from reconciler import convert, history
from reconciler import labels as L
from reconciler.naming import runtime_name_for
from runtime import client, errors


def rollback(runtime: client.RuntimeClient, stack: str, name: str) -> client.ContainerInfo:
    """Recreate ``stack/name`` from the newest entry of its history (stop-first).

    Refused before anything changes when there is no history or its image is gone.
    """
    runtime_name = runtime_name_for(stack, name)
    current = runtime.get_container(runtime_name)
    if not L.is_managed_by(current.labels, stack, "Container"):
        raise errors.FailedPrecondition(f"container {runtime_name} is not managed by pyreconcile")
    past = history.entries(current)
    if not past:
        raise errors.FailedPrecondition(
            f"container {stack}/{name} has no earlier applied spec to roll back to"
        )
    want, image_id = history.desired_from(past[-1], name)
    try:
        runtime.get_image(image_id)
    except errors.NotFound:
        raise errors.FailedPrecondition(
            f"cannot roll back {stack}/{name}: the image it ran then ({image_id[:19]}) is gone"
        ) from None
    now = history.entry_of(current)
    kept = past[:-1] + ([now] if now is not None else [])
    config = convert.container_config(
        stack,
        want,
        image_id,
        {},
        {L.HISTORY: history.encode(kept), L.ROLLED_BACK: "true"},
    )
    runtime.stop_container(runtime_name, current.config.stop_grace_period)
    runtime.remove_container(runtime_name, force=True)
    runtime.create_container(config)
    return runtime.start_container(runtime_name)
