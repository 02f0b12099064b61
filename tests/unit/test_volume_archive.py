"""The volume archive format and the restore's swap, on plain directories."""

from __future__ import annotations

import io
import os
import stat
import tarfile
from pathlib import Path

import pytest

from runtime import errors
from runtime.engine import volume_archive


def _populate(root: Path) -> None:
    (root / "dir" / "deeper").mkdir(parents=True)
    (root / "dir" / "deeper" / "file").write_bytes(b"content\n" * 1000)
    os.link(root / "dir" / "deeper" / "file", root / "hard")
    os.symlink("dir/deeper/file", root / "soft")
    os.symlink("/nowhere/at/all", root / "dangling")
    os.mkfifo(root / "fifo")
    (root / "empty").write_bytes(b"")
    os.setxattr(root / "empty", "user.bin", b"\x00\x01\xff")
    os.chmod(root / "dir", 0o1750)
    os.utime(root / "empty", (1_000_000_000, 1_000_000_000))


def _backup(root: Path) -> bytes:
    out = io.BytesIO()
    volume_archive.backup(str(root), out, "test")
    return out.getvalue()


def test_backup_restores_to_the_same_tree_and_the_same_bytes(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    dst.mkdir()
    _populate(src)
    archive = _backup(src)
    assert _backup(src) == archive  # deterministic
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        names = tar.getnames()
        hard = tar.getmember("hard")
    assert names[0] == "." and names == [".", *sorted(names[1:], key=lambda n: n.split("/"))]
    assert hard.islnk() and hard.linkname == "dir/deeper/file"
    volume_archive.restore(str(dst), io.BytesIO(archive), "test", replace=False)
    assert _backup(dst) == archive
    assert os.stat(dst / "hard").st_ino == os.stat(dst / "dir/deeper/file").st_ino
    assert os.readlink(dst / "dangling") == "/nowhere/at/all"
    assert stat.S_ISFIFO(os.lstat(dst / "fifo").st_mode)
    assert os.getxattr(dst / "empty", "user.bin") == b"\x00\x01\xff"
    assert stat.S_IMODE(os.stat(dst / "dir").st_mode) == 0o1750
    assert int(os.stat(dst / "empty").st_mtime) == 1_000_000_000
    assert [n for n in os.listdir(dst) if n.startswith(".pyreconcile")] == []


def test_restore_replaces_only_when_asked_and_leaves_nothing_of_the_old(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    dst.mkdir()
    (src / "new").write_text("new\n")
    (dst / "old").write_text("old\n")
    archive = _backup(src)
    with pytest.raises(errors.FailedPrecondition, match="--replace"):
        volume_archive.restore(str(dst), io.BytesIO(archive), "test", replace=False)
    assert os.listdir(dst) == ["old"]
    (dst / (volume_archive.STAGING_PREFIX + "stale")).mkdir()  # a restore cut short
    volume_archive.restore(str(dst), io.BytesIO(archive), "test", replace=True)
    assert os.listdir(dst) == ["new"] and _backup(dst) == archive


def test_an_interrupted_swap_keeps_the_old_content_and_blocks_the_next_restore(
    tmp_path: Path,
) -> None:
    dst = tmp_path / "dst"
    aside = dst / (volume_archive.OLD_PREFIX + "x")
    aside.mkdir(parents=True)
    (aside / "precious").write_text("data\n")
    with pytest.raises(errors.FailedPrecondition, match="interrupted"):
        volume_archive.restore(str(dst), io.BytesIO(_backup(tmp_path)), "test", replace=True)
    assert (aside / "precious").read_text() == "data\n"


@pytest.mark.parametrize("name", ["../evil", "a/../../evil", "ok/../../../evil"])
def test_an_archive_that_climbs_out_is_refused_and_changes_nothing(
    tmp_path: Path, name: str
) -> None:
    dst = tmp_path / "vol" / "dst"
    dst.mkdir(parents=True)
    (dst / "keep").write_text("mine\n")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for n in ("fine", name):
            info = tarfile.TarInfo(n)
            info.size = 5
            tar.addfile(info, io.BytesIO(b"pwned"))
    with pytest.raises(errors.InvalidSpec, match="the volume was not changed"):
        volume_archive.restore(str(dst), io.BytesIO(buf.getvalue()), "test", replace=True)
    assert os.listdir(dst) == ["keep"]
    assert sorted(os.listdir(tmp_path / "vol")) == ["dst"]
    assert not (tmp_path / "evil").exists()


@pytest.mark.privileged
def test_owners_setuid_and_devices_round_trip(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    dst.mkdir()
    tool = src / "tool"
    tool.write_bytes(b"x")
    os.chown(tool, 1234, 5678)
    os.chmod(tool, 0o6755)
    os.mknod(src / "null", stat.S_IFCHR | 0o600, os.makedev(1, 3))
    os.chown(src, 1000, 1000)
    os.chmod(src, 0o700)
    archive = _backup(src)
    volume_archive.restore(str(dst), io.BytesIO(archive), "test", replace=False)
    st = os.stat(dst / "tool")
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (1234, 5678, 0o6755)
    assert os.stat(dst / "null").st_rdev == os.makedev(1, 3)
    root = os.stat(dst)
    assert (root.st_uid, root.st_gid, stat.S_IMODE(root.st_mode)) == (1000, 1000, 0o700)
    assert _backup(dst) == archive
