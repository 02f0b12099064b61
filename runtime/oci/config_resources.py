"""``linux.resources`` of config.json: the cgroup limits and device rules.

Split from :mod:`runtime.oci.config` (which re-exports the names). Known
controllers this runtime cannot apply (blkio, hugetlb, network, rdma,
``unified``, realtime cpu) are errors; deprecated kernel-memory limits are
kept and applied where the kernel still has them. Pure: no I/O.
"""

from __future__ import annotations

from runtime import errors
from runtime.oci.config_process import want

__all__ = ["DeviceRule", "Resources", "int_or_none", "parse"]


class DeviceRule:
    """An entry of ``linux.resources.devices`` (devices cgroup)."""

    __slots__ = ("access", "allow", "major", "minor", "type")

    def __init__(self, allow: bool, kind: str, major: int, minor: int, access: str) -> None:
        self.allow = allow
        self.type = kind  # a | c | b
        self.major = major  # -1 = any
        self.minor = minor
        self.access = access


class Resources:
    __slots__ = (
        "cpu_cpus",
        "cpu_mems",
        "cpu_period",
        "cpu_quota",
        "cpu_shares",
        "devices",
        "memory_kernel",
        "memory_kernel_tcp",
        "memory_limit",
        "memory_reservation",
        "memory_swap",
        "memory_swappiness",
        "oom_kill_disable",
        "pids_limit",
    )

    def __init__(self) -> None:
        self.memory_limit: int | None = None
        self.memory_reservation: int | None = None
        self.memory_swap: int | None = None
        self.memory_kernel: int | None = None  # deprecated: applied where the kernel has it
        self.memory_kernel_tcp: int | None = None
        self.memory_swappiness: int | None = None
        self.oom_kill_disable = False
        self.cpu_shares: int | None = None
        self.cpu_quota: int | None = None
        self.cpu_period: int | None = None
        self.cpu_cpus: str | None = None
        self.cpu_mems: str | None = None
        self.pids_limit: int | None = None
        self.devices: list[DeviceRule] = []


def int_or_none(obj: dict[str, object], key: str, where: str) -> int | None:
    value = obj.get(key)
    return None if value is None else want(value, int, f"{where}.{key}")


def parse(res: dict[str, object], out: Resources) -> None:
    for key in ("blockIO", "hugepageLimits", "network", "rdma", "unified"):
        if res.get(key):
            raise errors.InvalidSpec(
                f"config.json: linux.resources.{key} is not supported by pyreconcile-runc yet"
            )
    mem = want(res.get("memory", {}), dict, "linux.resources.memory")
    out.memory_limit = int_or_none(mem, "limit", "linux.resources.memory")
    out.memory_reservation = int_or_none(mem, "reservation", "linux.resources.memory")
    out.memory_swap = int_or_none(mem, "swap", "linux.resources.memory")
    out.memory_kernel = int_or_none(mem, "kernel", "linux.resources.memory")
    out.memory_kernel_tcp = int_or_none(mem, "kernelTCP", "linux.resources.memory")
    out.memory_swappiness = int_or_none(mem, "swappiness", "linux.resources.memory")
    if out.memory_swappiness is not None and not 0 <= out.memory_swappiness <= 100:
        raise errors.InvalidSpec("config.json: linux.resources.memory.swappiness must be 0..100")
    out.oom_kill_disable = want(
        mem.get("disableOOMKiller", False), bool, "linux.resources.memory.disableOOMKiller"
    )
    cpu = want(res.get("cpu", {}), dict, "linux.resources.cpu")
    out.cpu_shares = int_or_none(cpu, "shares", "linux.resources.cpu")
    out.cpu_quota = int_or_none(cpu, "quota", "linux.resources.cpu")
    out.cpu_period = int_or_none(cpu, "period", "linux.resources.cpu")
    for key in ("cpus", "mems"):
        if cpu.get(key):
            text = want(cpu.get(key), str, f"linux.resources.cpu.{key}")
            if not text.replace(",", "").replace("-", "").isdigit():
                raise errors.InvalidSpec(
                    f"config.json: linux.resources.cpu.{key}: {text!r} is not a list like 0-2,4"
                )
            setattr(out, f"cpu_{key}", text)
    for key in ("realtimeRuntime", "realtimePeriod"):
        if cpu.get(key):
            raise errors.InvalidSpec(
                f"config.json: linux.resources.cpu.{key} is not supported by pyreconcile-runc yet"
            )
    pids = want(res.get("pids", {}), dict, "linux.resources.pids")
    out.pids_limit = int_or_none(pids, "limit", "linux.resources.pids")
    for i, rule in enumerate(want(res.get("devices", []), list, "linux.resources.devices")):
        where = f"linux.resources.devices[{i}]"
        r = want(rule, dict, where)
        kind = want(r.get("type", "a"), str, f"{where}.type")
        if kind not in ("a", "b", "c"):
            raise errors.InvalidSpec(f"config.json: {where}.type must be a, b or c")
        access = want(r.get("access", "rwm"), str, f"{where}.access")
        if not access or set(access) - set("rwm"):
            raise errors.InvalidSpec(f"config.json: {where}.access must be letters of rwm")
        major = int_or_none(r, "major", where)
        minor = int_or_none(r, "minor", where)
        allow = want(r.get("allow"), bool, f"{where}.allow")
        out.devices.append(
            DeviceRule(
                allow, kind, -1 if major is None else major, -1 if minor is None else minor, access
            )
        )
