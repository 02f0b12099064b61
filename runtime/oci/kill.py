"""``kill``: signal a container's init, or with ``all`` every process in its cgroup.

The init is signalled through a pidfd opened *before* its start time is
compared with the one recorded at create, so a recycled pid is never hit.
"""

from __future__ import annotations

import os

import runtime.sys as rsys
from runtime import errors
from runtime.oci import cgroups, state

__all__ = ["kill", "signal_init"]


def kill(root: str, container_id: str, sig: int, *, all: bool = False) -> None:
    """Send ``sig``. A stopped container is an error (runc's "container not
    running") unless ``all``, which then signals whatever is left in its cgroup."""
    if not 0 <= sig <= 64:
        raise errors.InvalidSpec(f"invalid signal {sig}")
    rec = state.load(root, container_id)
    alive = signal_init(rec, sig)
    if all:
        cgroups.kill_all(rec.cgroup_dirs, sig)
    elif not alive:
        raise errors.FailedPrecondition(f"container {container_id} is not running")


def signal_init(rec: state.Record, sig: int) -> bool:
    """Signal the init if it is still the process create recorded; False if it is gone."""
    if rec.pid <= 0:
        return False
    try:
        pidfd = os.pidfd_open(rec.pid)
    except ProcessLookupError:
        return False
    try:
        seen = state.proc_stat(rec.pid)
        if seen is None or seen[1] != rec.start_time or seen[0] in ("Z", "X", "x"):
            return False
        try:
            rsys.pidfd_send_signal(pidfd, sig)
        except ProcessLookupError:
            return False
        except OSError as exc:
            with errors.map_os_errors(f"signal {sig} to container {rec.id} (pid {rec.pid})"):
                raise exc from None
        return True
    finally:
        os.close(pidfd)
