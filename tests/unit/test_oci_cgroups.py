"""Cgroup discovery, planning and limit files of the builtin OCI runtime, on
fake trees (so pure cgroup v2 is covered on a hybrid host too), and the
state-file/status rules."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from runtime import errors
from runtime.oci import cgroups, config, state

HYBRID = """\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
36 31 0:33 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
"""
PURE_V2 = "30 23 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n"


def _discover(tmp_path: Path, text: str) -> cgroups.Hierarchies:
    info = tmp_path / "mountinfo"
    info.write_text(text)
    return cgroups.discover(str(info))


def test_hybrid_host_uses_v1_controllers_and_the_unified_tree(tmp_path: Path) -> None:
    hier = _discover(tmp_path, HYBRID)
    assert hier.v2 is None and hier.unified == "/sys/fs/cgroup/unified"
    assert hier.v1["cpu"] == hier.v1["cpuacct"] == "/sys/fs/cgroup/cpu,cpuacct"
    assert hier.v1["cpuset"] == "/sys/fs/cgroup/cpuset"  # known, joined only when asked
    cg = cgroups.plan(hier, "/pyreconcile-x/c1", "c1")
    assert cg.dirs == [
        "/sys/fs/cgroup/unified/pyreconcile-x/c1",
        "/sys/fs/cgroup/memory/pyreconcile-x/c1",
        "/sys/fs/cgroup/cpu,cpuacct/pyreconcile-x/c1",
        "/sys/fs/cgroup/pids/pyreconcile-x/c1",
    ]
    assert cg.hierarchies()[2] == ("cpu,cpuacct", "/sys/fs/cgroup/cpu,cpuacct/pyreconcile-x/c1")
    assert not cg.is_v2
    with_cpuset = cgroups.plan(hier, "/pyreconcile-x/c1", "c1", cpuset=True)
    assert with_cpuset.dir_for("cpuset") == "/sys/fs/cgroup/cpuset/pyreconcile-x/c1"


def test_pure_v2_host_has_one_directory(tmp_path: Path) -> None:
    hier = _discover(tmp_path, PURE_V2)
    cg = cgroups.plan(hier, "pyreconcile-x/c1", "c1")
    assert cg.is_v2 and cg.dirs == ["/sys/fs/cgroup/pyreconcile-x/c1"]
    assert cgroups.plan(hier, "", "c2").dirs == ["/sys/fs/cgroup/c2"]
    with pytest.raises(errors.InvalidSpec, match="cgroupsPath"):
        cgroups.plan(hier, "/a/../../etc", "c1")


def _res(**values: int) -> config.Resources:
    res = config.Resources()
    for key, value in values.items():
        setattr(res, key, value)
    return res


def test_v2_limits_and_controller_delegation(tmp_path: Path) -> None:
    mount = tmp_path / "cg"
    leaf = mount / "parent" / "c1"
    leaf.mkdir(parents=True)
    (mount / "cgroup.controllers").write_text("cpuset cpu io memory pids\n")
    for d in (mount, mount / "parent"):
        (d / "cgroup.subtree_control").write_text("")
    for name in ("memory.max", "memory.swap.max", "cpu.max", "cpu.weight", "pids.max"):
        (leaf / name).write_text("")
    cg = cgroups.Cgroup([("v2", str(mount), str(leaf))])
    res = _res(memory_limit=64 << 20, memory_swap=96 << 20, cpu_quota=50000, cpu_period=100000,
               cpu_shares=1024, pids_limit=0)  # fmt: skip
    cgroups.ensure(cg, res)
    assert (mount / "cgroup.subtree_control").read_text() == "+cpu +memory +pids"
    assert (mount / "parent" / "cgroup.subtree_control").read_text() == "+cpu +memory +pids"
    assert (leaf / "memory.max").read_text() == str(64 << 20)
    assert (leaf / "memory.swap.max").read_text() == str(32 << 20)  # OCI swap = memory + swap
    assert (leaf / "cpu.max").read_text() == "50000 100000"
    assert (leaf / "cpu.weight").read_text() == "39"
    assert (leaf / "pids.max").read_text() == "max"


def test_v1_limits_and_device_allow_list(tmp_path: Path) -> None:
    dirs = {c: tmp_path / c / "p" / "c1" for c in ("memory", "cpu", "pids", "devices")}
    files = {
        "memory": ["memory.limit_in_bytes"],
        "cpu": ["cpu.cfs_period_us", "cpu.cfs_quota_us"],
        "pids": ["pids.max"],
        "devices": ["devices.deny", "devices.allow"],
    }
    for ctrl, d in dirs.items():
        d.mkdir(parents=True)
        for name in files[ctrl]:
            (d / name).write_text("")
    cg = cgroups.Cgroup([(c, str(tmp_path / c), str(d)) for c, d in dirs.items()])
    res = _res(memory_limit=1 << 30, cpu_quota=25000, cpu_period=50000, pids_limit=7)
    res.devices = [config.DeviceRule(True, "c", 10, 229, "rwm")]
    cgroups.ensure(cg, res)
    assert (dirs["memory"] / "memory.limit_in_bytes").read_text() == str(1 << 30)
    assert (dirs["cpu"] / "cpu.cfs_quota_us").read_text() == "25000"
    assert (dirs["cpu"] / "cpu.cfs_period_us").read_text() == "50000"
    assert (dirs["pids"] / "pids.max").read_text() == "7"
    # a regular file keeps only the last write; the real file takes one rule per write
    assert (dirs["devices"] / "devices.allow").read_text() == "c 136:* rwm"


def test_device_rules_are_config_then_defaults_then_linux_devices() -> None:
    tun, fifo = config.Device(), config.Device()
    tun.path, tun.type, tun.major, tun.minor = "/dev/net/tun", "c", 10, 200
    fifo.path, fifo.type = "/dev/myfifo", "p"
    deny_all = config.DeviceRule(False, "a", -1, -1, "rwm")
    rules = cgroups.device_rules([deny_all], [tun, fifo])
    assert rules[0] is deny_all
    assert rules[1 : 1 + len(cgroups.DEFAULT_DEVICE_RULES)] == list(cgroups.DEFAULT_DEVICE_RULES)
    last = rules[-1]
    assert len(rules) == 2 + len(cgroups.DEFAULT_DEVICE_RULES)
    assert (last.allow, last.type, last.major, last.minor, last.access) == (
        True,
        "c",
        10,
        200,
        "rwm",
    )


def test_a_limit_without_its_controller_is_unavailable(tmp_path: Path) -> None:
    d = tmp_path / "memory" / "c1"
    d.mkdir(parents=True)
    (d / "memory.limit_in_bytes").write_text("")
    cg = cgroups.Cgroup([("memory", str(tmp_path / "memory"), str(d))])
    with pytest.raises(errors.Unavailable, match="pids cgroup controller"):
        cgroups.ensure(cg, _res(pids_limit=5))


def test_remove_takes_sub_cgroups_and_tolerates_missing(tmp_path: Path) -> None:
    d = tmp_path / "c1"
    (d / "sub" / "deeper").mkdir(parents=True)
    cgroups.remove([str(d), str(tmp_path / "never-made")])
    assert not d.exists()


def test_container_ids_follow_runc_rules() -> None:
    state.check_id("web-1_a.b+c")
    for bad in ("", ".", "..", "a/b", "a b", "x" * 1025):
        with pytest.raises(errors.InvalidSpec):
            state.check_id(bad)


def test_status_is_read_from_the_process_not_the_file(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "c1").mkdir(parents=True)
    rec = state.Record("c1", "/bundle", "/bundle/rootfs")
    rec.pid = os.getpid()
    seen = state.proc_stat(rec.pid)
    assert seen is not None
    rec.start_time = seen[1]
    state.save(str(root), rec)
    loaded = state.load(str(root), "c1")
    assert loaded.to_json() == rec.to_json()
    assert state.observe_status(str(root), loaded) == "running"
    (root / "c1" / state.FIFO).touch()
    assert state.state(str(root), "c1")["status"] == "created"
    loaded.start_time += 1  # the same pid number, another process: recycled
    assert state.observe_status(str(root), loaded) == "stopped"
    assert state.oci_state(loaded, "stopped")["pid"] == 0
    (root / "junk").mkdir()
    assert [s["id"] for s in state.list_containers(str(root))] == ["c1"]
    with pytest.raises(errors.NotFound):
        state.state(str(root), "c2")
