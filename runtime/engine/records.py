"""ContainerConfig to and from JSON, for the metadata store.

The dataclasses of ``runtime.client`` are frozen values with nested
dataclasses and tuples; this codec writes them as plain JSON objects and
rebuilds the exact same values, so a record read back compares equal to the
one written (the planner relies on that to see no phantom change).
"""

from __future__ import annotations

import functools
import json
from typing import Any

from runtime import client, errors


def _pairs(value: Any) -> tuple[tuple[str, str], ...]:
    return tuple((str(k), str(v)) for k, v in value)


def config_to_json(config: client.ContainerConfig) -> str:
    return json.dumps(client.plain(config), sort_keys=True, separators=(",", ":"))


@functools.lru_cache(maxsize=4096)
def config_from_json(text: str) -> client.ContainerConfig:
    """The config a record holds (cached by its text: the value is frozen, and one
    observation reads each container's record more than once)."""
    try:
        raw = json.loads(text)
        return client.ContainerConfig(
            name=raw["name"],
            image=raw["image"],
            entrypoint=tuple(raw["entrypoint"]) if raw.get("entrypoint") is not None else None,
            command=tuple(raw["command"]) if raw.get("command") is not None else None,
            env=_pairs(raw.get("env", ())),
            working_dir=raw.get("working_dir"),
            user=raw.get("user"),
            hostname=raw.get("hostname"),
            labels=_pairs(raw.get("labels", ())),
            annotations=_pairs(raw.get("annotations", ())),
            mounts=tuple(client.MountConfig(**m) for m in raw.get("mounts", ())),
            networks=tuple(
                client.NetworkAttachmentConfig(
                    network=n["network"],
                    aliases=tuple(n.get("aliases", ())),
                    ipv4_address=n.get("ipv4_address"),
                )
                for n in raw.get("networks", ())
            ),
            ports=tuple(client.PortConfig(**p) for p in raw.get("ports", ())),
            resources=client.ResourcesConfig(**raw.get("resources", {})),
            restart_policy=raw.get("restart_policy", "no"),
            stop_signal=raw.get("stop_signal"),
            stop_grace_period=raw.get("stop_grace_period"),
            init=bool(raw.get("init", False)),
            healthcheck=(
                client.HealthcheckConfig(
                    **{**raw["healthcheck"], "test": tuple(raw["healthcheck"]["test"])}
                )
                if raw.get("healthcheck")
                else None
            ),
            oci_runtime=raw.get("oci_runtime"),
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise errors.Terminal(f"container record is corrupt: {exc}") from exc
