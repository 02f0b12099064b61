"""Find out whether the kernel's OOM killer struck a container (best effort).

The shim reads the ``oom_kill`` counter of the container's memory cgroup when
the container starts and again when its init exits; a larger number means an
OOM kill happened in the container during that run. cgroup v2 keeps it in
``memory.events``, v1 (kernel >= 4.13) in ``memory.oom_control``; both as an
``oom_kill N`` line. The cgroup is found from ``/proc/<init>/cgroup`` as seen
from the shim's (the host's) cgroup namespace. Anything missing → unknown (None),
never an error: OOM reporting is optional.
"""

from __future__ import annotations

import os

CGROUP_ROOT = "/sys/fs/cgroup"


def oom_counter_path(pid: int) -> str | None:
    """The file with the ``oom_kill`` counter of ``pid``'s memory cgroup, if any."""
    try:
        with open(f"/proc/{pid}/cgroup") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    candidates = []
    for line in lines:
        _, controllers, path = line.split(":", 2)
        rel = path.lstrip("/")
        if "memory" in controllers.split(","):
            candidates.append(os.path.join(CGROUP_ROOT, "memory", rel, "memory.oom_control"))
        elif controllers == "":
            candidates.append(os.path.join(CGROUP_ROOT, rel, "memory.events"))
            candidates.append(os.path.join(CGROUP_ROOT, "unified", rel, "memory.events"))
    for candidate in candidates:
        if os.path.exists(candidate):
            return candidate
    return None


def read_oom_kills(path: str | None) -> int | None:
    """The ``oom_kill`` count in ``path``; None when unknown."""
    if path is None:
        return None
    try:
        with open(path) as f:
            for line in f:
                key, _, value = line.partition(" ")
                if key == "oom_kill":
                    return int(value)
    except (OSError, ValueError):
        return None
    return None
