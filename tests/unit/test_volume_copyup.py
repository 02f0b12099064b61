"""Copy-up of an image's content into an empty volume, from a directory standing in
for a container's mounted rootfs."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from runtime.engine import volume_copyup


def _rootfs(tmp_path: Path) -> Path:
    root = tmp_path / "rootfs"
    data = root / "var" / "lib" / "app"
    (data / "sub").mkdir(parents=True)
    (data / "conf").write_text("conf\n")
    os.chmod(data / "conf", 0o640)
    os.setxattr(data / "conf", "user.origin", b"image")
    os.link(data / "conf", data / "conf.link")
    os.symlink("conf", data / "conf.sym")
    os.mkfifo(data / "sub" / "fifo", 0o600)
    os.chmod(data / "sub", 0o2750)
    os.chmod(data, 0o750)
    os.utime(data / "conf", (1_234_567_890, 1_234_567_890))
    (root / "etc").mkdir()
    (root / "etc" / "inside").write_text("rootfs etc\n")
    os.symlink("/var/lib/app", root / "srv")  # absolute: relative to the rootfs
    os.symlink("/", root / "top")
    (root / "file").write_text("not a directory\n")
    return root


def test_an_empty_volume_gets_the_content_with_its_metadata(tmp_path: Path) -> None:
    root = _rootfs(tmp_path)
    vol = tmp_path / "vol"
    vol.mkdir()
    assert volume_copyup.copy_up(str(root), "/srv", str(vol))  # through the rootfs symlink
    assert sorted(os.listdir(vol)) == ["conf", "conf.link", "conf.sym", "sub"]
    assert stat.S_IMODE(os.stat(vol).st_mode) == 0o750  # the directory's own mode
    conf = os.stat(vol / "conf")
    assert stat.S_IMODE(conf.st_mode) == 0o640 and int(conf.st_mtime) == 1_234_567_890
    assert os.getxattr(vol / "conf", "user.origin") == b"image"
    assert os.stat(vol / "conf.link").st_ino == conf.st_ino
    assert os.readlink(vol / "conf.sym") == "conf"
    assert stat.S_IMODE(os.stat(vol / "sub").st_mode) == 0o2750
    assert stat.S_ISFIFO(os.lstat(vol / "sub" / "fifo").st_mode)


def test_nothing_is_copied_into_a_volume_with_content_or_from_a_non_directory(
    tmp_path: Path,
) -> None:
    root = _rootfs(tmp_path)
    vol = tmp_path / "vol"
    vol.mkdir()
    (vol / "mine").write_text("x")
    assert not volume_copyup.copy_up(str(root), "/var/lib/app", str(vol))
    assert os.listdir(vol) == ["mine"]
    (vol / "mine").unlink()
    assert not volume_copyup.copy_up(str(root), "/absent", str(vol))
    assert not volume_copyup.copy_up(str(root), "/file", str(vol))
    assert os.listdir(vol) == []


def test_symlinks_in_the_image_never_lead_to_the_host(tmp_path: Path) -> None:
    root = _rootfs(tmp_path)
    vol = tmp_path / "vol"
    vol.mkdir()
    # /top -> / is the rootfs's root, so /top/etc is the rootfs's /etc, not the host's
    assert volume_copyup.copy_up(str(root), "/top/etc", str(vol))
    assert os.listdir(vol) == ["inside"]
    assert (vol / "inside").read_text() == "rootfs etc\n"
    fd = volume_copyup.open_in_root(str(root), "/top/../../../etc")
    assert fd is not None
    try:
        assert os.readlink(f"/proc/self/fd/{fd}") == str(root / "etc")
    finally:
        os.close(fd)
