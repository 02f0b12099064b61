from __future__ import annotations

import dataclasses
import json

from runtime import client
from runtime.engine import records


def _config() -> client.ContainerConfig:
    return client.ContainerConfig(
        name="s_web",
        image="sha256:" + "a" * 64,
        entrypoint=("sh", "-c"),
        command=None,
        env=(("A", "1"),),
        working_dir="/w",
        user="1000:1000",
        hostname="web",
        labels=(("k", "v"),),
        annotations=(("io.pyreconcile.applied-spec", "{}"),),
        mounts=(
            client.MountConfig(type="tmpfs", target="/t", size=1 << 20, mode=0o1777),
            client.MountConfig(type="volume", source="s_data", target="/d", read_only=True),
        ),
        networks=(client.NetworkAttachmentConfig("s_net", ("a",), "10.0.0.2"),),
        ports=(client.PortConfig(80, "tcp", 8080, "127.0.0.1"),),
        resources=client.ResourcesConfig(memory=64 << 20, cpus=0.5, pids=10),
        restart_policy="on-failure:3",
        stop_signal="SIGQUIT",
        stop_grace_period=2.5,
        init=True,
        healthcheck=client.HealthcheckConfig(("CMD-SHELL", "true"), 1.0, 2.0, 3, 0.5),
    )


def test_container_config_round_trips() -> None:
    config = _config()
    assert records.config_from_json(records.config_to_json(config)) == config


def test_plain_is_asdict_without_the_copies() -> None:
    """Records and digests written before ``client.plain`` replaced ``dataclasses.asdict``
    must read the same: the same JSON, byte for byte."""
    config = _config()
    for value in (config, dataclasses.replace(config, healthcheck=None, mounts=())):
        text = json.dumps(dataclasses.asdict(value), sort_keys=True, separators=(",", ":"))
        assert records.config_to_json(value) == text
        assert json.dumps(client.plain(value), sort_keys=True) == json.dumps(
            dataclasses.asdict(value), sort_keys=True
        )
    assert client.plain({"a": (1, [2])}) == {"a": [1, [2]]}


def test_a_record_read_twice_is_decoded_once() -> None:
    text = records.config_to_json(_config())
    assert records.config_from_json(text) is records.config_from_json(text)
