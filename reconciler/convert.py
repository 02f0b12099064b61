"""Desired objects → the runtime's request types. Pure.

This is where manifest names become host-wide runtime names
(``<stack>_<name>``), where the labels that mark an object as managed are
added, and where the canonical applied record is attached as an annotation.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from typing import Any

from reconciler import labels as L
from reconciler.plan import canonical, model, runtime_name_for
from runtime import client

BUILTIN_NETWORKS = ("host", "none")


def _record_annotation(
    record: Mapping[str, Any], extra: Mapping[str, str] | None = None
) -> tuple[tuple[str, str], ...]:
    text = json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return client.frozen_map({L.APPLIED_SPEC: text, **(extra or {})})


def network_name(stack: str, name: str, stack_networks: Mapping[str, object]) -> str:
    if name in BUILTIN_NETWORKS and name not in stack_networks:
        return name
    return runtime_name_for(stack, name)


def container_config(
    stack: str,
    want: model.DesiredContainer,
    image_id: str,
    stack_networks: Mapping[str, object],
    annotations: Mapping[str, str] | None = None,
) -> client.ContainerConfig:
    """``annotations``: kept beside the applied record (history, rollback marks)."""
    spec = want.spec
    record = canonical.container_record(want, image_id)
    spec_hash = canonical.spec_hash(canonical.container_essence(record))
    labels = {
        **want.metadata_labels,
        **spec.labels,
        **L.managed(stack, "Container", want.name, spec_hash),
    }
    env = {**want.env_from, **spec.env}
    mounts = tuple(
        client.MountConfig(
            type=m.type,
            target=m.target,
            source=(
                runtime_name_for(stack, m.source) if m.type == "volume" and m.source else m.source
            ),
            read_only=m.read_only,
            sub_path=m.sub_path,
            size=m.size,
            mode=m.mode,
            no_copy=m.no_copy,
            create_host_path=m.create_host_path,
            propagation=m.propagation,
        )
        for m in spec.mounts
    )
    networks = tuple(
        client.NetworkAttachmentConfig(
            network=network_name(stack, n.name, stack_networks),
            aliases=tuple(n.aliases),
            ipv4_address=n.ipv4_address,
        )
        for n in spec.networks
    )
    ports = tuple(
        client.PortConfig(
            container_port=p.container_port,
            protocol=p.protocol,
            host_port=p.host_port,
            host_ip=p.host_ip,
        )
        for p in spec.ports
    )
    health = None
    if spec.healthcheck is not None:
        h = spec.healthcheck
        health = client.HealthcheckConfig(
            test=tuple(h.test),
            interval=h.interval,
            timeout=h.timeout,
            retries=h.retries,
            start_period=h.start_period,
            start_interval=h.start_interval,
        )
    config = client.ContainerConfig(
        name=runtime_name_for(stack, want.name),
        image=image_id,
        entrypoint=tuple(spec.entrypoint) if spec.entrypoint is not None else None,
        command=tuple(spec.command) if spec.command is not None else None,
        env=client.frozen_map(env),
        working_dir=spec.working_dir,
        user=spec.user,
        hostname=spec.hostname or want.name,
        labels=client.frozen_map(labels),
        annotations=_record_annotation(record, annotations),
        mounts=mounts,
        networks=networks,
        ports=ports,
        resources=resources(want),
        restart_policy=spec.restart,
        stop_signal=spec.stop_signal,
        stop_grace_period=spec.stop_grace_period,
        init=spec.init,
        healthcheck=health,
    )
    labels[L.CONFIG_HASH] = config_digest(config)
    # its anonymous volumes belong to the object, not to one container: a recreate and a
    # start-first update's second container (another name for a while) mount the same ones
    labels[client.VOLUME_OWNER_LABEL] = runtime_name_for(stack, want.name)
    return dataclasses.replace(config, labels=client.frozen_map(labels))


def config_digest(config: client.ContainerConfig) -> str:
    """sha256 of what the runtime was asked to run, labels and annotations aside.

    Recorded as a label at create and update; observe recomputes it from the
    container's actual config, so a change made behind pyreconcile's back (an
    update through the API, an edited record) shows as spec drift even when the
    applied-spec record still matches the manifests.
    """
    plain = client.plain(dataclasses.replace(config, labels=(), annotations=()))
    assert isinstance(plain, dict)
    for mount in plain["mounts"]:
        for key, default in _LATER_MOUNT_FIELDS.items():
            if mount.get(key) == default:  # as before they existed: no phantom drift
                del mount[key]
    text = json.dumps(plain, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


# MountConfig fields added after containers were recorded (issue 7): left out of the
# digest at their default, so that an upgrade does not see every container as drifted
_LATER_MOUNT_FIELDS: dict[str, object] = {
    "no_copy": False,
    "create_host_path": False,
    "propagation": None,
}


def resources(want: model.DesiredContainer) -> client.ResourcesConfig:
    r = want.spec.resources
    return client.ResourcesConfig(memory=r.memory, cpus=r.cpus, pids=r.pids)


def container_update(
    stack: str,
    want: model.DesiredContainer,
    image_id: str,
    stack_networks: Mapping[str, object],
    annotations: Mapping[str, str] | None = None,
) -> client.ContainerUpdate:
    config = container_config(stack, want, image_id, stack_networks, annotations)
    return client.ContainerUpdate(
        labels=config.labels,
        annotations=config.annotations,
        restart_policy=config.restart_policy,
        resources=config.resources,
    )


def network_config(stack: str, want: model.DesiredNetwork) -> client.NetworkConfig:
    record = canonical.object_record(want.spec, want.metadata_labels)
    spec_hash = canonical.spec_hash(canonical.object_essence(record))
    s = want.spec
    options = {}
    if s.parent:
        options["parent"] = s.parent
    if s.peers:
        options["peers"] = ",".join(s.peers)
    if s.vni is not None:
        options["vni"] = str(s.vni)
    if s.mtu is not None:
        options["mtu"] = str(s.mtu)
    return client.NetworkConfig(
        name=runtime_name_for(stack, want.name),
        driver=s.driver,
        subnet=s.subnet,
        gateway=s.gateway,
        ip_range=s.ip_range,
        internal=s.internal,
        options=client.frozen_map(options),
        labels=object_labels(stack, "Network", want.name, spec_hash, want.metadata_labels),
        annotations=_record_annotation(record),
    )


def volume_config(stack: str, want: model.DesiredVolume) -> client.VolumeConfig:
    record = canonical.object_record(want.spec, want.metadata_labels)
    spec_hash = canonical.spec_hash(canonical.object_essence(record))
    return client.VolumeConfig(
        name=runtime_name_for(stack, want.name),
        driver=want.spec.driver,
        options=client.frozen_map(want.spec.driver_opts),
        labels=object_labels(stack, "Volume", want.name, spec_hash, want.metadata_labels),
        annotations=_record_annotation(record),
    )


def object_labels(
    stack: str, kind: str, name: str, spec_hash: str, user: Mapping[str, str]
) -> tuple[tuple[str, str], ...]:
    return client.frozen_map({**user, **L.managed(stack, kind, name, spec_hash)})
