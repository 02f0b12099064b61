"""``pause``/``resume``: freeze and thaw every process of a container.

cgroup v1 writes ``FROZEN``/``THAWED`` to ``freezer.state`` and waits until
it reads back ``FROZEN`` (``FREEZING`` means some task is still on its way —
in an uninterruptible sleep, say); cgroup v2 writes ``cgroup.freeze`` and
waits for ``frozen 1`` in ``cgroup.events``. A freeze that does not settle
within the timeout is undone (thawed) and reported, so a container is never
left half-frozen. The status then reads ``paused`` (see
:func:`runtime.oci.state.observe_status`).
"""

from __future__ import annotations

import os
import time

from runtime import errors
from runtime.oci import cgroups, state

__all__ = ["pause", "resume", "thaw_dir"]

_TIMEOUT = 10.0


def pause(root: str, container_id: str) -> None:
    rec = state.load(root, container_id)
    status = state.observe_status(root, rec)
    if status != "running":
        raise errors.FailedPrecondition(f"container {container_id} is not running: {status}")
    if not rec.freezer:
        raise errors.Unavailable(f"container {container_id} has no freezer cgroup on this host")
    try:
        _set(rec.freezer, True)
    except BaseException:
        thaw_dir(rec.freezer)
        raise


def resume(root: str, container_id: str) -> None:
    rec = state.load(root, container_id)
    status = state.observe_status(root, rec)
    if status != "paused":
        raise errors.FailedPrecondition(f"container {container_id} is not paused: {status}")
    _set(rec.freezer, False)


def thaw_dir(directory: str) -> None:
    """Thaw ``directory`` if it has a freezer (idempotent; for delete --force)."""
    if directory and os.path.isdir(directory):
        _set(directory, False)


def _set(directory: str, frozen: bool) -> None:
    v1 = os.path.exists(os.path.join(directory, "freezer.state"))
    name, value = (
        ("freezer.state", "FROZEN" if frozen else "THAWED")
        if v1
        else ("cgroup.freeze", "1" if frozen else "0")
    )
    cgroups.write(directory, name, value)
    deadline = time.monotonic() + _TIMEOUT
    delay = 0.0005
    while state.is_frozen(directory) != frozen or (v1 and frozen and not _settled(directory)):
        if time.monotonic() > deadline:
            raise errors.Transient(
                f"cgroup {directory} did not {'freeze' if frozen else 'thaw'} within "
                f"{_TIMEOUT:.0f}s (a task in uninterruptible sleep?)"
            )
        if v1:
            cgroups.write(directory, name, value)  # v1 retries the freeze on each write
        time.sleep(delay)
        delay = min(delay * 2, 0.05)
    if not v1 and frozen:
        _wait_events(directory, deadline)


def _settled(directory: str) -> bool:
    with open(os.path.join(directory, "freezer.state"), "rb") as f:
        return f.read().strip() == b"FROZEN"


def _wait_events(directory: str, deadline: float) -> None:
    delay = 0.0005
    while True:
        with open(os.path.join(directory, "cgroup.events"), "rb") as f:
            if b"frozen 1" in f.read():
                return
        if time.monotonic() > deadline:
            raise errors.Transient(f"cgroup {directory} did not report frozen within the timeout")
        time.sleep(delay)
        delay = min(delay * 2, 0.05)
