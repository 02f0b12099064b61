"""``delete``: remove a container's processes, cgroup and state.

A stopped container is simply removed; a created one is killed first (runc
does the same: it never ran anything); a running one only with ``force``
(SIGKILL to the init and to everything in its cgroup). Delete then waits for
the init to be gone — a zombie counts, its reaper is the shim — removes the
cgroup directories (killing stragglers) and the state dir, and runs the
``poststop`` hooks (failures are returned as warnings). A state dir that has
no readable state.json (a create that crashed half-way) is removed with
``force``.

The init of a pid namespace finishes exiting only once every other process
of the namespace has been *reaped*; processes started by ``exec`` are
children of the caller's subreaper, so a caller that force-deletes a
container with exec'd processes must keep reaping meanwhile (or kill and reap
them first), else delete gives up after its timeout.
"""

from __future__ import annotations

import os
import time

from runtime import errors
from runtime.oci import cgroups, kill, start, state

__all__ = ["delete"]

_STOP_TIMEOUT = 10.0


def delete(root: str, container_id: str, *, force: bool = False) -> list[str]:
    """Delete the container; returns warnings (failed poststop hooks)."""
    cdir = state.container_dir(root, container_id)
    try:
        rec = state.load(root, container_id)
    except (errors.NotFound, errors.Terminal):
        if force and os.path.isdir(cdir):
            state.remove_dir(cdir)
            return []
        raise

    status = state.observe_status(root, rec)
    if status == "paused" and not force:
        raise errors.FailedPrecondition(
            f"cannot delete container {container_id} that is not stopped: paused "
            "(resume and stop it first, or delete with force)"
        )
    if status == "running" and not force:
        raise errors.FailedPrecondition(
            f"cannot delete container {container_id} that is not stopped: running "
            "(stop it first, or delete with force)"
        )
    if status != "stopped":
        kill.signal_init(rec, 9)
        cgroups.kill_all(rec.cgroup_dirs, 9)
        if status == "paused":  # frozen tasks die only once thawed
            from runtime.oci import pause

            pause.thaw_dir(rec.freezer)
        deadline = time.monotonic() + _STOP_TIMEOUT
        while state.observe_status(root, rec) != "stopped":
            if time.monotonic() > deadline:
                raise errors.Terminal(
                    f"container {container_id} (pid {rec.pid}) did not die of SIGKILL within "
                    f"{_STOP_TIMEOUT:.0f}s (stuck in uninterruptible sleep?)"
                )
            time.sleep(0.002)
    cgroups.remove(rec.cgroup_dirs)
    if rec.host_mounts:
        state.detach_rootfs(rec.rootfs)
    state.remove_dir(cdir)
    return start.run_state_hooks(rec, "poststop", "stopped")
