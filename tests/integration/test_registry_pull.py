# ruff: noqa: F811 - pytest fixtures imported from tests.support are parameter names here
"""Push and pull against real ``docker-registry`` instances on loopback: plain
HTTP, htpasswd over TLS with a throw-away CA, and token auth from a token
server of our own; then run what was pulled."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from runtime import client, errors, local
from runtime.engine import registry
from tests.support import registry as reg
from tests.support.registry_fixtures import (  # noqa: F401 - fixtures
    USERS,
    EngineFactory,
    engines,
    plain_registry,
    tls_registry,
    token_registry,
    trust,
    unique_repo,
)


def run_echo(rt: local.LocalRuntime, image: str, name: str) -> str:
    """Create and start a container of ``image`` printing a line; its output."""
    rt.create_container(
        client.ContainerConfig(name=name, image=image, command=("sh", "-c", "echo ran-$((6*7))"))
    )
    rt.start_container(name)
    done = rt.wait_container(name, timeout=30)
    assert done.exit_code == 0, done
    out = "".join(e.log for e in rt.container_logs(name))
    rt.remove_container(name)
    return out


def assert_no_leftovers(rt: local.LocalRuntime) -> None:
    """No image, no blob, no snapshot: a failed pull leaves nothing."""
    assert rt.list_images() == []
    assert rt._content.list() == []
    assert rt._snapshots.list() == []
    assert list(rt._content.iter_ingest()) == []


def test_plain_registry_push_pull_and_run(
    engines: EngineFactory, plain_registry: reg.Registry, busybox_tar: Path
) -> None:
    source = engines("source")
    local_image = source.import_image(str(busybox_tar), "localhost/bb:1")
    target = f"{plain_registry.host}/{unique_repo()}:1"
    events: list[client.ProgressEvent] = []
    digest = source.push_image("localhost/bb:1", target, progress=events.append)
    assert digest == local_image.digest  # the manifest's exact bytes were pushed
    assert {e.action for e in events} >= {"uploading", "uploaded", "done"}

    rt = engines("pulled")
    events = []
    pulled = rt.pull_image(target, progress=events.append)
    assert (pulled.id, pulled.digest) == (local_image.id, local_image.digest)
    assert pulled.references == (target,)
    actions = [e.action for e in events]
    assert actions[0] == "resolved" and actions[-1] == "done" and "downloaded" in actions
    progress = [e for e in events if e.action == "downloading" and e.current]
    assert progress and all(e.total and e.current <= e.total for e in progress)
    assert run_echo(rt, target, "echo1") == "ran-42\n"

    again: list[client.ProgressEvent] = []
    assert rt.pull_image(target, progress=again.append).id == pulled.id
    assert {e.action for e in again if e.id.startswith("sha256:")} == {"exists"}

    remote = rt.resolve_remote(target)
    assert (remote.image_id, remote.manifest_digest, remote.digest) == (
        pulled.id, pulled.digest, pulled.digest,
    )  # fmt: skip
    with pytest.raises(errors.NotFound):
        rt.pull_image(f"{plain_registry.host}/{unique_repo()}:1")
    assert [i.id for i in rt.list_images()] == [pulled.id]


def test_chunked_upload_cross_repo_mount_tags_and_prune(
    engines: EngineFactory, plain_registry: reg.Registry, busybox_tar: Path
) -> None:
    rt = engines("a", chunk_size=256 << 10)  # busybox's layer (~2 MB) goes in PATCH chunks
    image = rt.import_image(str(busybox_tar), "localhost/bb:1")
    first = f"{plain_registry.host}/{unique_repo()}:1"
    second = f"{plain_registry.host}/{unique_repo()}:2"
    rt.push_image("localhost/bb:1", first)
    assert set(rt.tag_image("localhost/bb:1", first).references) == {"localhost/bb:1", first}
    events: list[client.ProgressEvent] = []
    rt.push_image(first, second, progress=events.append)
    mounted = {e.id for e in events if e.action == "mounted"}
    assert mounted == {image.id, *[d for d in rt._images.get(image.id).diff_ids]}
    layer = rt._images.get(image.id).diff_ids[0]
    assert plain_registry.blob_path(layer).read_bytes() == busybox_tar.read_bytes()

    other = engines("b")
    assert other.pull_image(second).id == image.id
    assert other.prune_images() == []  # named: kept
    other.tag_image(second, "localhost/kept:1")
    other.remove_image(second)
    assert other.get_image("localhost/kept:1").id == image.id
    assert other.prune_images(all_unused=True) == [image.id]
    assert other.list_images() == [] and other._content.list() == []


def test_tls_htpasswd_registry(
    engines: EngineFactory, tls_registry: reg.Registry, busybox_tar: Path
) -> None:
    rt = engines("tls")
    rt.import_image(str(busybox_tar), "localhost/bb:1")
    target = f"{tls_registry.host}/{unique_repo()}:1"
    with pytest.raises(errors.Unavailable, match=r"certs\.d"):
        rt.push_image("localhost/bb:1", target)  # an unknown CA: never downgraded to HTTP

    rt = engines("tls-trusting")
    trust(rt, tls_registry)
    rt.import_image(str(busybox_tar), "localhost/bb:1")
    with pytest.raises(registry.AuthenticationRequired, match="pyreconcile login"):
        rt.push_image("localhost/bb:1", target)
    with pytest.raises(registry.AuthenticationRequired):
        rt.login(tls_registry.host, "alice", "wrong")
    rt.login(tls_registry.host, "alice", USERS["alice"])
    config = json.loads(
        (Path(rt._registries.options.docker_config_dir) / "config.json").read_text()
    )
    assert tls_registry.host in config["auths"]
    rt.push_image("localhost/bb:1", target)

    puller = engines("tls-puller")
    trust(puller, tls_registry)
    with pytest.raises(registry.AuthenticationRequired):
        puller.pull_image(target)
    puller.login(f"https://{tls_registry.host}/", "bob", USERS["bob"])
    pulled = puller.pull_image(target)
    assert run_echo(puller, target, "tls-echo") == "ran-42\n"
    assert puller.logout(tls_registry.host) is True
    assert puller.logout(tls_registry.host) is False
    puller.remove_image(target)
    assert puller.list_images() == []
    with pytest.raises(registry.AuthenticationRequired):
        puller.pull_image(target)
    assert pulled.id == rt.get_image("localhost/bb:1").id


def test_token_registry_scopes(
    engines: EngineFactory, token_registry: reg.Registry, busybox_tar: Path
) -> None:
    assert token_registry.token is not None
    repo = unique_repo()
    target = f"{token_registry.host}/{repo}:1"
    pusher = engines("alice")
    pusher.import_image(str(busybox_tar), "localhost/bb:1")
    pusher.login(token_registry.host, "alice", USERS["alice"])
    pusher.push_image("localhost/bb:1", target)
    asked = [r for r in token_registry.token.requests if r["user"] == "alice"]
    assert any(f"repository:{repo}:pull,push" in r["scopes"] for r in asked)

    reader = engines("bob")
    reader.login(token_registry.host, "bob", USERS["bob"])
    assert run_echo(reader, reader.pull_image(target).id, "token-echo") == "ran-42\n"
    reader.tag_image(target, f"{token_registry.host}/{repo}:bob")
    with pytest.raises(registry.AccessDenied, match=r"denied .*push.* user 'bob'"):
        reader.push_image(f"{token_registry.host}/{repo}:bob")

    anonymous = engines("anonymous")
    assert anonymous.pull_image(target).id == reader.get_image(target).id
    with pytest.raises(errors.FailedPrecondition, match="pyreconcile login"):
        anonymous.pull_image(f"{token_registry.host}/secret/x:1")
    with pytest.raises(registry.AuthenticationRequired):
        anonymous.login(token_registry.host, "bob", "wrong")


def test_multi_layer_gzip_and_zstd_layers_shared_between_images(
    engines: EngineFactory, plain_registry: reg.Registry, busybox_tar: Path
) -> None:
    raw = reg.RawClient(plain_registry)
    base = busybox_tar.read_bytes()
    extra = reg.layer_tar({"etc/motd": b"hello from layer two\n"})
    repo = unique_repo()
    gz = reg.build_image([base, extra], compression="gzip", config={"Cmd": ["cat", "/etc/motd"]})
    zs = reg.build_image([base, reg.layer_tar({"zstd": b"z"})], compression="zstd")
    raw.push(repo, "gz", gz)
    raw.push(repo, "zstd", zs)
    rt = engines("layers", parallel=2)
    first = rt.pull_image(f"{plain_registry.host}/{repo}:gz")
    assert first.digest == gz.manifest_digest and first.id == gz.config_digest
    snapshots = len(rt._snapshots.list())
    assert snapshots == 2
    second = rt.pull_image(f"{plain_registry.host}/{repo}:zstd")
    assert second.id == zs.config_digest
    assert len(rt._snapshots.list()) == 3  # busybox's layer (same diff_id) unpacked once
    rt.create_container(client.ContainerConfig(name="motd", image=first.id))
    rt.start_container("motd")
    assert rt.wait_container("motd", timeout=30).exit_code == 0
    assert "".join(e.log for e in rt.container_logs("motd")) == "hello from layer two\n"
    rt.remove_container("motd")


def test_multi_platform_index(
    engines: EngineFactory, plain_registry: reg.Registry, busybox_tar: Path
) -> None:
    raw = reg.RawClient(plain_registry)
    repo = unique_repo()
    layer = busybox_tar.read_bytes()
    platforms = [("amd64", None), ("arm64", "v8"), ("arm", "v7"), ("arm", "v6")]
    built = {p: reg.build_image([layer], architecture=p[0], variant=p[1]) for p in platforms}
    attestation = reg.build_image([reg.layer_tar({"sbom.json": b"{}"})], architecture="unknown")
    entries = [
        {"mediaType": reg.OCI_MANIFEST, "digest": attestation.manifest_digest,
         "size": len(attestation.manifest),
         "platform": {"os": "unknown", "architecture": "unknown"},
         "annotations": {"vnd.docker.reference.type": "attestation-manifest"}},
    ]  # fmt: skip
    for (arch, variant), image in built.items():
        raw.push(repo, image.manifest_digest, image)
        plat = {"os": "linux", "architecture": arch, **({"variant": variant} if variant else {})}
        entries.append({"mediaType": reg.OCI_MANIFEST, "digest": image.manifest_digest,
                        "size": len(image.manifest), "platform": plat})  # fmt: skip
    raw.push(repo, attestation.manifest_digest, attestation)
    index = json.dumps(
        {"schemaVersion": 2, "mediaType": reg.OCI_INDEX, "manifests": entries}
    ).encode()
    index_digest = raw.put_manifest(repo, "multi", index, reg.OCI_INDEX)
    ref = f"{plain_registry.host}/{repo}:multi"

    rt = engines("multi")
    host = rt.pull_image(ref)
    assert host.digest == built[("amd64", None)].manifest_digest
    remote = rt.resolve_remote(ref)
    assert (remote.digest, remote.platform) == (index_digest, "linux/amd64")
    for wanted, key in [("linux/arm64", ("arm64", "v8")), ("linux/arm/v7", ("arm", "v7")),
                        ("arm/v6", ("arm", "v6")), ("aarch64", ("arm64", "v8"))]:  # fmt: skip
        assert rt.resolve_remote(ref, platform=wanted).manifest_digest == (
            built[key].manifest_digest
        ), wanted
    arm = rt.pull_image(ref, platform="linux/arm64")
    assert arm.id == built[("arm64", "v8")].config_digest
    assert len(rt._snapshots.list()) == 1  # same layer under both
    with pytest.raises(errors.NotFound, match=r"linux/s390x.*linux/amd64"):
        rt.pull_image(ref, platform="linux/s390x")
    by_digest = rt.pull_image(f"{plain_registry.host}/{repo}@{index_digest}")
    assert by_digest.id == host.id
    assert rt.get_image(f"{plain_registry.host}/{repo}@{index_digest}").id == host.id


# -- failures leave nothing --------------------------------------------------------------------


def _broken(registry_: reg.Registry, busybox_tar: Path, **kw: object) -> tuple[str, reg.BuiltImage]:
    raw = reg.RawClient(registry_)
    repo = unique_repo()
    image = reg.build_image([busybox_tar.read_bytes()], **kw)  # type: ignore[arg-type]
    raw.push(repo, "1", image)
    return f"{registry_.host}/{repo}:1", image


def test_corrupted_blob_fails_cleanly(
    engines: EngineFactory, plain_registry: reg.Registry, busybox_tar: Path
) -> None:
    # a layer of its own: blobs are shared by every repository of the registry
    unique = reg.layer_tar({"data": os.urandom(200_000)})
    raw = reg.RawClient(plain_registry)
    repo = unique_repo()
    image = reg.build_image([unique])
    raw.push(repo, "1", image)
    ref = f"{plain_registry.host}/{repo}:1"
    layer = json.loads(image.manifest)["layers"][0]["digest"]
    blob = plain_registry.blob_path(layer)
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0xFF
    blob.write_bytes(bytes(data))
    rt = engines("corrupt")
    with pytest.raises(errors.InvalidSpec, match="corrupt or tampered"):
        rt.pull_image(ref)
    assert_no_leftovers(rt)


@pytest.mark.parametrize("delta", [+100, -100], ids=["size-too-big", "size-too-small"])
def test_wrong_layer_size_fails_cleanly(
    engines: EngineFactory, plain_registry: reg.Registry, busybox_tar: Path, delta: int
) -> None:
    import gzip

    real = len(gzip.compress(busybox_tar.read_bytes(), mtime=0))
    ref, _ = _broken(plain_registry, busybox_tar, sizes=[real + delta])
    rt = engines("size")
    with pytest.raises(errors.InvalidSpec):
        rt.pull_image(ref)
    assert_no_leftovers(rt)


def test_diff_id_mismatch_fails_cleanly(
    engines: EngineFactory, plain_registry: reg.Registry, busybox_tar: Path
) -> None:
    ref, _ = _broken(plain_registry, busybox_tar, diff_ids=["sha256:" + "ab" * 32])
    rt = engines("diffid")
    with pytest.raises(errors.InvalidSpec, match="unpacks to"):
        rt.pull_image(ref)
    assert_no_leftovers(rt)


def test_truncated_download_resumes_with_range(
    engines: EngineFactory, plain_registry: reg.Registry, busybox_tar: Path
) -> None:
    ref, image = _broken(plain_registry, busybox_tar)
    proxy = reg.BreakingProxy(plain_registry.url, cut_after=300_000, times=1)
    try:
        rt = engines("resume")
        pulled = rt.pull_image(ref.replace(plain_registry.host, proxy.host))
        assert pulled.digest == image.manifest_digest
        assert proxy.cuts == 1
        resumed = [int(r[6:-1]) for r in proxy.ranges if r]
        assert len(resumed) == 1 and 200_000 < resumed[0] <= 300_000  # near the cut
    finally:
        proxy.close()


def test_registry_dropping_every_connection_fails_cleanly(
    engines: EngineFactory, plain_registry: reg.Registry, busybox_tar: Path
) -> None:
    ref, _ = _broken(plain_registry, busybox_tar)
    proxy = reg.BreakingProxy(plain_registry.url, cut_after=50_000, times=None)
    try:
        rt = engines("drop", resumes=3, attempts=2)
        with pytest.raises(errors.Unavailable, match="connection broke"):
            rt.pull_image(ref.replace(plain_registry.host, proxy.host))
        assert_no_leftovers(rt)
    finally:
        proxy.close()


def test_unreachable_registry_is_unavailable(engines: EngineFactory) -> None:
    port = reg.free_port()  # nothing listens there
    rt = engines("down", attempts=2)
    with pytest.raises(errors.Unavailable, match=f"127.0.0.1:{port}"):
        rt.pull_image(f"127.0.0.1:{port}/test/x:1")
    assert_no_leftovers(rt)
