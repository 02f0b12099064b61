"""The local driver's options through the CLI: tmpfs, bind, a formatted device, an
image file on a loop device; a mount gone after a "reboot" is reported and repaired.

Every test deletes its stack with ``--volumes``: the volumes' mounts must be
gone afterwards (the ``roots`` fixture fails a test that leaves one), the
loop devices freed, and the data of a bind or a device kept on the host.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from runtime.engine import volume_loop
from tests.conftest import Roots
from tests.integration.test_volume_support import (
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


def _mounted(path: str) -> tuple[str, str] | None:
    """(filesystem type, source) of the mount at ``path``, or None."""
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            if fields[4] == path:
                sep = fields.index("-")
                return fields[sep + 1], fields[sep + 2]
    return None


def _umount(path: str) -> None:
    subprocess.run(["umount", "-l", path], check=True)


def test_tmpfs_volume_has_its_size_and_a_vanished_mount_is_reported_and_repaired(
    roots: Roots, busybox_tar: Path, tmp_path: Path
) -> None:
    image = write_image(tmp_path / "img", busybox_tar)
    stack = write_stack(
        tmp_path / "tv",
        image_doc(image),
        volume_doc("cache", type="tmpfs", device="tmpfs", o="size=1m,mode=1777"),
        container_doc("app", "exec sleep 1000", mounts=["cache:/cache"]),
    )
    try:
        cli(roots, "apply", "-f", str(stack))
        mountpoint = volumes(roots)["tv_cache"]["mountpoint"]
        assert _mounted(mountpoint) == ("tmpfs", "tmpfs")
        out = exec_in(roots, "app", "dd if=/dev/zero of=/cache/big bs=64k count=40; echo rc=$?")
        assert "No space left on device" in out and "rc=1" in out
        exec_in(roots, "app", "rm /cache/big; echo kept > /cache/f")
        assert Path(mountpoint, "f").read_text() == "kept\n"
        assert volumes(roots)["tv_cache"]["healthy"]
        # a "reboot": the container stopped, the tmpfs gone
        cli(roots, "stop", "app")
        _umount(mountpoint)
        ls = text(cli(roots, "volume", "ls"))
        assert "tmpfs is not mounted" in ls
        diff = cli(roots, "diff", "-f", str(stack), check=False)
        assert diff.returncode == 2
        assert "~ volume/cache  (update in place; runtime)" in text(diff)
        assert "host tmpfs is not mounted" in text(diff)
        # a start mounts it again (never the directory underneath)
        cli(roots, "start", "app")
        assert _mounted(mountpoint) == ("tmpfs", "tmpfs")
        exec_in(roots, "app", "echo again > /cache/g")
        assert Path(mountpoint, "g").read_text() == "again\n"
        # and apply repairs it too
        cli(roots, "stop", "app")
        _umount(mountpoint)
        cli(roots, "apply", "-f", str(stack))
        assert _mounted(mountpoint) == ("tmpfs", "tmpfs")
        assert ps(roots)["app"]["status"] == "running"
        assert cli(roots, "diff", "-f", str(stack), check=False).returncode == 0
    finally:
        cli(roots, "delete", "--stack", "tv", "--volumes", check=False)
    assert _mounted(mountpoint) is None


def test_bind_volume_shows_a_host_directory_and_removal_keeps_its_data(
    roots: Roots, busybox_tar: Path, tmp_path: Path
) -> None:
    image = write_image(tmp_path / "img", busybox_tar)
    host = tmp_path / "host-data"
    docs = [image_doc(image), volume_doc("shared", type="none", o="bind", device=str(host))]
    stack = write_stack(
        tmp_path / "bv", *docs, container_doc("app", "exec sleep 1000", mounts=["shared:/shared"])
    )
    try:
        refused = cli(roots, "apply", "-f", str(stack), check=False)
        assert refused.returncode == 1 and str(host) in text(refused)
        host.mkdir()
        (host / "from-host").write_text("host\n")
        cli(roots, "apply", "-f", str(stack))
        mountpoint = volumes(roots)["bv_shared"]["mountpoint"]
        assert _mounted(mountpoint) is not None
        assert exec_in(roots, "app", "cat /shared/from-host; echo c > /shared/from-app") == "host\n"
        # removal unmounts; the host directory keeps everything
        cli(roots, "delete", "--stack", "bv", "--volumes")
        assert _mounted(mountpoint) is None and not os.path.exists(mountpoint)
        assert sorted(os.listdir(host)) == ["from-app", "from-host"]
    finally:
        cli(roots, "delete", "--stack", "bv", "--volumes", check=False)


def _loops_of(path: Path) -> list[str]:
    found = []
    for name in os.listdir("/sys/block"):
        if name.startswith("loop") and volume_loop.backing_file(name) == str(path):
            found.append(name)
    return found


def test_formatted_image_file_on_a_loop_device_and_a_block_device(
    roots: Roots, busybox_tar: Path, tmp_path: Path
) -> None:
    image = write_image(tmp_path / "img", busybox_tar)
    disk = tmp_path / "disk.img"
    with open(disk, "wb") as f:
        f.truncate(16 << 20)
    subprocess.run(["mkfs.ext4", "-q", "-F", str(disk)], check=True, capture_output=True)
    docs = [image_doc(image)]
    wrong = write_stack(
        tmp_path / "wrong", *docs, volume_doc("disk", type="ext4", device=str(disk))
    )
    refused = cli(roots, "apply", "-f", str(wrong), check=False)
    assert refused.returncode == 1 and "add loop to o" in text(refused)
    stack = write_stack(
        tmp_path / "lv",
        *docs,
        volume_doc("disk", type="ext4", device=str(disk), o="loop,noatime"),
        container_doc("app", "exec sleep 1000", mounts=["disk:/disk"]),
    )
    device = None
    try:
        cli(roots, "apply", "-f", str(stack))
        mountpoint = volumes(roots)["lv_disk"]["mountpoint"]
        fstype, source = _mounted(mountpoint) or ("", "")
        assert fstype == "ext4" and source.startswith("/dev/loop")
        assert _loops_of(disk) == [os.path.basename(source)]
        exec_in(roots, "app", "echo on-disk > /disk/file")
        cli(roots, "delete", "--stack", "lv", "--volumes")
        assert _mounted(mountpoint) is None
        wait_until(lambda: not _loops_of(disk), 10, "the loop device to be freed")
        # the data is the device's: a block device volume on it shows it again
        device = subprocess.run(
            ["losetup", "--find", "--show", str(disk)], check=True, capture_output=True, text=True
        ).stdout.strip()
        stack = write_stack(
            tmp_path / "lv",
            *docs,
            volume_doc("disk", type="ext4", device=device),
            container_doc("app", "exec sleep 1000", mounts=["disk:/disk"]),
        )
        cli(roots, "apply", "-f", str(stack))
        assert _mounted(volumes(roots)["lv_disk"]["mountpoint"]) == ("ext4", device)
        assert exec_in(roots, "app", "cat /disk/file") == "on-disk\n"
    finally:
        cli(roots, "delete", "--stack", "lv", "--volumes", check=False)
        if device:
            subprocess.run(["losetup", "-d", device], check=False)
    wait_until(lambda: not _loops_of(disk), 10, "the loop devices to be freed")


def test_wrong_driver_options_are_refused_with_what_to_do(roots: Roots) -> None:
    cases = {
        ("type=ext4",): "needs device",
        ("o=bind",): "needs device: an absolute host directory",
        ("type=tmpfs", "o=loop"): "no bind or loop",
        ("type=ext4", "device=/nonexistent/disk"): "/nonexistent/disk does not exist",
        ("colour=red",): "unknown driver option 'colour'",
    }
    for opts, expected in cases.items():
        args = [a for o in opts for a in ("--opt", o)]
        out = cli(roots, "volume", "create", "bad", *args, check=False)
        assert out.returncode == 1 and expected in text(out), (opts, text(out))
    assert volumes(roots) == {}
    assert not os.path.exists(roots.root / "volumes" / "bad")
