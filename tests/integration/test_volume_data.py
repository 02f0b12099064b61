"""Never a byte lost: a volume's data through recreates, re-applies, a "reboot",
prunes and refused changes; gone only when removal is asked for by a flag.

The container runs as a non-root user (1000:1000) and appends a line to a
file on its volume at every start, so each test can count the starts the
data has seen and check that the owner and modes the user gave stay.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

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
    write_image,
    write_stack,
)

WRITER = "umask 027; date +%s%N >> /data/log; chmod 600 /data/log; exec sleep 1000"


def _lines(path: Path) -> int:
    return len(path.read_text().splitlines())


def _reboot(roots: Roots) -> None:
    """What a host reboot does to pyreconcile's state: every process gone (the
    containers are stopped first, as a shutdown would), every mount gone, the run
    root (a tmpfs) empty. The persistent root, and the volumes in it, stay."""
    for name in ps(roots):
        cli(roots, "stop", name)
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    for point in sorted((p for p in points if p.startswith(str(roots.base) + "/")), reverse=True):
        subprocess.run(["umount", "-l", point], check=True)
    shutil.rmtree(roots.run_root)
    roots.run_root.mkdir()


def test_data_survives_recreates_reapplies_and_a_reboot_and_goes_only_when_asked(
    roots: Roots, busybox_tar: Path, tmp_path: Path
) -> None:
    image = write_image(tmp_path / "img", busybox_tar, marker="1")
    docs = [image_doc(image), volume_doc("data")]
    app = container_doc("app", WRITER, mounts=["data:/data"], user="1000:1000")
    stack = write_stack(tmp_path / "dv", *docs, app)
    try:
        cli(roots, "apply", "-f", str(stack))
        log = Path(volumes(roots)["dv_data"]["mountpoint"]) / "log"
        assert _lines(log) == 1
        first = log.read_text()
        st = os.stat(log)
        assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (1000, 1000, 0o600)
        ids = [ps(roots)["app"]["id"]]

        # an env change recreates the container
        app = container_doc("app", WRITER, mounts=["data:/data"], user="1000:1000", env={"A": "1"})
        write_stack(tmp_path / "dv", *docs, app)
        cli(roots, "apply", "-f", str(stack))
        ids.append(ps(roots)["app"]["id"])
        # a new image (another digest) recreates it
        write_image(tmp_path / "img", busybox_tar, marker="2")
        out = text(cli(roots, "apply", "-f", str(stack)))
        assert "applied" in out
        ids.append(ps(roots)["app"]["id"])
        assert len(set(ids)) == 3, "each change recreated the container"
        assert _lines(log) == 3 and log.read_text().startswith(first)
        st = os.stat(log)
        assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (1000, 1000, 0o600)
        assert exec_in(roots, "app", "id -u; stat -c %a /data/log") == "1000\n600\n"

        # a re-apply changes nothing
        assert "in sync, nothing to do" in text(cli(roots, "apply", "-f", str(stack)))
        assert _lines(log) == 3 and ps(roots)["app"]["id"] == ids[-1]

        # a reboot: run root and processes gone; the next apply starts it on the same data
        _reboot(roots)
        cli(roots, "apply", "-f", str(stack))
        assert ps(roots)["app"]["status"] == "running"
        assert _lines(log) == 4 and log.read_text().startswith(first)

        # a change that would recreate the volume is refused without the flag
        lossy = [image_doc(image), volume_doc("data", type="tmpfs", device="tmpfs")]
        write_stack(tmp_path / "dv", *lossy, app)
        diff = cli(roots, "diff", "-f", str(stack), "--fail-on-destructive", check=False)
        assert diff.returncode == 3 and "recreate" in text(diff)
        refused = cli(roots, "apply", "-f", str(stack), check=False)
        assert refused.returncode == 1 and "--allow-data-loss" in text(refused)
        assert _lines(log) == 4 and ps(roots)["app"]["id"] == ids[-1]
        # removal while in use is refused
        busy = cli(roots, "volume", "rm", "dv_data", check=False)
        assert busy.returncode == 1 and "in use" in text(busy) and log.exists()

        # deleting the stack keeps the volume; the next apply finds the data
        write_stack(tmp_path / "dv", *docs, app)
        cli(roots, "delete", "--stack", "dv")
        assert ps(roots) == {} and _lines(log) == 4
        cli(roots, "apply", "-f", str(stack))
        assert _lines(log) == 5

        # with the flag, it goes
        write_stack(tmp_path / "dv", *lossy, app)
        cli(roots, "apply", "-f", str(stack), "--allow-data-loss")
        assert _lines(log) == 1  # a new, empty volume (a tmpfs now) and one start
        assert not log.read_text().startswith(first)
    finally:
        cli(roots, "delete", "--stack", "dv", "--volumes", check=False)
    assert volumes(roots) == {}


def test_prune_keeps_a_volume_removed_from_the_manifests_and_prune_volumes_removes_it(
    roots: Roots, busybox_tar: Path, tmp_path: Path
) -> None:
    image = write_image(tmp_path / "img", busybox_tar)
    docs = [image_doc(image), volume_doc("data"), volume_doc("old")]
    app = container_doc("app", "exec sleep 1000", mounts=["data:/data", "old:/old"])
    stack = write_stack(tmp_path / "pv", *docs, app)
    try:
        cli(roots, "apply", "-f", str(stack))
        old = Path(volumes(roots)["pv_old"]["mountpoint"])
        (old / "precious").write_text("keep me\n")
        app = container_doc("app", "exec sleep 1000", mounts=["data:/data"])
        write_stack(tmp_path / "pv", image_doc(image), volume_doc("data"), app)
        out = text(cli(roots, "apply", "-f", str(stack), "--prune"))
        assert "volume/old: no longer desired; kept because volumes hold data" in out
        assert "--prune-volumes" in out
        assert (old / "precious").read_text() == "keep me\n"
        diff = cli(roots, "diff", "-f", str(stack), check=False)
        assert diff.returncode == 0 and "kept because volumes hold data" in text(diff)
        # --prune-volumes: a destructive change, said so by diff, done by apply with the
        # flag (the flag is the consent: no --allow-data-loss needed on top)
        diff = cli(roots, "diff", "-f", str(stack), "--prune-volumes", check=False)
        assert diff.returncode == 2 and "volume/old" in text(diff) and "DESTROYS DATA" in text(diff)
        assert (old / "precious").exists()
        cli(roots, "apply", "-f", str(stack), "--prune-volumes")
        left = {n for n, v in volumes(roots).items() if not v["anonymousOwner"]}
        assert left == {"pv_data"} and not old.exists()
    finally:
        cli(roots, "delete", "--stack", "pv", "--volumes", check=False)
