"""Container mounts through the CLI: copy-up, anonymous volumes, ro, tmpfs, binds, subPath.

Real containers on real mounts; each test deletes its stack (with its
volumes) and the ``roots`` fixture fails it if a mount is left behind.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from runtime import client, errors
from tests.conftest import Roots
from tests.integration.test_volume_support import (
    SEED,
    cli,
    container_doc,
    exec_in,
    image_doc,
    ps,
    text,
    volume_doc,
    volumes,
    wait_until,
    write_image,
    write_stack,
)


def test_copy_up_fills_an_empty_volume_with_owners_modes_xattrs_and_links(
    roots: Roots, busybox_tar: Path, tmp_path: Path
) -> None:
    image = write_image(tmp_path / "img", busybox_tar)
    docs = [image_doc(image), volume_doc("data"), volume_doc("bare"), volume_doc("used")]
    mounts = ["data:/data", "{source: bare, target: /srv, noCopy: true}"]
    stack = write_stack(
        tmp_path / "cu", *docs, container_doc("app", "exec sleep 1000", mounts=mounts)
    )
    try:
        cli(roots, "apply", "-f", str(stack))
        found = volumes(roots)
        data = Path(found["cu_data"]["mountpoint"])
        root = os.stat(data)
        assert (root.st_uid, root.st_gid, stat.S_IMODE(root.st_mode)) == (1000, 1000, 0o750)
        seed = os.stat(data / "seed.txt")
        assert (data / "seed.txt").read_bytes() == SEED
        assert (seed.st_uid, seed.st_gid, stat.S_IMODE(seed.st_mode)) == (1000, 1000, 0o640)
        assert os.getxattr(data / "seed.txt", "user.origin") == b"image"
        assert os.stat(data / "link.txt").st_ino == seed.st_ino  # a hardlink stays one
        assert os.readlink(data / "sym") == "seed.txt"
        assert os.lstat(data / "sym").st_uid == 1000
        assert stat.S_IMODE(os.stat(data / "sub").st_mode) == 0o2775
        tool = os.stat(data / "sub" / "tool")
        assert stat.S_IMODE(tool.st_mode) == 0o4755 and tool.st_uid == 0
        assert os.listdir(found["cu_bare"]["mountpoint"]) == []  # noCopy
        assert exec_in(roots, "app", "cat /data/seed.txt") == SEED.decode()
        # a volume that holds anything is never touched
        used = Path(found["cu_used"]["mountpoint"])
        (used / "mine").write_text("already here\n")
        write_stack(
            tmp_path / "cu",
            *docs,
            container_doc("app", "exec sleep 1000", mounts=[*mounts, "used:/cache"]),
        )
        cli(roots, "apply", "-f", str(stack))
        assert os.listdir(used) == ["mine"]
        assert exec_in(roots, "app", "ls /cache") == "mine\n"
        # a later start of the same container does not copy again into a volume emptied
        exec_in(roots, "app", "rm -rf /data/* /data/.??*; true")
        cli(roots, "restart", "app")
        assert os.listdir(data) == []
    finally:
        cli(roots, "delete", "--stack", "cu", "--volumes", check=False)
    assert not volumes(roots)


def test_anonymous_volumes_are_made_labelled_and_reused_by_the_next_container(
    roots: Roots, busybox_tar: Path, tmp_path: Path
) -> None:
    image = write_image(tmp_path / "img", busybox_tar)
    docs = [image_doc(image)]
    app = container_doc("app", "exec sleep 1000", mounts=["/scratch"])
    stack = write_stack(tmp_path / "an", *docs, app)
    try:
        cli(roots, "apply", "-f", str(stack))
        first = {v["labels"][client.VOLUME_TARGET_LABEL]: v for v in volumes(roots).values()}
        # a mount without a source, and the image's VOLUME /cache (copied up)
        assert set(first) == {"/scratch", "/cache"}
        for v in first.values():
            assert v["anonymousOwner"] == "an_app" and v["users"] == ["an_app"]
        assert (Path(first["/cache"]["mountpoint"]) / "warm").read_bytes() == b"warm\n"
        exec_in(roots, "app", "echo kept > /scratch/note; echo more > /cache/more")
        old_id = ps(roots)["app"]["id"]
        # an env change recreates the container: the same anonymous volumes come back
        app2 = container_doc("app", "exec sleep 1000", mounts=["/scratch"], env={"V": "2"})
        write_stack(tmp_path / "an", *docs, app2)
        cli(roots, "apply", "-f", str(stack))
        assert ps(roots)["app"]["id"] != old_id
        again = {v["labels"][client.VOLUME_TARGET_LABEL]: v for v in volumes(roots).values()}
        assert {k: v["name"] for k, v in again.items()} == {k: v["name"] for k, v in first.items()}
        assert exec_in(roots, "app", "cat /scratch/note /cache/more") == "kept\nmore\n"
        # they are in use: neither rm nor prune takes them
        busy = cli(roots, "volume", "rm", first["/scratch"]["name"], check=False)
        assert busy.returncode == 1 and "in use by container an_app" in text(busy)
        assert cli(roots, "volume", "prune", "-f").stdout == b""
        # deleting the stack keeps them (data), --volumes removes them
        out = text(cli(roots, "delete", "--stack", "an"))
        assert "anonymous volume of container app" in out and "kept" in out
        assert set(volumes(roots)) == {v["name"] for v in first.values()}
    finally:
        cli(roots, "delete", "--stack", "an", "--volumes", check=False)
    assert not volumes(roots)
    for v in first.values():
        assert not os.path.exists(os.path.dirname(v["mountpoint"]))


def test_read_only_mounts_fail_writes_with_erofs(
    roots: Roots, busybox_tar: Path, tmp_path: Path
) -> None:
    image = write_image(tmp_path / "img", busybox_tar)
    host = tmp_path / "site"
    host.mkdir()
    (host / "index.html").write_text("hi\n")
    stack = write_stack(
        tmp_path / "ro",
        image_doc(image),
        volume_doc("data"),
        container_doc(
            "app",
            "exec sleep 1000",
            mounts=[
                "data:/data:ro",
                f"{{type: bind, source: {host}, target: /site, readOnly: true}}",
            ],
        ),
    )
    try:
        cli(roots, "apply", "-f", str(stack))
        for path in ("/data/x", "/site/x", "/site/index.html"):
            out = exec_in(roots, "app", f"echo no > {path}; echo rc=$?", check=False)
            assert "Read-only file system" in out and "rc=1" in out, out
        assert exec_in(roots, "app", "cat /site/index.html") == "hi\n"
        assert exec_in(roots, "app", "grep ' /data ' /proc/mounts").split()[3].startswith("ro")
        assert sorted(os.listdir(host)) == ["index.html"]
    finally:
        cli(roots, "delete", "--stack", "ro", "--volumes", check=False)


def test_tmpfs_mount_has_its_size_limit_and_mode(
    roots: Roots, busybox_tar: Path, tmp_path: Path
) -> None:
    image = write_image(tmp_path / "img", busybox_tar)
    stack = write_stack(
        tmp_path / "tm",
        image_doc(image),
        container_doc(
            "app", "exec sleep 1000", mounts=["{type: tmpfs, target: /fast, size: 1Mi, mode: 1770}"]
        ),
    )
    try:
        cli(roots, "apply", "-f", str(stack))
        out = exec_in(roots, "app", "stat -c %a /fast; grep ' /fast ' /proc/mounts")
        assert out.splitlines()[0] == "1770" and "size=1024k" in out
        out = exec_in(
            roots, "app", "dd if=/dev/zero of=/fast/big bs=64k count=32; echo rc=$?", check=False
        )
        assert "No space left on device" in out and "rc=1" in out, out
        size = int(exec_in(roots, "app", "stat -c %s /fast/big").strip())
        assert size <= 1 << 20
    finally:
        cli(roots, "delete", "--stack", "tm", "--volumes", check=False)


def test_bind_of_a_missing_path_is_an_error_naming_it_unless_create_host_path(
    roots: Roots, busybox_tar: Path, tmp_path: Path
) -> None:
    image = write_image(tmp_path / "img", busybox_tar)
    missing = tmp_path / "nowhere" / "site"
    bind = f"{{type: bind, source: {missing}, target: /site}}"
    stack = write_stack(
        tmp_path / "bm", image_doc(image), container_doc("app", "exec sleep 1000", mounts=[bind])
    )
    try:
        refused = cli(roots, "apply", "-f", str(stack), check=False)
        assert refused.returncode == 1
        assert str(missing) in text(refused) and "createHostPath" in text(refused)
        assert not missing.exists() and ps(roots) == {}
        # the engine says the same when the path vanishes between load and create
        rt = client.open_local(str(roots.root), str(roots.run_root), roots.cgroup_parent)
        try:
            image_id = rt.import_image(str(image), "localhost/volume-test:1").id
            mount = client.MountConfig(type="bind", source=str(missing), target="/site")
            try:
                rt.create_container(client.ContainerConfig("bm-x", image_id, mounts=(mount,)))
            except errors.NotFound as exc:
                assert str(missing) in str(exc)
            else:
                raise AssertionError("a missing bind source was accepted")
        finally:
            rt.close()
        ok = f"{{type: bind, source: {missing}, target: /site, createHostPath: true}}"
        write_stack(
            tmp_path / "bm", image_doc(image), container_doc("app", "exec sleep 1000", mounts=[ok])
        )
        cli(roots, "apply", "-f", str(stack))
        assert missing.is_dir()
        exec_in(roots, "app", "echo made > /site/x")
        assert (missing / "x").read_text() == "made\n"
    finally:
        cli(roots, "delete", "--stack", "bm", "--volumes", check=False)


def test_sub_path_is_resolved_inside_the_volume_and_escapes_are_refused(
    roots: Roots, busybox_tar: Path, tmp_path: Path
) -> None:
    image = write_image(tmp_path / "img", busybox_tar)
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "key").write_text("host secret\n")
    docs = [image_doc(image), volume_doc("data")]
    good = "{source: data, target: /web, subPath: site/www}"
    stack = write_stack(
        tmp_path / "sp", *docs, container_doc("app", "exec sleep 1000", mounts=[good])
    )
    try:
        cli(roots, "apply", "-f", str(stack))
        data = Path(volumes(roots)["sp_data"]["mountpoint"])
        assert (data / "site" / "www").is_dir()  # made inside the volume
        exec_in(roots, "app", "echo page > /web/index.html")
        assert (data / "site" / "www" / "index.html").read_text() == "page\n"
        # links planted in the volume (by a container, say) that lead out of it
        os.symlink("../../../../../../../../" + str(secret).lstrip("/"), data / "up")
        os.symlink(str(secret), data / "abs")
        os.symlink("site/../../..", data / "sneaky")
        for sub in ("up", "abs", "sneaky/x", "site/../up"):
            bad = f"{{source: data, target: /leak, subPath: {sub!r}}}"
            write_stack(
                tmp_path / "sp",
                *docs,
                container_doc("app", "exec sleep 1000", mounts=[good]),
                container_doc("thief", "exec sleep 1000", mounts=[bad]),
            )
            refused = cli(roots, "apply", "-f", str(stack), check=False)
            assert refused.returncode == 1, text(refused)
            if ".." in sub:
                assert "subPath" in text(refused)  # the manifest is refused at load
            else:
                assert "escapes" in text(refused), text(refused)
            assert "thief" not in ps(roots) or ps(roots)["thief"]["status"] != "running"
        assert (secret / "key").read_text() == "host secret\n"
        # a link that stays inside is followed, inside
        os.symlink("site/www", data / "alias")
        inside = "{source: data, target: /alias, subPath: alias}"
        write_stack(
            tmp_path / "sp",
            *docs,
            container_doc("app", "exec sleep 1000", mounts=[good, inside]),
        )
        cli(roots, "apply", "-f", str(stack))
        assert exec_in(roots, "app", "cat /alias/index.html") == "page\n"
    finally:
        cli(roots, "delete", "--stack", "sp", "--volumes", check=False)


def test_bind_propagation_rslave_lets_host_mounts_in_and_rprivate_does_not(
    roots: Roots, busybox_tar: Path, tmp_path: Path
) -> None:
    """Through the runtime client (the manifest has no propagation field yet)."""
    import subprocess

    shared = tmp_path / "shared"
    (shared / "sub").mkdir(parents=True)
    outs = {name: tmp_path / f"out-{name}" for name in ("slave", "private")}
    for out in outs.values():
        out.mkdir()
    watch = (
        "while true; do grep -c ' /prop/sub ' /proc/mounts > /out/n.tmp; "
        "mv /out/n.tmp /out/n; sleep 0.05; done"
    )
    subprocess.run(["mount", "--bind", str(shared), str(shared)], check=True)
    rt = client.open_local(str(roots.root), str(roots.run_root), roots.cgroup_parent)
    try:
        subprocess.run(["mount", "--make-shared", str(shared)], check=True)
        image = rt.import_image(str(busybox_tar), "localhost/prop:1").id
        for name, propagation in (("slave", "rslave"), ("private", None)):
            mounts = (
                client.MountConfig(
                    type="bind", source=str(shared), target="/prop", propagation=propagation
                ),
                client.MountConfig(type="bind", source=str(outs[name]), target="/out"),
            )
            config = client.ContainerConfig(
                name=f"prop-{name}", image=image, command=("sh", "-c", watch), mounts=mounts
            )
            rt.create_container(config)
            rt.start_container(config.name)
        for out in outs.values():
            wait_until(lambda o=out: (o / "n").exists(), 20, "the watchers to start")
        subprocess.run(["mount", "-t", "tmpfs", "late", str(shared / "sub")], check=True)
        wait_until(
            lambda: (outs["slave"] / "n").read_text().strip() == "1", 20, "the mount to propagate"
        )
        seen = (outs["private"] / "n").stat().st_mtime_ns
        wait_until(lambda: (outs["private"] / "n").stat().st_mtime_ns != seen, 20, "a later look")
        assert (outs["private"] / "n").read_text().strip() == "0"
        with pytest.raises(errors.InvalidSpec, match="unknown propagation"):
            bad = client.MountConfig(type="bind", source=str(shared), target="/p", propagation="x")
            rt.create_container(client.ContainerConfig(name="bad", image=image, mounts=(bad,)))
    finally:
        for name in ("prop-slave", "prop-private"):
            try:
                rt.remove_container(name, force=True)
            except errors.NotFound:
                pass
        rt.close()
        subprocess.run(["umount", str(shared / "sub")], check=False)
        subprocess.run(["umount", str(shared)], check=False)
