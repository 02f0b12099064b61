"""User, time and mount namespaces: uid/gid maps written by the runtime (no
newuidmap), root inside being an unprivileged host uid, devices bound from
the host where mknod is not allowed, and clock offsets."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from runtime.oci import lifecycle
from tests.integration import test_oci_support as support

HOST_ID = 200000


@pytest.fixture
def oci(roots: Any, busybox_dir: Path) -> Iterator[support.Env]:
    """A rootfs where the mapped root can reach it: the pytest temp dir is 0700
    root, which a host uid of 200000 cannot traverse (runc has the same rule)."""
    os.chmod(roots.base, 0o755)
    rootfs = roots.base / "rootfs"
    shutil.copytree(busybox_dir, rootfs, symlinks=True)
    with support.environment(roots.base, rootfs, roots.cgroup_parent) as env:
        yield env


def _userns(doc: dict[str, Any]) -> None:
    doc["root"]["readonly"] = False
    doc["linux"]["namespaces"].append({"type": "user"})
    doc["linux"]["uidMappings"] = [{"containerID": 0, "hostID": HOST_ID, "size": 65536}]
    doc["linux"]["gidMappings"] = [{"containerID": 0, "hostID": HOST_ID, "size": 65536}]


def _chown_tree(root: Path, uid: int) -> None:
    for d, dirs, files in os.walk(root):
        for name in [*dirs, *files]:
            os.lchown(os.path.join(d, name), uid, uid)
    os.lchown(root, uid, uid)


def test_root_in_a_user_namespace_is_an_unprivileged_host_uid(oci: support.Env) -> None:
    _chown_tree(oci.rootfs, HOST_ID)
    script = (
        "cat /proc/self/uid_map /proc/self/gid_map; echo id=$(id -u):$(id -g);"
        "echo null=$(stat -c %t:%T /dev/null); echo hi > /dev/null && echo nullw=ok;"
        "touch /made-inside; echo h=$(hostname);"
        "grep CapEff /proc/self/status; cat /proc/sys/kernel/cap_last_cap > /dev/null;"
        "echo 1 > /proc/sys/vm/overcommit_memory 2>/dev/null && echo hostsysctl=rw "
        "|| echo hostsysctl=ro"
    )
    r = oci.run("uns", ["sh", "-c", script], _userns)
    assert r.code == 0, r.err
    lines = r.lines()
    assert lines[0].split() == ["0", str(HOST_ID), "65536"]
    assert lines[1].split() == ["0", str(HOST_ID), "65536"]
    f = dict(line.split("=", 1) for line in lines if "=" in line)
    assert f["id"] == "0:0" and f["h"] == "runc"
    assert f["null"] == "1:3" and f["nullw"] == "ok"  # bound from the host, usable
    assert f["hostsysctl"] == "ro"
    made = oci.rootfs / "made-inside"
    assert (made.stat().st_uid, made.stat().st_gid) == (HOST_ID, HOST_ID)
    assert not (oci.rootfs / "dev" / "null").exists()  # /dev was a tmpfs, gone with it


def test_time_namespace_offsets(oci: support.Env) -> None:
    if not os.path.exists("/proc/self/ns/time"):
        pytest.skip("kernel without time namespaces")
    year = 365 * 86400

    def configure(doc: dict[str, Any]) -> None:
        doc["linux"]["namespaces"].append({"type": "time"})
        doc["linux"]["timeOffsets"] = {"boottime": {"secs": year}, "monotonic": {"secs": year}}

    with open("/proc/uptime") as f:
        host_uptime = float(f.read().split()[0])
    r = oci.run("tns", ["cat", "/proc/uptime"], configure)
    assert r.code == 0, r.err
    inside = float(r.out.split()[0])
    assert year <= inside - host_uptime < year + 60


def test_joining_a_user_namespace_by_path(oci: support.Env) -> None:
    _chown_tree(oci.rootfs, HOST_ID)
    owner = oci.create("owner", ["sleep", "1000"], _userns)
    lifecycle.start(oci.root, "owner")

    def join(doc: dict[str, Any]) -> None:
        doc["root"]["readonly"] = False
        doc["linux"]["namespaces"].append({"type": "user", "path": f"/proc/{owner}/ns/user"})

    r = oci.run("joiner", ["sh", "-c", "readlink /proc/self/ns/user; id -u"], join)
    assert r.code == 0, r.err
    assert r.lines() == [os.readlink(f"/proc/{owner}/ns/user"), "0"]
    lifecycle.delete(oci.root, "owner", force=True)
    support.wait(owner)


def test_without_a_mount_namespace_the_mounts_are_detached_at_delete(oci: support.Env) -> None:
    """runc runs a config that lists no mount namespace in the caller's one
    (runtime-tools linux_ns_itype); so do we, with chroot, and delete takes
    the mounts it made there away again."""

    def configure(doc: dict[str, Any]) -> None:
        doc["linux"]["namespaces"] = [
            ns for ns in doc["linux"]["namespaces"] if ns["type"] != "mount"
        ]

    pid = oci.create(
        "nomnt", ["sh", "-c", "ls /proc/self/ns >/dev/null; readlink /proc/self/ns/mnt"], configure
    )
    points = Path("/proc/self/mountinfo").read_text()
    assert f" {oci.rootfs}/proc " in points  # made in our namespace
    lifecycle.start(oci.root, "nomnt")
    assert support.wait(pid) == 0
    assert oci.output("nomnt")[0].strip() == os.readlink("/proc/self/ns/mnt")
    lifecycle.delete(oci.root, "nomnt")
    assert str(oci.rootfs) not in Path("/proc/self/mountinfo").read_text()
