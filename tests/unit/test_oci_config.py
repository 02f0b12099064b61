"""config.json parsing and validation of the builtin OCI runtime, and the
``spec`` template (compared with ``runc spec`` itself when runc is installed)."""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

import runtime.sys as rsys
from runtime import errors
from runtime.oci import config, mountopts, spec


def _doc(**process: Any) -> dict[str, Any]:
    doc: dict[str, Any] = spec.default_spec()
    doc["process"]["terminal"] = False
    doc["process"].update(process)
    return doc


def _parse(doc: dict[str, Any]) -> config.Spec:
    return config.parse(copy.deepcopy(doc), "/bundles/b1")


def _invalid(doc: dict[str, Any]) -> str:
    with pytest.raises(errors.InvalidSpec) as info:
        _parse(doc)
    return str(info.value)


def test_runc_template_parses_into_masks_numbers_and_paths() -> None:
    s = _parse(_doc())
    assert s.root_path == "/bundles/b1/rootfs"
    assert s.root_readonly is True
    assert s.hostname == "runc"
    expected = (1 << 29) | (1 << 5) | (1 << 10)  # AUDIT_WRITE, KILL, NET_BIND_SERVICE
    caps = s.process.capabilities
    assert (caps.bounding, caps.effective, caps.permitted, caps.ambient) == (expected,) * 4
    assert caps.inheritable == 0
    [nofile] = s.process.rlimits
    assert (nofile.number, nofile.soft, nofile.hard) == (7, 1024, 1024)
    assert s.namespaces == {"pid": None, "network": None, "ipc": None, "uts": None, "mount": None}
    assert [m.destination for m in s.mounts][:3] == ["/proc", "/dev", "/dev/pts"]
    sysfs = next(m for m in s.mounts if m.type == "sysfs")
    assert sysfs.options.flags == rsys.MS_NOSUID | rsys.MS_NOEXEC | rsys.MS_NODEV | rsys.MS_RDONLY
    dev = next(m for m in s.mounts if m.destination == "/dev")
    assert dev.options.data == "mode=755,size=65536k"
    assert "/proc/kcore" in s.masked_paths and "/proc/sys" in s.readonly_paths
    assert s.rootfs_propagation == rsys.MS_SLAVE | rsys.MS_REC
    assert s.process.no_new_privileges is True


def test_bind_mount_options_propagation_and_relative_source() -> None:
    doc = _doc()
    doc["mounts"].append(
        {
            "destination": "/data",
            "type": "bind",
            "source": "vol",
            "options": ["rbind", "ro", "nosuid", "rprivate", "size=1"],
        }
    )
    m = _parse(doc).mounts[-1]
    assert m.source == "/bundles/b1/vol"
    assert m.options.bind and m.options.recursive
    assert m.options.flags == rsys.MS_RDONLY | rsys.MS_NOSUID
    assert m.options.propagation == [rsys.MS_PRIVATE | rsys.MS_REC]
    assert m.options.data == "size=1"


def test_mount_option_words_clear_what_they_negate() -> None:
    opts = mountopts.parse(["ro", "rw", "nodev", "dev", "noexec"], "tmpfs")
    assert opts.flags == rsys.MS_NOEXEC
    assert not opts.bind


@pytest.mark.parametrize(
    ("mutate", "needle"),
    [
        (lambda d: d["process"]["capabilities"]["bounding"].append("CAP_FOO"), "bounding[3]"),
        (lambda d: d["process"].update(args=[]), "process.args"),
        (lambda d: d["process"].update(args="sh"), "process.args must be a list"),
        (lambda d: d["process"].update(consoleSize={"height": -1}), "consoleSize"),
        (lambda d: d["process"].update(cwd="relative"), "process.cwd"),
        (lambda d: d["process"].update(env=["NOEQUALS"]), "process.env[0]"),
        (lambda d: d["process"]["user"].update(uid="0"), "process.user.uid must be an integer"),
        (lambda d: d["process"]["user"].update(uid=True), "process.user.uid"),
        (lambda d: d["process"].update(oomScoreAdj=5000), "oomScoreAdj"),
        (lambda d: d["process"]["rlimits"].append(d["process"]["rlimits"][0]), "set twice"),
        (
            lambda d: d["process"]["rlimits"].append(
                {"type": "RLIMIT_BOGUS", "soft": 1, "hard": 1}
            ),
            "unknown rlimit",
        ),
        (
            lambda d: d["process"]["rlimits"].append({"type": "RLIMIT_CORE", "soft": 2, "hard": 1}),
            "soft limit 2 is above hard 1",
        ),
        (lambda d: d["linux"]["namespaces"].append({"type": "user"}), "needs linux.uidMappings"),
        (
            lambda d: d["linux"].update(uidMappings=[{"containerID": 0, "hostID": 1, "size": 1}]),
            "need a new user namespace",
        ),
        (lambda d: d["linux"].update(timeOffsets={"monotonic": {"secs": 1}}), "new time name"),
        (lambda d: d["linux"]["namespaces"].append({"type": "pid"}), "listed twice"),
        (lambda d: d["linux"]["namespaces"].append({"type": "bogus"}), "unknown namespace"),
        (lambda d: d["linux"]["namespaces"].pop(3), "hostname needs a private uts"),
        (lambda d: d["linux"].update(sysctl={"kernel.panic": "1"}), "not namespaced"),
        (lambda d: d["linux"].update(seccomp={"defaultAction": "SCMP_ACT_NOPE"}), "unknown secc"),
        (
            lambda d: d["linux"].update(
                seccomp={
                    "defaultAction": "SCMP_ACT_ALLOW",
                    "syscalls": [{"names": ["getcwd"], "action": "SCMP_ACT_NOTIFY"}],
                }
            ),
            "needs listenerPath",
        ),
        (
            lambda d: d["linux"].update(
                seccomp={"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_Z80"]}
            ),
            "unknown architecture",
        ),
        (lambda d: d.update(hooks={"prestart": [{"path": "x"}]}), "must be absolute"),
        (lambda d: d.update(hooks={"preboot": [{"path": "/x"}]}), "unknown hook kind"),
        (lambda d: d.update(hooks={"poststop": [{"path": "/x", "timeout": 0}]}), "above 0"),
        (lambda d: d["mounts"].append({"destination": "rel", "type": "tmpfs"}), "mounts[7]"),
        (lambda d: d["mounts"].append({"destination": "/b", "type": "bind"}), "needs a source"),
        (lambda d: d["linux"].update(rootfsPropagation="sideways"), "rootfsPropagation"),
        (lambda d: d["linux"].update(devices=[{"path": "/etc/x", "type": "c"}]), "under /dev"),
        (lambda d: d.update(root={"path": ""}), "root.path"),
    ],
)
def test_invalid_configs_name_the_field(mutate: Any, needle: str) -> None:
    doc = _doc()
    mutate(doc)
    assert needle in _invalid(doc)


def test_namespaced_sysctls_need_their_namespace() -> None:
    doc = _doc()
    doc["linux"]["sysctl"] = {"net.ipv4.ip_forward": "1", "kernel.shmmax": "1000"}
    assert _parse(doc).sysctl["net.ipv4.ip_forward"] == "1"
    doc["linux"]["namespaces"] = [ns for ns in doc["linux"]["namespaces"] if ns["type"] != "ipc"]
    assert "needs a ipc namespace" in _invalid(doc)


def test_joined_namespace_paths_must_be_absolute() -> None:
    doc = _doc()
    doc["linux"]["namespaces"][1] = {"type": "network", "path": "/proc/1/ns/net"}
    assert _parse(doc).namespaces["network"] == "/proc/1/ns/net"
    doc["linux"]["namespaces"][1] = {"type": "network", "path": "proc/1/ns/net"}
    assert "must be an absolute path" in _invalid(doc)


def test_resources_and_devices() -> None:
    doc = _doc()
    doc["linux"]["resources"].update(
        memory={"limit": 64 << 20}, cpu={"quota": 50000, "period": 100000}, pids={"limit": 20}
    )
    doc["linux"]["devices"] = [{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229}]
    s = _parse(doc)
    r = s.resources
    assert (r.memory_limit, r.cpu_quota, r.cpu_period, r.pids_limit) == (
        64 << 20,
        50000,
        100000,
        20,
    )
    [deny_all] = r.devices
    assert (deny_all.allow, deny_all.type, deny_all.major, deny_all.access) == (
        False,
        "a",
        -1,
        "rwm",
    )
    [fuse] = s.devices
    assert (fuse.path, fuse.major, fuse.minor, fuse.file_mode) == ("/dev/fuse", 10, 229, 0o666)
    doc["linux"]["resources"]["blockIO"] = {"weight": 10}
    assert "blockIO is not supported" in _invalid(doc)


def test_load_reports_missing_and_broken_files(tmp_path: Path) -> None:
    with pytest.raises(errors.InvalidSpec, match="does not exist"):
        config.load(str(tmp_path))
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(errors.InvalidSpec, match="cannot read"):
        config.load(str(tmp_path))
    (tmp_path / "config.json").write_text(json.dumps(_doc()))
    assert config.load(str(tmp_path)).root_path == str(tmp_path / "rootfs")


def test_write_spec_refuses_to_overwrite(tmp_path: Path) -> None:
    spec.write_spec(str(tmp_path))
    assert json.loads((tmp_path / "config.json").read_text()) == spec.default_spec()
    with pytest.raises(errors.AlreadyExists, match="remove it first"):
        spec.write_spec(str(tmp_path))


@pytest.mark.skipif(shutil.which("runc") is None, reason="runc is not installed")
def test_spec_is_the_same_document_as_runc_spec(tmp_path: Path) -> None:
    subprocess.run(["runc", "spec", "--bundle", str(tmp_path)], check=True)
    theirs = json.loads((tmp_path / "config.json").read_text())
    assert spec.default_spec() == theirs
    assert list(spec.default_spec()) == list(theirs)  # same key order too


def test_in_container_paths_are_normalised() -> None:
    doc = _doc()
    doc["mounts"].append({"destination": "//data/./x/", "type": "tmpfs", "source": "t"})
    doc["linux"]["maskedPaths"] = ["/proc//kcore/"]
    s = _parse(doc)
    assert s.mounts[-1].destination == "/data/x"
    assert s.masked_paths == ["/proc/kcore"]
