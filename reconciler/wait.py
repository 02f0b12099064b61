"""``apply --wait``: block until the stack is up, or say what is not.

A long-running container is up when it runs (and, once health checks are
observed, is healthy). A one-shot container — one that another container
waits on with ``condition: completed`` — is up when it has exited 0. A
container with restart ``no`` or ``on-failure`` that exited 0 by itself also
counts as done (Compose's --wait hangs or fails on those: docker/compose#10596).
A container that exited non-zero and will not be restarted fails the wait at
once; anything still short of its goal at the deadline is listed.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

from reconciler.naming import runtime_name_for
from reconciler.plan import model
from runtime import client, errors


@dataclasses.dataclass(frozen=True)
class Pending:
    name: str
    goal: str  # "running" | "completed"
    state: str  # what it is now

    def __str__(self) -> str:
        return f"container/{self.name}: wants {self.goal}, is {self.state}"


class WaitFailed(errors.Terminal):
    def __init__(self, message: str, pending: list[Pending]) -> None:
        super().__init__(message)
        self.pending = pending


class WaitTimedOut(errors.Transient):
    def __init__(self, message: str, pending: list[Pending]) -> None:
        super().__init__(message)
        self.pending = pending


def goals(desired: model.DesiredState) -> dict[str, str]:
    awaited = {
        d.name
        for c in desired.containers.values()
        for d in c.spec.depends_on
        if d.condition == "completed"
    }
    return {n: "completed" if n in awaited else "running" for n in desired.containers}


def _state(info: client.ContainerInfo | None) -> str:
    if info is None:
        return "absent"
    if info.status in ("exited", "dead"):
        return f"{info.status} ({info.exit_code})"
    return info.status


def check(
    runtime: client.RuntimeClient, desired: model.DesiredState
) -> tuple[list[Pending], list[Pending]]:
    """(still pending, failed for good) right now."""
    pending, failed = [], []
    for name, goal in sorted(goals(desired).items()):
        want = desired.containers[name]
        try:
            info: client.ContainerInfo | None = runtime.get_container(
                runtime_name_for(desired.stack, name)
            )
        except errors.NotFound:
            info = None
        item = Pending(name, goal, _state(info))
        if info is None:
            pending.append(item)
            continue
        one_shot_policy = want.spec.restart == "no" or want.spec.restart.startswith("on-failure")
        if info.status in ("exited", "dead"):
            if info.exit_code == 0 and (goal == "completed" or one_shot_policy):
                continue
            if one_shot_policy or info.operator_stopped:
                failed.append(item)
            else:
                pending.append(item)  # its shim restarts it
        elif goal == "completed" or info.status != "running":
            pending.append(item)
        elif _checked(want) and (info.health is None or info.health.status != "healthy"):
            state = info.health.status if info.health is not None else "running"
            pending.append(Pending(name, "healthy", state))
    return pending, failed


def _checked(want: model.DesiredContainer) -> bool:
    check = want.spec.healthcheck
    return check is not None and check.test[0] != "NONE"


def wait_until_up(
    runtime: client.RuntimeClient,
    desired: model.DesiredState,
    timeout: float,
    *,
    poll: float = 0.1,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> None:
    deadline = clock() + timeout
    while True:
        pending, failed = check(runtime, desired)
        if failed:
            raise WaitFailed("not up: " + "; ".join(str(p) for p in failed), failed + pending)
        if not pending:
            return
        if clock() >= deadline:
            raise WaitTimedOut(
                f"not up after {timeout:g}s: " + "; ".join(str(p) for p in pending), pending
            )
        sleep(poll)
