"""``volume backup`` / ``volume restore`` through the CLI, on volumes that containers use.

The writer appends ``line N`` to ``stream`` and then records N in ``count``,
as fast as it can: at any instant ``stream`` has ``count`` or ``count + 1``
lines. A copy made while it runs (``count`` is read before ``stream``, with a
4 MiB file in between) only keeps that invariant if the writer was paused.
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
import tarfile
from pathlib import Path

from runtime import client
from tests.conftest import Roots
from tests.integration.test_volume_support import (
    cli,
    container_doc,
    exec_in,
    image_doc,
    ps,
    text,
    tree,
    volume_doc,
    volumes,
    wait_until,
    write_image,
    write_stack,
)

WRITER = (  # $$ is a literal $ in a manifest
    'i=0; while true; do i=$$((i+1)); echo "line $$i" >> /data/stream; '
    "echo $$i > /data/count.tmp; mv /data/count.tmp /data/count; done"
)
ODD_NAME = b"caf\xe9-latin1"  # not UTF-8


def _seed(root: Path) -> None:
    """Entries with every kind of metadata a volume can hold."""
    os.chown(root, 1000, 1000)
    os.chmod(root, 0o770)
    (root / "data.bin").write_bytes(os.urandom(4 << 20))
    owned = root / "owned"
    owned.write_text("secret\n")
    os.chown(owned, 1000, 1001)
    os.chmod(owned, 0o600)
    tool = root / "tool"
    tool.write_bytes(b"#!/bin/sh\n")
    os.chmod(tool, 0o4755)
    os.setxattr(tool, "user.note", b"\x00\xffbinary")
    os.setxattr(root / "data.bin", "user.kind", b"random")
    os.link(owned, root / "owned-link")
    os.symlink("owned", root / "owned-sym")
    os.mkfifo(root / "pipe", 0o640)
    os.mknod(root / "null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    sticky = root / "shared"
    sticky.mkdir()
    os.chmod(sticky, 0o1777)
    deep = root / "a" / ("long-" * 30) / "b"
    deep.mkdir(parents=True)
    (deep / "leaf").write_text("deep\n")
    os.setxattr(deep, "user.dir", b"yes")
    with open(os.path.join(os.fsencode(root), ODD_NAME), "wb") as f:
        f.write(b"latin-1 name\n")
    os.utime(root / "data.bin", (1_500_000_000, 1_500_000_000))


def _members(archive: bytes) -> dict[str, tuple[object, ...]]:
    found: dict[str, tuple[object, ...]] = {}
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:") as tar:
        for m in tar:
            data = tar.extractfile(m) if m.isreg() else None
            digest = hashlib.sha256(data.read()).hexdigest() if data else m.linkname
            xattrs = {k: v for k, v in m.pax_headers.items() if k.startswith("SCHILY.xattr.")}
            found[m.name] = (m.type, m.mode, m.uid, m.gid, int(m.mtime), xattrs, digest)
    return found


def test_backup_of_a_volume_in_use_restores_byte_identical_content_and_metadata(
    roots: Roots, busybox_tar: Path, tmp_path: Path
) -> None:
    image = write_image(tmp_path / "img", busybox_tar)
    stack = write_stack(
        tmp_path / "vb",
        image_doc(image),
        volume_doc("data"),
        container_doc("writer", WRITER, mounts=["data:/data"]),
    )
    try:
        cli(roots, "apply", "-f", str(stack))
        data = Path(volumes(roots)["vb_data"]["mountpoint"])
        _seed(data)
        before = tree(data, skip=("stream", "count", "count.tmp"))
        wait_until(lambda: (data / "count").exists(), 10, "the writer to write")

        archive = cli(roots, "volume", "backup", "vb_data").stdout
        assert ps(roots)["writer"]["status"] == "running"
        members = _members(archive)
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            count = int(tar.extractfile("count").read())  # type: ignore[union-attr]
            lines = tar.extractfile("stream").read().decode().splitlines()  # type: ignore[union-attr]
        assert lines == [f"line {i}" for i in range(1, len(lines) + 1)]
        assert len(lines) in (count, count + 1), "the writer ran during the copy"
        assert (
            members["owned-link"][0] == tarfile.LNKTYPE and members["pipe"][0] == tarfile.FIFOTYPE
        )

        # restored into a new volume: exactly the archive, and the seed exactly as it was
        cli(roots, "volume", "restore", "vb-copy", input=archive)
        copy = Path(volumes(roots)["vb-copy"]["mountpoint"])
        restored = tree(copy)
        # the writer's own files (count.tmp too, if the pause caught it between write and rename)
        written = ("stream", "count", "count.tmp", ".")
        assert {k: v for k, v in restored.items() if k not in written} == {
            k: v for k, v in before.items() if k != "."
        }
        assert restored["."][:4] == before["."][:4]  # type, mode, owner of the volume itself
        assert (copy / "count").read_text() == f"{count}\n"
        assert (copy / "stream").read_text().splitlines() == lines
        assert os.getxattr(copy / "tool", "user.note") == b"\x00\xffbinary"
        assert os.stat(copy / "owned").st_ino == os.stat(copy / "owned-link").st_ino
        # and a backup of the copy is the same bytes
        assert cli(roots, "volume", "backup", "vb-copy").stdout == archive
        assert _members(archive).keys() == members.keys()
    finally:
        cli(roots, "delete", "--stack", "vb", "--volumes", check=False)
        cli(roots, "volume", "rm", "vb-copy", check=False)
    assert volumes(roots) == {}


def test_restore_replaces_a_used_volume_only_when_asked_and_restarts_its_users(
    roots: Roots, busybox_tar: Path, tmp_path: Path
) -> None:
    image = write_image(tmp_path / "img", busybox_tar)
    stack = write_stack(
        tmp_path / "rr",
        image_doc(image),
        volume_doc("data"),
        container_doc("app", "cat /state/v > /tmp/seen; exec sleep 1000", mounts=["data:/state"]),
    )
    try:
        cli(roots, "apply", "-f", str(stack))
        data = Path(volumes(roots)["rr_data"]["mountpoint"])
        (data / "v").write_text("old\n")
        old_archive = cli(roots, "volume", "backup", "rr_data").stdout
        (data / "v").write_text("new\n")
        (data / "extra").write_text("only in the new content\n")
        refused = cli(roots, "volume", "restore", "rr_data", input=old_archive, check=False)
        assert refused.returncode == 1 and "--replace" in text(refused)
        assert (data / "v").read_text() == "new\n"
        started = ps(roots)["app"]["startedAt"]
        cli(roots, "volume", "restore", "rr_data", "--replace", input=old_archive)
        assert sorted(os.listdir(data)) == ["v"] and (data / "v").read_text() == "old\n"
        app = ps(roots)["app"]
        assert app["status"] == "running" and app["startedAt"] != started
        assert exec_in(roots, "app", "cat /tmp/seen") == "old\n"  # it read the restored data
    finally:
        cli(roots, "delete", "--stack", "rr", "--volumes", check=False)


def _hostile(entries: list[tuple[str, bytes, str]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, kind, link in entries:
            info = tarfile.TarInfo(name)
            info.type, info.linkname = kind, link
            data = b"pwned\n" if kind == tarfile.REGTYPE else b""
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_restore_refuses_an_archive_that_escapes_and_changes_nothing(
    roots: Roots, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    cli(roots, "volume", "create", "safe")
    try:
        data = Path(volumes(roots)["safe"]["mountpoint"])
        (data / "keep").write_text("mine\n")
        climbing = os.path.relpath(outside, data)
        for entries in (
            [("../evil", tarfile.REGTYPE, "")],
            [("ok", tarfile.REGTYPE, ""), (f"{climbing}/evil", tarfile.REGTYPE, "")],
            [("hard", tarfile.LNKTYPE, "../../../../../../etc/passwd")],
        ):
            out = cli(
                roots,
                "volume",
                "restore",
                "safe",
                "--replace",
                input=_hostile(entries),
                check=False,
            )
            assert out.returncode == 1 and "refused, the volume was not changed" in text(out)
            assert sorted(os.listdir(data)) == ["keep"] and (data / "keep").read_text() == "mine\n"
            assert os.listdir(outside) == []
        # absolute names and symlinked parents stay inside the volume
        contained = _hostile(
            [
                ("/abs", tarfile.REGTYPE, ""),
                ("link", tarfile.SYMTYPE, str(outside)),
                ("link/evil", tarfile.REGTYPE, ""),
            ]
        )
        cli(roots, "volume", "restore", "safe", "--replace", input=contained)
        assert os.listdir(outside) == []
        assert (data / "abs").read_text() == "pwned\n"
        assert (data / str(outside).lstrip("/") / "evil").read_text() == "pwned\n"
        # restore into a missing volume makes it; a refused one leaves none behind
        escaping = _hostile([("../x", tarfile.REGTYPE, "")])
        out = cli(roots, "volume", "restore", "fresh", input=escaping, check=False)
        assert out.returncode == 1 and "fresh" not in volumes(roots)
    finally:
        cli(roots, "volume", "rm", "safe", check=False)
    assert volumes(roots) == {}


def test_backup_pauses_containers_of_an_external_runtime_too(
    roots: Roots, busybox_tar: Path
) -> None:
    """runc is paused through its own CLI (``--root`` the engine's). (crun refuses this
    host's hybrid cgroups; it would go the same way.)"""
    rt = client.open_local(str(roots.root), str(roots.run_root), roots.cgroup_parent)
    names = []
    try:
        image = rt.import_image(str(busybox_tar), "localhost/ext:1").id
        rt.create_volume(client.VolumeConfig(name="ext-data"))
        script = WRITER.replace("$$", "$")
        for binary in ("/usr/sbin/runc",):
            name = f"ext-{os.path.basename(binary)}"
            mount = client.MountConfig(type="volume", source="ext-data", target="/data")
            rt.create_container(
                client.ContainerConfig(
                    name=name,
                    image=image,
                    command=("sh", "-c", script.replace("/data/", f"/data/{name}-")),
                    mounts=(mount,),
                    oci_runtime=binary,
                )
            )
            names.append(name)
            rt.start_container(name)
        data = Path(rt.get_volume("ext-data").mountpoint)
        wait_until(lambda: all((data / f"{n}-count").exists() for n in names), 20, "writers")
        out = io.BytesIO()
        rt.backup_volume("ext-data", out)
        with tarfile.open(fileobj=io.BytesIO(out.getvalue())) as tar:
            for name in names:
                count = int(tar.extractfile(f"{name}-count").read())  # type: ignore[union-attr]
                stream = tar.extractfile(f"{name}-stream").read()  # type: ignore[union-attr]
                assert len(stream.decode().splitlines()) in (count, count + 1), name
        for name in names:
            assert rt.get_container(name).status == "running"
    finally:
        for name in names:
            rt.remove_container(name, force=True)
        try:
            rt.remove_volume("ext-data")
        finally:
            rt.close()
