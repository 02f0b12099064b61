# ruff: noqa: F811 - pytest fixtures imported from tests.support are parameter names here
"""The RuntimeClient contract: the fake and the real engine behave alike.

Each test runs against ``FakeRuntime`` and against ``LocalRuntime`` (real
namespaces, mounts and shims, as root, with throw-away roots); the reconciler's
unit tests trust the fake only because it passes these too.
"""

from __future__ import annotations

import io
import socket
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from runtime import client, errors
from runtime.fake import FakeRuntime
from tests.support import registry as reg
from tests.support.registry_fixtures import (  # noqa: F401 - fixtures
    USERS,
    basic_registry,
    plain_registry,
    unique_repo,
)

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


def test_anonymous_volumes_are_made_reused_and_pruned_only_when_unused(
    rt: client.RuntimeClient,
) -> None:
    anon = client.MountConfig(type="volume", target="/scratch")
    rt.create_volume(client.VolumeConfig(name="named-unused"))
    rt.create_container(_config("anon-a", mounts=(anon,)))
    name = client.anonymous_volume_name("anon-a", "/scratch")
    made = rt.get_volume(name)
    assert made.anonymous_owner == "anon-a" and made.users == ("anon-a",)
    assert dict(made.labels)[client.VOLUME_TARGET_LABEL] == "/scratch"
    with pytest.raises(errors.FailedPrecondition):
        rt.remove_volume(name)
    assert rt.prune_volumes() == []
    rt.remove_container("anon-a", force=True)
    assert rt.get_volume(name).users == ()  # kept: the next container of that name reuses it
    rt.create_container(_config("anon-a", mounts=(anon,)))
    assert sorted(v.name for v in rt.list_volumes()) == sorted([name, "named-unused"])
    rt.remove_container("anon-a", force=True)
    # an owner label: containers that succeed one another under other names share them
    owned = ((client.VOLUME_OWNER_LABEL, "the-app"),)
    rt.create_container(_config("app.next", mounts=(anon,), labels=owned))
    shared = client.anonymous_volume_name("the-app", "/scratch")
    assert rt.get_volume(shared).users == ("app.next",)
    rt.remove_container("app.next", force=True)
    assert sorted(rt.prune_volumes()) == sorted([name, shared])  # anonymous ones only
    assert [v.name for v in rt.list_volumes()] == ["named-unused"]
    assert rt.prune_volumes(all_unused=True) == ["named-unused"]
    with pytest.raises(errors.NotFound):
        rt.get_volume("named-unused")


def test_bind_of_a_missing_path_names_it(rt: client.RuntimeClient, tmp_path: Path) -> None:
    missing = str(tmp_path / "not-there")
    bind = client.MountConfig(type="bind", source=missing, target="/site")
    with pytest.raises(errors.NotFound, match=missing):
        rt.create_container(_config("binder", mounts=(bind,)))
    assert [c for c in rt.list_containers() if c.name == "binder"] == []


def _archive(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mtime = len(data), 1_600_000_000
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _contents(archive: bytes) -> dict[str, bytes]:
    found = {}
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        for member in tar:
            data = tar.extractfile(member)
            if data is not None:
                found[member.name.removeprefix("./")] = data.read()
    return found


def test_volume_backup_and_restore(rt: client.RuntimeClient) -> None:
    rt.create_volume(client.VolumeConfig(name="empty"))
    out = io.BytesIO()
    rt.backup_volume("empty", out)
    empty = out.getvalue()
    assert _contents(empty) == {}
    # into a missing volume: made, filled; a backup gives the same content
    restored = rt.restore_volume("filled", io.BytesIO(_archive({"hello": b"hi\n"})))
    assert restored.name == "filled"
    out = io.BytesIO()
    rt.backup_volume("filled", out)
    assert _contents(out.getvalue()) == {"hello": b"hi\n"}
    # a volume with data is replaced only when asked
    with pytest.raises(errors.FailedPrecondition):
        rt.restore_volume("filled", io.BytesIO(empty))
    rt.restore_volume("filled", io.BytesIO(empty), replace=True)
    out = io.BytesIO()
    rt.backup_volume("filled", out)
    assert _contents(out.getvalue()) == {}
    # an archive that climbs out is refused, and no volume is left made for it
    with pytest.raises(errors.InvalidSpec):
        rt.restore_volume("escape", io.BytesIO(_archive({"../x": b"x"})))
    with pytest.raises(errors.NotFound):
        rt.get_volume("escape")
    with pytest.raises(errors.NotFound):
        rt.backup_volume("absent", io.BytesIO())
    rt.remove_volume("filled")
    rt.remove_volume("empty")


def test_network_records(rt: client.RuntimeClient) -> None:
    net = rt.create_network(client.NetworkConfig(name="n1", driver="none"))
    assert net.name == "n1" and net.driver == "none"
    with pytest.raises(errors.AlreadyExists):
        rt.create_network(client.NetworkConfig(name="n1", driver="none"))
    assert [n.name for n in rt.list_networks()] == ["n1"]
    rt.remove_network("n1")
    with pytest.raises(errors.NotFound):
        rt.remove_network("n1")


def test_connect_and_disconnect_change_a_containers_networks(rt: client.RuntimeClient) -> None:
    rt.create_network(client.NetworkConfig(name="n2"))
    rt.create_container(_config("cn"))
    rt.connect_network("n2", "cn", aliases=("db",))
    assert rt.get_container("cn").config.networks == (
        client.NetworkAttachmentConfig("n2", ("db",), None),
    )
    with pytest.raises(errors.AlreadyExists):
        rt.connect_network("n2", "cn")
    with pytest.raises(errors.NotFound):
        rt.connect_network("absent", "cn")
    with pytest.raises(errors.NotFound):
        rt.connect_network("n2", "absent")
    with pytest.raises(errors.FailedPrecondition):
        rt.connect_network("host", "cn")
    with pytest.raises(errors.FailedPrecondition):
        rt.remove_network("n2")  # in use
    rt.disconnect_network("n2", "cn")
    assert rt.get_container("cn").config.networks == ()
    with pytest.raises(errors.NotFound):
        rt.disconnect_network("n2", "cn")
    rt.remove_container("cn")
    rt.remove_network("n2")


def test_published_ports_are_reported_while_running(rt: client.RuntimeClient) -> None:
    rt.create_network(client.NetworkConfig(name="n3"))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        fixed = s.getsockname()[1]
    ports = (client.PortConfig(80), client.PortConfig(81, "udp", fixed, "127.0.0.1"))
    rt.create_container(
        _config("pub", ports=ports, networks=(client.NetworkAttachmentConfig("n3"),))
    )
    assert rt.list_published_ports() == []
    started = rt.start_container("pub")
    bound = {(b.container_port, b.protocol): b for b in rt.list_published_ports()}
    assert set(bound) == {(80, "tcp"), (81, "udp")}
    assert bound[(80, "tcp")].host_port > 0 and bound[(80, "tcp")].host_ip == "0.0.0.0"
    assert bound[(81, "udp")].host_port == fixed and bound[(81, "udp")].host_ip == "127.0.0.1"
    assert {b.container_id for b in bound.values()} == {started.id}
    assert {b.container for b in bound.values()} == {"pub"}
    rt.stop_container("pub", timeout=1)
    assert rt.list_published_ports() == []
    rt.remove_container("pub", force=True)
    rt.remove_network("n3")


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


# -- images: tags, archives, registries ------------------------------------------------------


@pytest.fixture(params=["fake", "local"])
def image_rt(request: pytest.FixtureRequest, busybox_tar: Path) -> Iterator[client.RuntimeClient]:
    """Like ``rt``, with the registry client's Docker config in the test's own directory."""
    if request.param == "fake":
        fake = FakeRuntime()
        fake.import_image(str(busybox_tar), IMAGE)
        yield fake
        return
    request.applymarker(pytest.mark.privileged)
    from runtime import local
    from runtime.engine import layout, registry
    from tests.conftest import REQUIRE_PRIVILEGED, _privileged_reason

    reason = _privileged_reason()
    if reason:
        if REQUIRE_PRIVILEGED:
            pytest.fail(reason)
        pytest.skip(reason)
    roots = request.getfixturevalue("roots")
    options = registry.RegistryOptions(
        docker_config_dir=str(roots.base / "docker"), certs_dirs=(), backoff=0.01
    )
    real = local.LocalRuntime(
        layout.Layout(str(roots.root), str(roots.run_root), roots.cgroup_parent), options
    )
    real.import_image(str(busybox_tar), IMAGE)
    try:
        yield real
    finally:
        for c in real.list_containers():
            real.remove_container(c.name, force=True)
        real.close()


def test_tag_untag_and_prune(image_rt: client.RuntimeClient) -> None:
    rt = image_rt
    image = rt.get_image(IMAGE)
    tagged = rt.tag_image(IMAGE, "localhost/contract/other:2")
    assert tagged.id == image.id
    assert set(tagged.references) == {IMAGE, "localhost/contract/other:2"}
    rt.remove_image(IMAGE)  # untags only
    assert rt.get_image("localhost/contract/other:2").references == ("localhost/contract/other:2",)
    with pytest.raises(errors.NotFound):
        rt.get_image(IMAGE)
    assert rt.prune_images() == []  # still named
    rt.create_container(client.ContainerConfig(name="keeps", image=image.id, command=("true",)))
    rt.remove_image("localhost/contract/other:2")
    assert rt.get_image(image.id).references == ()  # used by a container: kept, unnamed
    assert rt.prune_images() == []
    rt.remove_container("keeps")
    assert rt.prune_images() == [image.id]
    assert rt.list_images() == []
    with pytest.raises(errors.NotFound):
        rt.tag_image("localhost/contract/absent:1", "localhost/x:1")


def test_save_and_load_round_trip(image_rt: client.RuntimeClient, tmp_path: Path) -> None:
    rt = image_rt
    image = rt.get_image(IMAGE)
    rt.tag_image(IMAGE, "localhost/contract/second:1")
    archive = tmp_path / "images.tar"
    rt.save_images([IMAGE, "localhost/contract/second:1"], str(archive))
    assert archive.exists()
    rt.remove_image(IMAGE)
    rt.remove_image("localhost/contract/second:1")
    assert rt.list_images() == []
    (loaded,) = rt.load_images(str(archive))
    assert loaded.id == image.id
    assert set(loaded.references) == {IMAGE, "localhost/contract/second:1"}
    with pytest.raises(errors.InvalidSpec):
        rt.save_images([], str(tmp_path / "none.tar"))


def test_push_resolve_and_pull(
    image_rt: client.RuntimeClient, plain_registry: reg.Registry
) -> None:
    rt = image_rt
    image = rt.get_image(IMAGE)
    target = f"{plain_registry.host}/{unique_repo('contract')}:1"
    events: list[client.ProgressEvent] = []
    digest = rt.push_image(IMAGE, target, progress=events.append)
    assert digest == image.digest and events[-1].action == "done"
    with pytest.raises(errors.InvalidSpec):
        rt.push_image(image.id)  # an id names no repository
    remote = rt.resolve_remote(target)
    assert (remote.image_id, remote.manifest_digest) == (image.id, image.digest)
    rt.remove_image(IMAGE)
    assert rt.list_images() == []
    events = []
    pulled = rt.pull_image(target, progress=events.append)
    assert (pulled.id, pulled.digest, pulled.references) == (image.id, image.digest, (target,))
    assert events[0].action == "resolved" and events[-1].action == "done"
    with pytest.raises(errors.NotFound):
        rt.pull_image(f"{plain_registry.host}/{unique_repo('contract')}:absent")
    with pytest.raises(errors.NotFound):
        rt.resolve_remote(f"{plain_registry.host}/{unique_repo('contract')}:absent")


def test_login_and_logout(image_rt: client.RuntimeClient, basic_registry: reg.Registry) -> None:
    rt = image_rt
    if isinstance(rt, FakeRuntime):
        rt.registry_users[basic_registry.host] = dict(USERS)
    target = f"{basic_registry.host}/{unique_repo('contract')}:1"
    with pytest.raises(errors.FailedPrecondition):
        rt.push_image(IMAGE, target)
    with pytest.raises(errors.FailedPrecondition):
        rt.login(basic_registry.host, "alice", "wrong")
    rt.login(basic_registry.host, "alice", USERS["alice"])
    assert rt.push_image(IMAGE, target) == rt.get_image(IMAGE).digest
    assert rt.logout(basic_registry.host) is True
    assert rt.logout(basic_registry.host) is False


def _poll(predicate: Any, timeout: float = 20.0) -> Any:
    import time

    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.02)


def test_kill_ends_the_run_and_the_restart_policy_decides(rt: client.RuntimeClient) -> None:
    rt.create_container(_config("k1"))
    rt.create_container(_config("k2", restart_policy="always"))
    with pytest.raises(errors.FailedPrecondition):
        rt.kill_container("k1")  # not started
    first = rt.start_container("k1")
    killed = rt.kill_container("k1", "SIGKILL")
    assert killed.name == "k1"
    done = _poll(lambda: rt.get_container("k1").status == "exited" and rt.get_container("k1"))
    assert done and done.exit_code == 137 and first.pid
    before = rt.start_container("k2")
    rt.kill_container("k2", "KILL")
    again = _poll(
        lambda: (c := rt.get_container("k2")).status == "running" and c.restart_count >= 1 and c
    )
    assert again, rt.get_container("k2")
    assert again.pid != before.pid
    for name in ("k1", "k2"):
        rt.remove_container(name, force=True)


def test_restart_runs_it_again_and_clears_an_operator_stop(rt: client.RuntimeClient) -> None:
    rt.create_container(_config("r1", stop_grace_period=1.0))
    first = rt.start_container("r1")
    rt.stop_container("r1", timeout=1, operator=True)
    again = rt.restart_container("r1", timeout=1)
    assert again.status == "running" and not again.operator_stopped
    assert again.pid != first.pid
    rt.remove_container("r1", force=True)


def test_exec_reports_the_exit_code_and_writes_to_the_given_fds(
    rt: client.RuntimeClient,
) -> None:
    import os

    rt.create_container(_config("e1"))
    with pytest.raises(errors.FailedPrecondition):
        rt.exec_container("e1", client.ExecConfig(args=("true",)))
    rt.start_container("e1")
    args = ("sh", "-c", "echo hello-$WHO; exit 4")
    if isinstance(rt, FakeRuntime):
        rt.exec_results[args] = (4, "hello-you\n")
    r, w = os.pipe()
    try:
        session = rt.exec_container(
            "e1", client.ExecConfig(args=args, env=(("WHO", "you"),)), stdio=(0, w, w)
        )
        os.close(w)
        w = -1
        assert session.wait(20) == 4
        session.close()
        assert os.read(r, 1000) == b"hello-you\n"
    finally:
        os.close(r)
        if w >= 0:
            os.close(w)
    with pytest.raises(errors.InvalidSpec):
        rt.exec_container("e1", client.ExecConfig(args=()))
    rt.remove_container("e1", force=True)


def test_logs_with_tail_and_since(rt: client.RuntimeClient) -> None:
    rt.create_container(_config("l1", command=("sh", "-c", "echo a; echo b; echo c; sleep 30")))
    rt.start_container("l1")
    if isinstance(rt, FakeRuntime):
        for text in ("a\n", "b\n", "c\n"):
            rt.emit("l1", text)
    entries = _poll(lambda: (e := list(rt.container_logs("l1"))) and len(e) == 3 and e)
    assert [e.log for e in entries] == ["a\n", "b\n", "c\n"]
    assert [e.log for e in rt.container_logs("l1", tail=1)] == ["c\n"]
    since = entries[-1].time
    assert [e.log for e in rt.container_logs("l1", since=since)] == [
        e.log for e in entries if e.time >= since
    ]
    with pytest.raises(errors.InvalidSpec):
        list(rt.container_logs("l1", since="not a time"))
    rt.remove_container("l1", force=True)


def test_rename_keeps_the_container(rt: client.RuntimeClient) -> None:
    created = rt.create_container(_config("old-name"))
    rt.create_container(_config("taken"))
    with pytest.raises(errors.AlreadyExists):
        rt.rename_container("old-name", "taken")
    renamed = rt.rename_container("old-name", "new.name")
    assert renamed.id == created.id and renamed.name == "new.name"
    assert renamed.config.name == "new.name"
    with pytest.raises(errors.NotFound):
        rt.get_container("old-name")
    assert rt.get_container("new.name").id == created.id
    rt.remove_container("new.name", force=True)
    rt.remove_container("taken", force=True)
