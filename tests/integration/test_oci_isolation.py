"""What a container made by the builtin OCI runtime sees: namespaces, its
filesystem, /dev, masked and read-only paths, limits, identity, capabilities,
and no file descriptor of ours."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import runtime.sys as rsys
from runtime import errors
from runtime.oci import lifecycle, state
from tests.integration import test_oci_support as support


@pytest.fixture
def oci(roots: Any, busybox_dir: Path) -> Iterator[support.Env]:
    with support.environment(roots.base, busybox_dir, roots.cgroup_parent) as env:
        yield env


def _fields(out: str) -> dict[str, str]:
    """``key=value`` lines printed by the container."""
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def test_namespaces_hostname_env_cwd_and_user(oci: support.Env) -> None:
    script = (
        "for ns in pid mnt uts net ipc cgroup; do echo ns_$ns=$(readlink /proc/self/ns/$ns); done;"
        "echo hostname=$(hostname); echo domain=$(cat /proc/sys/kernel/domainname);"
        "echo pwd=$(pwd); echo greeting=$GREETING; echo home=$HOME; echo path=$PATH;"
        "echo id=$(id -u):$(id -g):$(id -G); echo umask=$(umask); echo mypid=$$"
    )

    def configure(doc: dict[str, Any]) -> None:
        doc["hostname"] = "web-1"
        doc["domainname"] = "example.test"
        doc["process"]["env"].append("GREETING=hello world")
        doc["process"]["cwd"] = "/srv/app"  # missing in the image: created, as runc does
        doc["process"]["user"] = {"uid": 1000, "gid": 1000, "additionalGids": [5], "umask": 0o027}

    r = oci.run("ns", ["sh", "-c", script], configure)
    assert r.code == 0, r.err
    f = _fields(r.out)
    for ns in ("pid", "mnt", "uts", "net", "ipc"):
        assert f[f"ns_{ns}"] != os.readlink(f"/proc/self/ns/{ns}"), ns
    assert f["ns_cgroup"] == os.readlink("/proc/self/ns/cgroup")  # not asked for
    assert f["hostname"] == "web-1" and f["domain"] == "example.test"
    assert f["pwd"] == "/srv/app"
    assert f["greeting"] == "hello world"
    assert f["home"] == "/home/app"  # from the image's /etc/passwd for uid 1000
    assert f["path"].startswith("/usr/local/sbin")
    assert f["id"] == "1000:1000:1000 5"
    assert f["umask"] == "0027"
    assert f["mypid"] == "1"


def test_filesystem_dev_masked_and_readonly_paths(oci: support.Env) -> None:
    script = (
        "echo x > /probe 2>/dev/null && echo root=rw || echo root=ro;"
        "echo x > /tmp/probe 2>/dev/null && echo tmp=rw || echo tmp=ro;"
        "echo x > /etc/probe 2>/dev/null && echo etc=rw || echo etc=ro;"
        "echo passwd=$(cat /etc/passwd | wc -c);"
        "echo secret=$(ls -A /home | wc -l);"
        "echo timer_list=$(cat /proc/timer_list | wc -c);"
        "echo 1 > /proc/sys/kernel/ns_last_pid 2>/dev/null && echo procsys=rw || echo procsys=ro;"
        "echo sys=$(grep ' /sys ' /proc/self/mountinfo | cut -d' ' -f6);"
        "mkdir /sys/fs/cgroup/x 2>/dev/null && echo cgroupfs=rw || echo cgroupfs=ro;"
        "echo dev=$(ls /dev | tr '\\n' ' ');"
        "echo null=$(stat -c %t:%T /dev/null); echo pts=$(stat -f -c %T /dev/pts);"
        "echo shm=$(stat -f -c %T /dev/shm); echo fd=$(readlink /dev/fd)"
    )

    def configure(doc: dict[str, Any]) -> None:
        doc["root"]["readonly"] = True
        doc["mounts"].append(
            {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["size=1m"]}
        )
        doc["linux"]["readonlyPaths"].append("/etc")
        doc["linux"]["maskedPaths"] += ["/etc/passwd", "/home", "/does/not/exist"]

    r = oci.run("fs", ["sh", "-c", script], configure)
    assert r.code == 0, r.err
    f = _fields(r.out)
    assert (f["root"], f["tmp"], f["etc"]) == ("ro", "rw", "ro")
    assert f["passwd"] == "0" and f["secret"] == "0" and f["timer_list"] == "0"
    assert f["procsys"] == "ro" and f["cgroupfs"] == "ro"
    assert f["sys"].split(",")[0] == "ro"
    assert set(f["dev"].split()) >= {
        "null", "zero", "full", "random", "urandom", "tty", "pts", "shm", "ptmx", "fd",
        "stdin", "stdout", "stderr", "mqueue",
    }  # fmt: skip
    assert f["null"] == "1:3"
    assert (f["pts"], f["shm"]) == ("devpts", "tmpfs")
    assert f["fd"] == "/proc/self/fd"


def test_lo_is_up_and_sysctls_apply_in_the_container_only(oci: support.Env) -> None:
    def configure(doc: dict[str, Any]) -> None:
        doc["linux"]["sysctl"] = {"net.ipv4.ip_forward": "1", "kernel.shmmni": "1234"}

    host_forward = Path("/proc/sys/net/ipv4/ip_forward").read_text()
    script = (
        "echo lo=$(cat /sys/class/net/lo/flags); echo links=$(ls /sys/class/net | wc -l);"
        "echo fwd=$(cat /proc/sys/net/ipv4/ip_forward); echo shmmni=$(cat /proc/sys/kernel/shmmni)"
    )
    f = _fields(oci.run("net", ["sh", "-c", script], configure).out)
    assert int(f["lo"], 16) & 1  # IFF_UP
    assert f["links"] == "1"
    assert (f["fwd"], f["shmmni"]) == ("1", "1234")
    assert Path("/proc/sys/net/ipv4/ip_forward").read_text() == host_forward


def test_capabilities_rlimits_no_new_privs_and_oom_score(oci: support.Env) -> None:
    def configure(doc: dict[str, Any]) -> None:
        doc["process"]["oomScoreAdj"] = 500
        doc["process"]["rlimits"].append({"type": "RLIMIT_CORE", "soft": 0, "hard": 4096})

    script = "grep -E '^(Cap|NoNewPrivs)' /proc/self/status; echo nofile=$(ulimit -n);" \
             "echo core=$(ulimit -H -c); echo oom=$(cat /proc/self/oom_score_adj)"  # fmt: skip
    r = oci.run("caps", ["sh", "-c", script], configure)
    f = {k.strip(): v.strip() for k, v in (line.split(":", 1) for line in r.lines() if ":" in line)}
    runc_default = f"{(1 << 29) | (1 << 5) | (1 << 10):016x}"  # AUDIT_WRITE KILL NET_BIND_SERVICE
    assert (f["CapBnd"], f["CapPrm"], f["CapEff"]) == (runc_default,) * 3
    assert f["CapInh"] == f["CapAmb"] == "0" * 16
    assert f["NoNewPrivs"] == "1"
    g = _fields(r.out)
    assert (g["nofile"], g["core"], g["oom"]) == ("1024", "8", "500")  # 512-byte blocks


def test_ambient_capabilities_for_a_non_root_user(oci: support.Env) -> None:
    def configure(doc: dict[str, Any]) -> None:
        doc["process"]["user"] = {"uid": 1000, "gid": 1000}
        doc["process"]["noNewPrivileges"] = False
        c = doc["process"]["capabilities"]
        c["inheritable"] = ["CAP_NET_BIND_SERVICE"]
        c["ambient"] = ["CAP_NET_BIND_SERVICE"]

    r = oci.run("amb", ["sh", "-c", "grep -E '^Cap(Eff|Amb)' /proc/self/status"], configure)
    f = {k: v.strip() for k, v in (line.split(":", 1) for line in r.lines())}
    assert f == {"CapEff": f"{1 << 10:016x}", "CapAmb": f"{1 << 10:016x}"}


def test_limits_are_in_the_cgroup_and_visible_inside(oci: support.Env) -> None:
    def configure(doc: dict[str, Any]) -> None:
        doc["linux"]["resources"].update(
            memory={"limit": 64 << 20}, cpu={"quota": 50000, "period": 100000}, pids={"limit": 42}
        )

    pid = oci.create("lim", ["sh", "-c", "cat /sys/fs/cgroup/memory/memory.limit_in_bytes "
                             "/sys/fs/cgroup/memory.max /sys/fs/cgroup/pids/pids.max 2>/dev/null;"
                             "sleep 1000"], configure)  # fmt: skip
    dirs = state.load(oci.root, "lim").cgroup_dirs
    v2 = Path(dirs[0], "memory.max").exists()
    if v2:
        assert Path(dirs[0], "memory.max").read_text().strip() == str(64 << 20)
        assert Path(dirs[0], "cpu.max").read_text().split() == ["50000", "100000"]
        assert Path(dirs[0], "pids.max").read_text().strip() == "42"
    else:
        mem = next(d for d in dirs if "/memory/" in d)
        assert Path(mem, "memory.limit_in_bytes").read_text().strip() == str(64 << 20)
        cpu = next(d for d in dirs if "/cpu/" in d or "/cpu,cpuacct/" in d)
        assert Path(cpu, "cpu.cfs_quota_us").read_text().strip() == "50000"
        pids = next(d for d in dirs if "/pids/" in d)
        assert Path(pids, "pids.max").read_text().strip() == "42"
    lifecycle.start(oci.root, "lim")
    support.until(lambda: bool(oci.output("lim")[0]))
    assert str(64 << 20) in oci.output("lim")[0].split()
    lifecycle.delete(oci.root, "lim", force=True)
    assert support.wait(pid) == 128 + 9


def test_no_fd_of_ours_leaks_into_the_container(oci: support.Env) -> None:
    leak = os.open("/etc/hostname", os.O_RDONLY)
    os.set_inheritable(leak, True)  # even an inheritable fd of the caller must not get in
    try:
        pid = oci.create("fds", ["sleep", "1000"])
    finally:
        os.close(leak)
    lifecycle.start(oci.root, "fds")
    # after exec, /proc/<pid>/exe is the container's program, not our interpreter
    support.until(lambda: os.readlink(f"/proc/{pid}/exe").endswith("/bin/busybox"))
    assert sorted(int(fd) for fd in os.listdir(f"/proc/{pid}/fd")) == [0, 1, 2]
    lifecycle.delete(oci.root, "fds", force=True)
    support.wait(pid)


def test_joining_another_containers_network_namespace(oci: support.Env) -> None:
    first = oci.create("netowner", ["sleep", "1000"])
    lifecycle.start(oci.root, "netowner")

    def join(doc: dict[str, Any]) -> None:
        for ns in doc["linux"]["namespaces"]:
            if ns["type"] == "network":
                ns["path"] = f"/proc/{first}/ns/net"

    script = "readlink /proc/self/ns/net; readlink /proc/self/ns/uts"
    net, uts = oci.run("joiner", ["sh", "-c", script], join).lines()
    assert net == os.readlink(f"/proc/{first}/ns/net")
    assert uts != os.readlink(f"/proc/{first}/ns/uts")  # the others are still new
    lifecycle.delete(oci.root, "netowner", force=True)
    support.wait(first)


def test_proc_on_a_symlink_is_refused(oci: support.Env) -> None:
    (oci.rootfs / "proc").rmdir()
    (oci.rootfs / "proc").symlink_to("/tmp")
    with pytest.raises(errors.InvalidSpec, match="/proc is a symlink"):
        oci.create("psym", ["true"])
    assert lifecycle.list_containers(oci.root) == []


def test_mount_destination_behind_a_symlink_stays_in_the_rootfs(oci: support.Env) -> None:
    outside = f"/tmp/pyrt-escape-{uuid.uuid4().hex[:8]}"
    (oci.rootfs / "data-link").symlink_to(f"../../../..{outside}")
    source = oci.base / "volume"
    source.mkdir()
    (source / "marker").write_text("from the host")

    def bind(doc: dict[str, Any]) -> None:
        doc["mounts"].append(
            {
                "destination": "/data-link/vol",
                "type": "bind",
                "source": str(source),
                "options": ["rbind", "ro"],
            }
        )

    r = oci.run("esc", ["sh", "-c", f"cat {outside}/vol/marker; touch {outside}/vol/x"], bind)
    assert r.out == "from the host"
    assert "Read-only file system" in r.err
    assert not os.path.lexists(outside)
    assert (oci.rootfs / outside.lstrip("/") / "vol").is_dir()


def test_devices_cgroup_allows_only_default_and_configured_nodes(oci: support.Env) -> None:
    def configure(doc: dict[str, Any]) -> None:
        doc["process"]["capabilities"]["bounding"].append("CAP_MKNOD")
        doc["process"]["capabilities"]["effective"].append("CAP_MKNOD")
        doc["process"]["capabilities"]["permitted"].append("CAP_MKNOD")
        doc["linux"]["devices"] = [
            {"path": "/dev/net/tun", "type": "c", "major": 10, "minor": 200, "fileMode": 0o600}
        ]

    script = (
        "echo tun=$(stat -c %a:%t:%T /dev/net/tun);"
        "cat /dev/net/tun 2>&1 | grep -q 'not permitted' && echo listed=denied || echo listed=ok;"
        "mknod /dev/tun2 c 10 200 && echo mknod=ok;"
        "cat /dev/tun2 2>&1 | grep -q 'not permitted' && echo other=denied || echo other=ok"
    )
    f = _fields(oci.run("devs", ["sh", "-c", script], configure).out)
    # tun reads fail with EBADFD (no interface attached), not with the cgroup's EPERM;
    # the rule is by major:minor, so another node of the same device is allowed too
    assert f == {"tun": "600:a:c8", "listed": "ok", "mknod": "ok", "other": "ok"}


def test_an_unlisted_device_is_denied_by_the_devices_cgroup(oci: support.Env) -> None:
    def configure(doc: dict[str, Any]) -> None:
        for key in ("bounding", "effective", "permitted"):
            doc["process"]["capabilities"][key].append("CAP_MKNOD")

    script = "mknod /dev/tun c 10 200 && cat /dev/tun"
    r = oci.run("deny", ["sh", "-c", script], configure)
    assert r.code != 0
    assert "Operation not permitted" in r.err


@pytest.mark.parametrize(
    ("propagation", "tags"),
    [(None, ["master"]), ("rprivate", []), ("rshared", ["master", "shared"])],
)
def test_rootfs_propagation(oci: support.Env, propagation: str | None, tags: list[str]) -> None:
    """With the rootfs on a shared mount of the host, "/" in the container is
    a slave of it by default (host mounts reach in, none leak out), private
    with rprivate, and with rshared shared among the container's mounts while
    still a slave of the host (pivot_root refuses a shared root: see rootfs.py)."""
    shared = oci.base / "shared-rootfs"
    shared.mkdir()
    rsys.mount(str(oci.rootfs), str(shared), None, rsys.MS_BIND | rsys.MS_REC)
    try:
        rsys.mount(None, str(shared), None, rsys.MS_SHARED)

        def configure(doc: dict[str, Any]) -> None:
            doc["root"]["path"] = str(shared)
            if propagation:
                doc["linux"]["rootfsPropagation"] = propagation

        cid = f"prop-{propagation or 'default'}"
        r = oci.run(cid, ["awk", '$5 == "/"', "/proc/self/mountinfo"], configure)
    finally:
        rsys.umount2(str(shared), rsys.MNT_DETACH)
    [line] = r.lines()
    optional = line.split(" - ")[0].split()[6:]  # the optional fields of mountinfo
    assert sorted(o.split(":")[0] for o in optional) == tags, line
