from __future__ import annotations

from runtime import client
from runtime.engine import records


def test_container_config_round_trips() -> None:
    config = client.ContainerConfig(
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
    assert records.config_from_json(records.config_to_json(config)) == config
