"""What the harness reads from (and removes on) this host: cgroups, mounts,
processes and their memory.

Everything here works by path or by pid; nothing is found or killed by
process name. The cgroup helpers understand the three layouts (pure v1, hybrid
with cgroup2 at ``/sys/fs/cgroup/unified``, pure v2).
"""

from __future__ import annotations

import os
import platform
import signal
import subprocess
from typing import Any, Literal

__all__ = [
    "cgroup_hierarchies",
    "cgroup_layout",
    "comm",
    "describe",
    "kill",
    "mounts_under",
    "ppid",
    "processes_mentioning",
    "remove_cgroup",
    "smaps_rollup",
    "threads",
]

CGROUP_ROOT = "/sys/fs/cgroup"


def _mounts() -> list[tuple[str, str]]:
    """(mount point, fs type) of this mount namespace."""
    found = []
    with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as f:
        for line in f:
            fields = line.split()
            sep = fields.index("-")
            found.append((fields[4].replace("\\040", " "), fields[sep + 1]))
    return found


def cgroup_hierarchies() -> list[str]:
    """Mount points of every cgroup (v1 or v2) hierarchy."""
    return sorted({point for point, fs in _mounts() if fs in ("cgroup", "cgroup2")})


def cgroup_layout() -> Literal["v1", "hybrid", "v2"]:
    points = {point: fs for point, fs in _mounts() if fs in ("cgroup", "cgroup2")}
    if points.get(CGROUP_ROOT) == "cgroup2":
        return "v2"
    if points.get(os.path.join(CGROUP_ROOT, "unified")) == "cgroup2":
        return "hybrid"
    return "v1"


def remove_cgroup(name: str) -> list[str]:
    """Remove the cgroup ``name`` (relative to each hierarchy's root) bottom-up.

    Returns the directories that could not be removed (a process still in them).
    Only empty directories are removed: this never kills anything.
    """
    left = []
    for hierarchy in cgroup_hierarchies():
        top = os.path.join(hierarchy, name.strip("/"))
        if not os.path.isdir(top):
            continue
        for directory, _, _ in sorted(os.walk(top), key=lambda w: w[0].count("/"), reverse=True):
            try:
                os.rmdir(directory)
            except OSError:
                left.append(directory)
    return left


def mounts_under(prefix: str) -> list[str]:
    prefix = prefix.rstrip("/")
    return [p for p, _ in _mounts() if p == prefix or p.startswith(prefix + "/")]


def processes_mentioning(text: str) -> list[tuple[int, str]]:
    """Live processes (not this one) whose command line contains ``text``."""
    found = []
    me = os.getpid()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        if text in cmd:
            found.append((int(entry), cmd))
    return found


def kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _stat_fields(pid: int) -> list[str]:
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()


def ppid(pid: int) -> int:
    return int(_stat_fields(pid)[1])


def threads(pid: int) -> int:
    return int(_stat_fields(pid)[17])


def comm(pid: int) -> str:
    with open(f"/proc/{pid}/comm") as f:
        return f.read().strip()


def smaps_rollup(pid: int) -> dict[str, int]:
    """``/proc/PID/smaps_rollup`` in bytes (Rss, Pss, …)."""
    values = {}
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            parts = line.split()
            if len(parts) == 3 and parts[2] == "kB":
                values[parts[0].rstrip(":")] = int(parts[1]) * 1024
    return values


def describe() -> dict[str, Any]:
    """The facts a reader needs to compare runs: CPUs, memory, kernel, cgroups, Python."""
    memory = "?"
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    memory = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB RAM"
    except OSError:
        pass
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            model = next((ln.split(":", 1)[1].strip() for ln in f if "model name" in ln), "")
    except OSError:
        pass
    os_name = ""
    try:
        os_name = subprocess.run(
            ["sh", "-c", ". /etc/os-release && echo $PRETTY_NAME"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
    except OSError:
        pass
    return {
        "cpus": os.cpu_count(),
        "cpuModel": model,
        "memory": memory,
        "kernel": platform.release(),
        "os": os_name,
        "cgroups": cgroup_layout(),
        "python": platform.python_version(),
    }
