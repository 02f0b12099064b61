"""Replacing a container that exists: stop-first or start-first, health-gated,
rolled back when the new one does not prove itself.

- **stop-first** (the default, Compose's way): the old container stops, the
  new one starts. If the container has a health check, the new one must turn
  healthy (or at least not exit) within its check's own budget
  (startPeriod + (retries + 1) * interval + timeout); if it does not, the
  previous spec is put back at once (``rollback``) and the apply fails with
  the reason.
- **start-first**: the new container starts beside the old one under a
  temporary name (``<name>.next``; its service names are not published on its
  networks yet), must pass the same gate (without a check: stay up for
  ``settle_seconds``), then takes the name (and the service's names) while the
  old one, renamed ``<name>.old``, still answers; then the old one stops. If
  the gate fails, the new container is removed and the old one never stopped.
  Two at once is possible only without fixed host ports and
  static addresses; otherwise stop-first is used (the plan says so).
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from reconciler import convert, history, rollback
from reconciler import labels as L
from reconciler.naming import runtime_name_for
from reconciler.plan import model, planner
from runtime import client, errors

if TYPE_CHECKING:
    from reconciler.execute import Executor

NEXT_SUFFIX = ".next"  # not a DNS label character: no object can be called this
RETIRED_SUFFIX = ".old"


class UpdateFailed(errors.Terminal):
    """The new container did not prove itself; the old spec is back (or never left)."""


def recreate(ex: Executor, action: model.Action) -> None:
    want = action.desired
    assert isinstance(want, model.DesiredContainer)
    name = runtime_name_for(ex.stack, want.name)
    image = ex.runtime.get_image(want.image_ref)  # fails early if the image is gone
    try:
        old: client.ContainerInfo | None = ex.runtime.get_container(name)
    except errors.NotFound:
        old = None
    kept = {L.HISTORY: history.pushed(old)} if old is not None else {}
    if old is None:
        ex.create_container(action, kept)
        return
    if (
        want.spec.update.strategy == "start-first"
        and old.status == "running"
        and planner.overlap_blocker(want.spec) is None
    ):
        _start_first(ex, want, image.id, old, kept)
    else:
        _stop_first(ex, action, old, kept)


def _stop_first(
    ex: Executor, action: model.Action, old: client.ContainerInfo, kept: dict[str, str]
) -> None:
    want = action.desired
    assert isinstance(want, model.DesiredContainer)
    ex.stop_and_remove(old.name, want.spec.stop_grace_period)
    ex.create_container(action, kept)
    if not _checked(want) or not history.entries_text(kept.get(L.HISTORY)):
        return
    why = gate(ex, old.name, want, settle=False)
    if why is None:
        return
    try:
        rollback.rollback(ex.runtime, ex.stack, want.name)
    except errors.RuntimeError_ as exc:
        raise UpdateFailed(
            f"update of {ex.stack}/{want.name} failed: the new container {why}; "
            f"rolling back failed too: {exc}"
        ) from None
    raise UpdateFailed(
        f"update of {ex.stack}/{want.name} failed: the new container {why}; "
        "rolled back to the previous spec (fix the manifest, then apply again)"
    )


def _start_first(
    ex: Executor,
    want: model.DesiredContainer,
    image_id: str,
    old: client.ContainerInfo,
    kept: dict[str, str],
) -> None:
    next_name = old.name + NEXT_SUFFIX
    ex.stop_and_remove(next_name, 0)  # a leftover of an interrupted update
    config = convert.container_config(ex.stack, want, image_id, ex.desired.networks, kept)
    ex.wait_for_dependencies(want)
    ex.runtime.create_container(dataclasses.replace(config, name=next_name))
    ex.runtime.start_container(next_name)
    why = gate(ex, next_name, want, settle=True)
    if why is not None:
        ex.stop_and_remove(next_name, 0)
        raise UpdateFailed(
            f"update of {ex.stack}/{want.name} rolled back: the new container {why}; "
            "the old one kept running throughout"
        )
    # hand the name over: the old one steps aside (still answering), the new one takes
    # the name and, being the newest, the service's names on its networks; then the
    # old one stops
    retired = old.name + RETIRED_SUFFIX
    ex.stop_and_remove(retired, 0)
    ex.runtime.rename_container(old.name, retired)
    ex.runtime.rename_container(next_name, old.name)
    ex.stop_and_remove(retired, want.spec.stop_grace_period)


def _checked(want: model.DesiredContainer) -> bool:
    check = want.spec.healthcheck
    return check is not None and check.test[0] != "NONE"


def gate(ex: Executor, name: str, want: model.DesiredContainer, *, settle: bool) -> str | None:
    """None when the container proved itself, else why not (for the error)."""
    check = want.spec.healthcheck
    checked = _checked(want)
    if checked:
        assert check is not None
        budget = (
            check.start_period
            + (check.retries + 1) * max(check.interval, check.start_interval)
            + check.timeout
        )
    else:
        budget = ex.options.settle_seconds if settle else 0.0
    deadline = ex.clock() + min(budget, ex.options.health_gate_max)
    while True:
        info = ex.runtime.get_container(name)
        if info.status in ("exited", "dead"):
            return f"exited with code {info.exit_code}"
        if checked and info.health is not None:
            if info.health.status == "healthy":
                return None
            if info.health.status == "unhealthy":
                last = info.health.log[-1].output.strip()[:200] if info.health.log else ""
                return "is unhealthy" + (f" ({last})" if last else "")
        if ex.clock() >= deadline:
            if checked:
                return f"did not turn healthy within {budget:g}s"
            return None  # stayed up for the settle time
        ex.sleep(ex.options.poll_interval)
