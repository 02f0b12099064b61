"""The security checklist (reference: runtime-security-and-shims.md §2.3),
one test per item that the other OCI tests do not already cover:

1. masked/read-only paths cannot be read, written, remounted or unmounted
2. ``proc``/``sysfs`` destinations that are symlinks are refused
4. no cwd outside the root through a leaked fd (CVE-2024-21626 shape)
9. ``no_pivot`` (MS_MOVE + chroot) only on request, and it still confines
10. the caller's stdio on the host is never chowned (exec --user with /dev/null)
11. a PID 1 that ignores SIGTERM is still stopped by SIGKILL
7. on cgroup v2 the eBPF device filter denies nodes outside the allow list

(3 symlinked mount destinations, 4 fds and /proc/self/exe, 5 capabilities,
6 NNP/seccomp order, 8 rlimits/sysctl/…, 12 state and 13 hooks are in
test_oci_isolation, test_oci_exec, test_oci_seccomp, test_oci_lifecycle and
test_oci_hooks.)
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from runtime import errors
from runtime.oci import lifecycle, state
from tests.integration import test_oci_support as support


@pytest.fixture
def oci(roots: Any, busybox_dir: Path) -> Iterator[support.Env]:
    with support.environment(roots.base, busybox_dir, roots.cgroup_parent) as env:
        yield env


def _fields(out: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def test_masked_and_readonly_paths_cannot_be_read_written_or_remounted(oci: support.Env) -> None:
    def configure(doc: dict[str, Any]) -> None:
        for key in ("bounding", "effective", "permitted"):
            doc["process"]["capabilities"][key].append("CAP_DAC_OVERRIDE")

    script = (
        "echo timer=$(wc -c < /proc/timer_list) keys=$(wc -c < /proc/keys);"
        "echo acpi=$(ls /proc/acpi 2>/dev/null | wc -l);"
        "echo masknode=$(stat -c %t:%T /proc/timer_list);"  # writes go to the null device
        "echo c > /proc/sysrq-trigger 2>/dev/null && echo sysrq=yes || echo sysrq=no;"
        "echo 1 > /proc/sys/kernel/panic 2>/dev/null && echo procsys=yes || echo procsys=no;"
        "mount -o remount,rw /proc/sys 2>/dev/null && echo remount=yes || echo remount=no;"
        "mount -o remount,bind,rw /proc/bus 2>/dev/null && echo remountbus=yes "
        "|| echo remountbus=no;"
        "umount /proc/timer_list 2>/dev/null && echo umount=yes || echo umount=no;"
        "umount -l /proc/sys 2>/dev/null && echo umountsys=yes || echo umountsys=no;"
        "grep -c ' /proc/sys ro,' /proc/self/mountinfo | sed s/^/rosys=/"
    )
    r = oci.run("mask", ["sh", "-c", script], configure)
    f = _fields(r.out.replace(" ", "\n"))
    assert (f["timer"], f["keys"], f["acpi"]) == ("0", "0", "0"), r.out
    assert f["masknode"] == "1:3"
    for key in ("sysrq", "procsys", "remount", "remountbus", "umount", "umountsys"):
        assert f[key] == "no", (key, r.out)
    assert f["rosys"] == "1"


@pytest.mark.parametrize("destination", ["/proc", "/sys"])
def test_proc_and_sys_destinations_that_are_symlinks_are_refused(
    oci: support.Env, destination: str
) -> None:
    target = oci.rootfs / destination.lstrip("/")
    target.rmdir()
    target.symlink_to("/etc")
    with pytest.raises(errors.InvalidSpec, match=f"{destination} is a symlink"):
        oci.create("sym", ["true"])
    assert lifecycle.list_containers(oci.root) == []
    assert not list((oci.rootfs / "etc").glob("*/self"))  # nothing was mounted over /etc


def test_no_cwd_outside_the_root_through_leaked_fds(oci: support.Env) -> None:
    """CVE-2024-21626: ``process.cwd`` of ``/proc/self/fd/N`` would be a host
    directory if an fd of the runtime's (the state dir, a cgroup file) were
    still open when the init chdirs. Every N either fails or stays inside."""
    outcomes = set()
    for n in range(3, 16):
        cid = f"cwd{n}"

        def configure(doc: dict[str, Any], n: int = n) -> None:
            doc["process"]["cwd"] = f"/proc/self/fd/{n}"

        try:
            r = oci.run(cid, ["sh", "-c", "pwd; ls .. | head -3"], configure)
        except errors.RuntimeError_ as exc:
            text = str(exc)  # magic links resolve as plain links, inside the rootfs
            assert any(
                needle in text
                for needle in ("outside the container's root", "container's rootfs", "process.cwd")
            ), text
            outcomes.add("refused")
            continue
        outcomes.add("ran")
        assert r.code == 0 and not r.out.startswith("(unreachable)"), r.out
        assert r.out.startswith("/"), r.out
    assert "refused" in outcomes
    assert lifecycle.list_containers(oci.root) == []


def test_no_pivot_only_when_asked_and_still_confined(oci: support.Env) -> None:
    script = "cat /proc/self/mountinfo | wc -l; ls /; cat /proc/1/root/etc/hostname 2>&1 | head -1"
    bundle = oci.bundle("np", ["sh", "-c", script])
    out = os.open(oci.base / "np.out", os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        pid = lifecycle.create(oci.root, "np", bundle, stdout=out, stderr=out, no_pivot=True)
    finally:
        os.close(out)
    lifecycle.start(oci.root, "np")
    assert support.wait(pid) == 0
    lifecycle.delete(oci.root, "np")
    text = (oci.base / "np.out").read_text()
    assert "bin" in text and "No such file" in text  # its own /, /proc/1 is itself


def test_host_stdio_is_never_chowned(oci: support.Env) -> None:
    """runc 1.1.1 to 1.1.4 and crun 1.8.1 chowned the host's /dev/null when it was
    the stdin of ``exec --user``; this runtime only ever touches fds it made."""
    before = os.stat("/dev/null")
    null = os.open("/dev/null", os.O_RDWR)
    try:

        def configure(doc: dict[str, Any]) -> None:
            doc["process"]["user"] = {"uid": 1000, "gid": 1000}

        pid = oci.create("nul", ["sleep", "1000"], configure, stdin=null)
        lifecycle.start(oci.root, "nul")
        proc: dict[str, object] = {"args": ["true"], "cwd": "/", "user": {"uid": 1234, "gid": 1234}}
        p = lifecycle.exec_process(oci.root, "nul", proc, stdin=null, stdout=null, stderr=null)
        assert support.wait(p) == 0
    finally:
        os.close(null)
    after = os.stat("/dev/null")
    assert (after.st_uid, after.st_gid, after.st_mode) == (
        before.st_uid, before.st_gid, before.st_mode,
    )  # fmt: skip
    lifecycle.delete(oci.root, "nul", force=True)
    support.wait(pid)


def test_pid_1_that_ignores_sigterm_is_stopped_by_sigkill(oci: support.Env) -> None:
    pid = oci.create("stubborn", ["sh", "-c", "echo up; while :; do sleep 1; done"])
    lifecycle.start(oci.root, "stubborn")
    support.until(lambda: oci.output("stubborn")[0] == "up\n")
    lifecycle.kill(oci.root, "stubborn", 15)  # sh has no handler: pid 1 ignores it
    assert os.waitpid(pid, os.WNOHANG) == (0, 0)
    assert lifecycle.state(oci.root, "stubborn")["status"] == "running"
    lifecycle.kill(oci.root, "stubborn", 9)
    assert support.wait(pid) == 128 + 9
    assert lifecycle.state(oci.root, "stubborn")["status"] == "stopped"
    lifecycle.delete(oci.root, "stubborn")


_V2_DRIVER = r"""
import json, os, sys
from pathlib import Path
import runtime.sys as rsys
from tests.integration import test_oci_support as support

base, rootfs, parent = sys.argv[1:4]
rsys.unshare(rsys.CLONE_NEWNS)
rsys.mount(None, "/", None, rsys.MS_REC | rsys.MS_PRIVATE)
rsys.mount("cgroup2", "/sys/fs/cgroup", "cgroup2", rsys.MS_NOSUID | rsys.MS_NODEV | rsys.MS_NOEXEC)
script = ("echo x > /dev/null && echo null=ok;"
          "mknod /dev/kmsg2 c 1 11 && echo mknod=ok;"
          "head -c1 /dev/kmsg2 >/dev/null 2>&1 && echo kmsg=ok || echo kmsg=denied;"
          "head -c1 /dev/tun >/dev/null 2>/dev/null; echo tun=$?")
def configure(doc):
    for key in ("bounding", "effective", "permitted"):
        doc["process"]["capabilities"][key].append("CAP_MKNOD")
    doc["linux"]["devices"] = [{"path": "/dev/tun", "type": "c", "major": 10, "minor": 200}]
with support.environment(Path(base), Path(rootfs), parent) as env:
    print(json.dumps(env.run("bpf", ["sh", "-c", script], configure).__dict__))
"""


def test_cgroup_v2_device_filter_allows_only_the_listed_nodes(
    roots: Any, busybox_dir: Path
) -> None:
    r = subprocess.run(
        [sys.executable, "-c", _V2_DRIVER, str(roots.base), str(busybox_dir), roots.cgroup_parent],
        capture_output=True, text=True, timeout=120, check=False,
        cwd=Path(__file__).resolve().parents[2],
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    import json

    result = json.loads(r.stdout)
    f = _fields(result["out"])
    assert (f["null"], f["mknod"], f["kmsg"]) == ("ok", "ok", "denied"), result
    assert f["tun"] != "1" or "not permitted" not in result["err"]  # listed: not EPERM
    assert state.OCI_VERSION
