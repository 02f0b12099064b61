"""How containers are shown: ``ps`` rows and JSON, Docker-like ``inspect``, ``--since``.

Pure functions of ``runtime.client`` records (and the clock, passed in).
``inspect`` follows ``docker inspect``'s shape and names where pyreconcile has
the same thing (``State``, ``Config``, ``HostConfig``, ``Mounts``,
``RestartCount``); what Docker has no place for goes under ``Pyreconcile``
(stack, operator stop, the last exit of a container that runs again). Times
are RFC 3339 in UTC; a time that never happened is Docker's
``0001-01-01T00:00:00Z``.
"""

from __future__ import annotations

import re
import time
from typing import Any

from reconciler import labels as L
from runtime import client

ZERO_TIME = "0001-01-01T00:00:00Z"
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h|d)$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def age(ts: float | None, now: float | None = None) -> str:
    if not ts:
        return "-"
    seconds = max(0, int((time.time() if now is None else now) - ts))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit} ago"
    return f"{seconds}s ago"


def rfc3339(ts: float | None) -> str:
    if ts is None:
        return ZERO_TIME
    whole = int(ts)
    t = time.gmtime(whole)
    nanos = round((ts - whole) * 1e9)
    return time.strftime("%Y-%m-%dT%H:%M:%S", t) + f".{nanos:09d}Z"


def parse_since(text: str, now: float | None = None) -> float | str:
    """``--since``: a duration ago (``10m``, ``1.5h``), unix seconds, or an RFC 3339 time."""
    match = _DURATION.match(text)
    if match:
        return (time.time() if now is None else now) - float(match[1]) * _UNITS[match[2]]
    try:
        return float(text)
    except ValueError:
        return text  # the runtime checks RFC 3339 and says what is wrong


def display_name(c: client.ContainerInfo) -> str:
    return f"{c.labels[L.STACK]}/{c.labels[L.NAME]}" if L.NAME in c.labels else c.name


def status_text(c: client.ContainerInfo, now: float | None = None) -> str:
    if c.status == "running":
        health = f", {c.health.status}" if c.health is not None else ""
        return f"running ({age(c.started_at, now).replace(' ago', '')}{health})"
    if c.status in ("exited", "dead"):
        text = f"{c.status} ({c.exit_code})"
        return text + (" stopped by operator" if c.operator_stopped else "")
    return c.status


def last_exit_text(c: client.ContainerInfo, now: float | None = None) -> str:
    last = c.last_exit
    if last is None:
        return "-"
    flags = " lost" if last.lost else " oom" if last.oom_killed else ""
    return f"{last.code}{flags} ({age(last.finished_at, now)})"


def ps_row(c: client.ContainerInfo, now: float | None = None) -> list[str]:
    image = c.config.image
    return [
        c.id[:12],
        display_name(c),
        status_text(c, now),
        str(c.restart_count),
        last_exit_text(c, now),
        image[7:19] if image.startswith("sha256:") else image,
        age(c.created_at, now),
    ]


PS_HEADER = ["ID", "NAME", "STATUS", "RESTARTS", "LAST EXIT", "IMAGE", "CREATED"]


def last_exit_json(last: client.LastExit | None) -> dict[str, Any] | None:
    if last is None:
        return None
    return {
        "exitCode": last.code,
        "finishedAt": last.finished_at,
        "oomKilled": last.oom_killed,
        "lost": last.lost,
        "error": last.error,
    }


def ps_json(c: client.ContainerInfo) -> dict[str, Any]:
    labels = c.labels
    return {
        "id": c.id,
        "name": c.name,
        "stack": labels.get(L.STACK),
        "object": labels.get(L.NAME),
        "managed": labels.get(L.MANAGED) == "true",
        "image": c.config.image,
        "imageId": c.image_id,
        "status": c.status,
        "pid": c.pid,
        "exitCode": c.exit_code,
        "createdAt": c.created_at,
        "startedAt": c.started_at,
        "finishedAt": c.finished_at,
        "restartCount": c.restart_count,
        "lastExit": last_exit_json(c.last_exit),
        "operatorStopped": c.operator_stopped,
        "specHash": labels.get(L.SPEC_HASH),
        "labels": {k: v for k, v in labels.items() if not k.startswith("io.pyreconcile.")},
    }


def inspect_json(
    c: client.ContainerInfo, volume_paths: dict[str, str] | None = None
) -> dict[str, Any]:
    """One container in ``docker inspect``'s shape."""
    config = c.config
    last = c.last_exit
    running = c.status == "running"
    policy, _, retries = config.restart_policy.partition(":")
    labels = c.labels
    return {
        "Id": c.id,
        "Name": c.name,
        "Created": rfc3339(c.created_at),
        "Image": c.image_id,
        "State": {
            "Status": c.status,
            "Running": running,
            "Paused": c.status == "paused",
            "Restarting": c.status == "restarting",
            "OOMKilled": bool(last and last.oom_killed and not running),
            "Dead": c.status == "dead",
            "Pid": c.pid or 0,
            "ExitCode": (c.exit_code if c.exit_code is not None else 0) if not running else 0,
            "Error": (last.error or "") if last and not running else "",
            "StartedAt": rfc3339(c.started_at),
            # as Docker: the last finish stays while it runs again
            "FinishedAt": rfc3339(c.finished_at or (last.finished_at if last else None)),
            **({"Health": health_json(c.health)} if c.health is not None else {}),
        },
        "RestartCount": c.restart_count,
        "Config": {
            "Hostname": config.hostname or c.id[:12],
            "User": config.user or "",
            "Env": [f"{k}={v}" for k, v in config.env],
            "Cmd": list(config.command) if config.command is not None else None,
            "Entrypoint": list(config.entrypoint) if config.entrypoint is not None else None,
            "Image": config.image,
            "WorkingDir": config.working_dir or "",
            "Labels": dict(config.labels),
            "StopSignal": config.stop_signal,
            "StopTimeout": config.stop_grace_period,
        },
        "HostConfig": {
            "RestartPolicy": {
                "Name": policy,
                "MaximumRetryCount": int(retries) if retries.isdigit() else 0,
            },
            "Init": config.init,
            "Memory": config.resources.memory or 0,
            "NanoCpus": int((config.resources.cpus or 0) * 1e9),
            "PidsLimit": config.resources.pids,
            "Runtime": config.oci_runtime or "pyreconcile-runc (builtin)",
        },
        "Mounts": [_mount_json(m, volume_paths or {}) for m in config.mounts],
        "NetworkSettings": {
            "Networks": {
                n.network: {"Aliases": list(n.aliases), "IPAddress": n.ipv4_address or ""}
                for n in config.networks
            },
            "Ports": {
                f"{p.container_port}/{p.protocol}": [
                    {"HostIp": p.host_ip or "", "HostPort": str(p.host_port or "")}
                ]
                for p in config.ports
            },
        },
        "Pyreconcile": {
            "Stack": labels.get(L.STACK),
            "Object": labels.get(L.NAME),
            "Managed": labels.get(L.MANAGED) == "true",
            "SpecHash": labels.get(L.SPEC_HASH),
            "OperatorStopped": c.operator_stopped,
            "LastExit": last_exit_json(last),
        },
    }


def _mount_json(m: client.MountConfig, volume_paths: dict[str, str]) -> dict[str, Any]:
    source = m.source or ""
    doc: dict[str, Any] = {
        "Type": m.type,
        "Source": volume_paths.get(source, source) if m.type == "volume" else source,
        "Destination": m.target,
        "RW": not m.read_only,
    }
    if m.type == "volume":
        doc["Name"] = source
    return doc


def health_json(health: client.HealthInfo) -> dict[str, object]:
    """Docker's State.Health."""
    return {
        "Status": health.status,
        "FailingStreak": health.failing_streak,
        "Log": [
            {
                "Start": rfc3339(r.start),
                "End": rfc3339(r.end),
                "ExitCode": r.exit_code,
                "Output": r.output,
            }
            for r in health.log
        ],
    }
