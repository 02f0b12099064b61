"""The RuntimeClient contract: the fake and the real engine behave alike.

Each test runs against ``FakeRuntime`` and against ``LocalRuntime`` (real
namespaces, mounts and shims, as root, with throw-away roots); the reconciler's
unit tests trust the fake only because it passes these too.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from runtime import client, errors
from runtime.fake import FakeRuntime

IMAGE = "localhost/contract/busybox:latest"


@pytest.fixture(params=["fake", "local"])
def rt(request: pytest.FixtureRequest, busybox_tar: Path) -> Iterator[client.RuntimeClient]:
    if request.param == "fake":
        fake = FakeRuntime()
        fake.import_image(str(busybox_tar), IMAGE)
        yield fake
        return
    request.applymarker(pytest.mark.privileged)
    from tests.conftest import REQUIRE_PRIVILEGED, _privileged_reason

    reason = _privileged_reason()
    if reason:
        if REQUIRE_PRIVILEGED:
            pytest.fail(reason)
        pytest.skip(reason)
    roots = request.getfixturevalue("roots")
    real = client.open_local(str(roots.root), str(roots.run_root), roots.cgroup_parent)
    real.import_image(str(busybox_tar), IMAGE)
    try:
        yield real
    finally:
        for c in real.list_containers():
            real.remove_container(c.name, force=True)
        for v in real.list_volumes():
            real.remove_volume(v.name)
        for n in real.list_networks():
            real.remove_network(n.name)
        real.close()


def _config(name: str, **kw: Any) -> client.ContainerConfig:
    kw.setdefault("command", ("sleep", "30"))
    return client.ContainerConfig(name=name, image=IMAGE, **kw)


def test_image_lookup_by_reference_and_id(rt: client.RuntimeClient) -> None:
    image = rt.get_image(IMAGE)
    assert image.id.startswith("sha256:") and len(image.id) == 71
    assert rt.get_image(image.id) == image
    assert IMAGE in image.references
    assert image in rt.list_images()
    with pytest.raises(errors.NotFound):
        rt.get_image("localhost/contract/absent:latest")


def test_container_lifecycle(rt: client.RuntimeClient) -> None:
    created = rt.create_container(_config("c1", labels=(("a", "b"),)))
    assert created.status == "created"
    assert created.config.labels == (("a", "b"),)
    assert rt.get_container("c1").id == created.id
    assert rt.get_container(created.id[:12]).name == "c1"

    running = rt.start_container("c1")
    assert running.status == "running" and running.pid
    assert rt.start_container("c1").status == "running"  # idempotent
    with pytest.raises(errors.FailedPrecondition):
        rt.remove_container("c1")

    stopped = rt.stop_container("c1", timeout=2, operator=True)
    assert stopped.status == "exited"
    assert stopped.exit_code is not None
    assert stopped.operator_stopped
    again = rt.start_container("c1")
    assert again.status == "running" and not again.operator_stopped

    rt.remove_container("c1", force=True)
    with pytest.raises(errors.NotFound):
        rt.get_container("c1")
    assert [c for c in rt.list_containers() if c.name == "c1"] == []


def test_names_are_unique(rt: client.RuntimeClient) -> None:
    rt.create_container(_config("dup"))
    with pytest.raises(errors.AlreadyExists):
        rt.create_container(_config("dup"))
    rt.remove_container("dup", force=True)


def test_missing_image_and_volume(rt: client.RuntimeClient) -> None:
    with pytest.raises(errors.NotFound):
        rt.create_container(client.ContainerConfig(name="x", image="localhost/absent:1"))
    with pytest.raises(errors.NotFound):
        rt.create_container(
            _config("y", mounts=(client.MountConfig(type="volume", source="nope", target="/d"),))
        )
    assert [c for c in rt.list_containers() if c.name in ("x", "y")] == []


def test_volume_in_use_cannot_be_removed(rt: client.RuntimeClient) -> None:
    rt.create_volume(client.VolumeConfig(name="v1", labels=(("k", "v"),)))
    with pytest.raises(errors.AlreadyExists):
        rt.create_volume(client.VolumeConfig(name="v1"))
    rt.create_container(
        _config("uses-v1", mounts=(client.MountConfig(type="volume", source="v1", target="/d"),))
    )
    with pytest.raises(errors.FailedPrecondition):
        rt.remove_volume("v1")
    rt.remove_container("uses-v1", force=True)
    updated = rt.update_volume("v1", (("k", "w"),), ())
    assert updated.labels == (("k", "w"),)
    rt.remove_volume("v1")
    with pytest.raises(errors.NotFound):
        rt.remove_volume("v1")


def test_network_records(rt: client.RuntimeClient) -> None:
    net = rt.create_network(client.NetworkConfig(name="n1", driver="none"))
    assert net.name == "n1" and net.driver == "none"
    with pytest.raises(errors.AlreadyExists):
        rt.create_network(client.NetworkConfig(name="n1", driver="none"))
    assert [n.name for n in rt.list_networks()] == ["n1"]
    rt.remove_network("n1")
    with pytest.raises(errors.NotFound):
        rt.remove_network("n1")


def test_update_in_place_keeps_the_container(rt: client.RuntimeClient) -> None:
    created = rt.create_container(_config("upd"))
    updated = rt.update_container(
        "upd",
        client.ContainerUpdate(
            labels=(("x", "1"),),
            restart_policy="always",
            resources=client.ResourcesConfig(memory=64 << 20),
        ),
    )
    assert updated.id == created.id
    assert updated.config.labels == (("x", "1"),)
    assert updated.config.restart_policy == "always"
    assert updated.config.resources.memory == 64 << 20
    rt.remove_container("upd", force=True)


def test_wait_returns_the_exit_code(rt: client.RuntimeClient) -> None:
    rt.create_container(_config("w", command=("sh", "-c", "exit 3")))
    rt.start_container("w")
    if isinstance(rt, FakeRuntime):
        rt.crash("w", 3)
    done = rt.wait_container("w", timeout=20)
    assert done.status == "exited" and done.exit_code == 3
    rt.remove_container("w")
