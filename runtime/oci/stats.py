"""Read a container's resource usage from its cgroup (``runc events --stats``).

The document has runc's shape (``cpu.usage.total`` in nanoseconds,
``memory.usage.{usage,limit,max}`` in bytes, ``pids.{current,limit}``, plus the
raw ``memory.stat`` counters) whichever cgroup version holds the numbers:
on a hybrid host the v1 controllers do, on pure v2 the single directory.
A controller the host lacks is left out rather than reported as zero.
"""

from __future__ import annotations

import os

from runtime.oci import cgroups, state

__all__ = ["stats"]

_UNLIMITED = 2**64 - 1


def stats(root: str, container_id: str) -> dict[str, object]:
    rec = state.load(root, container_id)
    hier = cgroups.discover()
    by_kind: dict[str, str] = {}
    for d in rec.cgroup_dirs:
        for kind, point in [("v2", hier.v2), ("unified", hier.unified), *hier.v1.items()]:
            if point and d.startswith(point.rstrip("/") + "/"):
                by_kind.setdefault(kind, d)
    out: dict[str, object] = {}
    v2 = by_kind.get("v2")
    if v2 is not None:
        _v2(v2, out)
    else:
        _v1(by_kind, out)
    return out


def _read(d: str, name: str) -> str | None:
    try:
        with open(os.path.join(d, name)) as f:
            return f.read().strip()
    except OSError:
        return None


def _int(text: str | None) -> int | None:
    if text is None:
        return None
    if text == "max":
        return _UNLIMITED
    try:
        return int(text)
    except ValueError:
        return None


def _kv(text: str | None) -> dict[str, int]:
    out = {}
    for line in (text or "").splitlines():
        key, _, value = line.partition(" ")
        if value.strip().lstrip("-").isdigit():
            out[key] = int(value)
    return out


def _v1(dirs: dict[str, str], out: dict[str, object]) -> None:
    if "cpuacct" in dirs:
        d = dirs["cpuacct"]
        percpu = [int(x) for x in (_read(d, "cpuacct.usage_percpu") or "").split()]
        usage = _kv(_read(d, "cpuacct.stat"))
        out["cpu"] = {
            "usage": {
                "total": _int(_read(d, "cpuacct.usage")) or 0,
                "percpu": percpu,
                "user": usage.get("user", 0) * 10_000_000,  # USER_HZ ticks (100 Hz) -> ns
                "kernel": usage.get("system", 0) * 10_000_000,
            },
            "throttling": _throttling(_kv(_read(dirs.get("cpu", d), "cpu.stat"))),
        }
    if "memory" in dirs:
        d = dirs["memory"]
        out["memory"] = {
            "usage": {
                "usage": _int(_read(d, "memory.usage_in_bytes")) or 0,
                "limit": _int(_read(d, "memory.limit_in_bytes")) or 0,
                "max": _int(_read(d, "memory.max_usage_in_bytes")) or 0,
                "failcnt": _int(_read(d, "memory.failcnt")) or 0,
            },
            "raw": _kv(_read(d, "memory.stat")),
        }
    if "pids" in dirs:
        d = dirs["pids"]
        out["pids"] = {
            "current": _int(_read(d, "pids.current")) or 0,
            "limit": _int(_read(d, "pids.max")) or 0,
        }


def _throttling(cpu_stat: dict[str, int]) -> dict[str, int]:
    return {
        "periods": cpu_stat.get("nr_periods", 0),
        "throttledPeriods": cpu_stat.get("nr_throttled", 0),
        "throttledTime": cpu_stat.get("throttled_time", cpu_stat.get("throttled_usec", 0) * 1000),
    }


def _v2(d: str, out: dict[str, object]) -> None:
    cpu = _kv(_read(d, "cpu.stat"))
    if cpu:
        out["cpu"] = {
            "usage": {
                "total": cpu.get("usage_usec", 0) * 1000,
                "user": cpu.get("user_usec", 0) * 1000,
                "kernel": cpu.get("system_usec", 0) * 1000,
            },
            "throttling": _throttling(cpu),
        }
    current = _int(_read(d, "memory.current"))
    if current is not None:
        out["memory"] = {
            "usage": {
                "usage": current,
                "limit": _int(_read(d, "memory.max")) or 0,
                "max": _int(_read(d, "memory.peak")) or 0,
            },
            "raw": _kv(_read(d, "memory.stat")),
        }
    pids = _int(_read(d, "pids.current"))
    if pids is not None:
        out["pids"] = {"current": pids, "limit": _int(_read(d, "pids.max")) or 0}
