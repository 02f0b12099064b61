"""seccomp in real containers: the default profile, actions, errno values,
the order of loading (after setuid, with no_new_privs), the notify fd sent to
a listener, and exec'd processes getting the same filter."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from runtime.oci import lifecycle, seccomp
from tests.integration import test_oci_support as support
from tests.unit.test_oci_seccomp import DEFAULT_CAPS


@pytest.fixture
def oci(roots: Any, busybox_dir: Path) -> Iterator[support.Env]:
    with support.environment(roots.base, busybox_dir, roots.cgroup_parent) as env:
        yield env


def _fields(out: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def _docker_like(doc: dict[str, Any]) -> None:
    caps = doc["process"]["capabilities"]
    for key in ("bounding", "effective", "permitted"):
        caps[key] = list(DEFAULT_CAPS)
    caps["ambient"] = []
    doc["linux"]["seccomp"] = seccomp.default_profile(DEFAULT_CAPS)


def test_default_profile_blocks_what_docker_blocks_and_runs_the_rest(oci: support.Env) -> None:
    script = (
        "grep -E '^(Seccomp|NoNewPrivs):' /proc/self/status | tr -d '\\t' | tr ':' '=';"
        "unshare -n true 2>/dev/null; echo unshare=$?;"
        "mkdir -p /x && mount -t tmpfs none /x 2>/dev/null; echo mount=$?;"
        "chroot / true; echo chroot=$?;"  # allowed: CAP_SYS_CHROOT is in the set
        "echo hi | sed s/h/H/; echo pid=$$"
    )

    def configure(doc: dict[str, Any]) -> None:
        _docker_like(doc)
        doc["root"]["readonly"] = False

    r = oci.run("dflt", ["sh", "-c", script], configure)
    assert r.code == 0, r.err
    f = _fields(r.out)
    assert (f["Seccomp"], f["NoNewPrivs"]) == ("2", "1")  # filter mode
    assert (f["unshare"], f["mount"], f["chroot"]) == ("1", "1", "0")
    assert "Hi" in r.out and f["pid"] == "1"


def test_errno_values_kill_and_loading_after_setuid(oci: support.Env) -> None:
    def configure(doc: dict[str, Any]) -> None:
        doc["process"]["user"] = {"uid": 1000, "gid": 1000}  # needs NNP to load: set by runc spec
        doc["linux"]["seccomp"] = {
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [
                {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 28},
                {"names": ["getcwd"], "action": "SCMP_ACT_ERRNO"},  # EPERM by default
                {"names": ["sethostname"], "action": "SCMP_ACT_KILL_PROCESS"},
            ],
        }

    script = "mkdir /tmp/d; echo mkdir=$?; echo id=$(id -u); busybox pwd; echo pwd=$?"
    r = oci.run("errs", ["sh", "-c", script], configure)
    f = _fields(r.out)
    assert "No space left on device" in r.err  # errno 28 as asked
    assert f["id"] == "1000"  # the uid change came before the filter
    assert f["mkdir"] == "1" and f["pwd"] == "1"  # getcwd denied inside, cwd check passed
    r = oci.run("kill", ["sh", "-c", "hostname x; echo survived"], configure)
    assert "survived" in r.out  # the shell survives; its child died of SIGSYS
    assert oci.run("killme", ["hostname", "x"], configure).code == 128 + 31


def test_notify_fd_goes_to_the_listener_with_the_state(oci: support.Env) -> None:
    path = str(oci.base / "seccomp.sock")
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(1)

    def configure(doc: dict[str, Any]) -> None:
        doc["linux"]["seccomp"] = {
            "defaultAction": "SCMP_ACT_ALLOW",
            "listenerPath": path,
            "listenerMetadata": "meta-1",
            "syscalls": [{"names": ["mkdirat", "mkdir"], "action": "SCMP_ACT_NOTIFY"}],
        }

    try:
        pid = oci.create("notif", ["true"], configure)
        conn, _ = srv.accept()
        with conn:
            msg, fds, _, _ = socket.recv_fds(conn, 65536, 1)
        for fd in fds:
            assert os.readlink(f"/proc/self/fd/{fd}") == "anon_inode:seccomp notify"
            os.close(fd)
        st = json.loads(msg)
        assert (st["id"], st["fds"], st["metadata"], st["pid"]) == (
            "notif",
            ["seccompFd"],
            "meta-1",
            pid,
        )
        lifecycle.start(oci.root, "notif")
        assert support.wait(pid) == 0
        lifecycle.delete(oci.root, "notif")
    finally:
        srv.close()


def test_exec_gets_the_containers_filter(oci: support.Env) -> None:
    def configure(doc: dict[str, Any]) -> None:
        _docker_like(doc)

    pid = oci.create("sx", ["sleep", "1000"], configure)
    lifecycle.start(oci.root, "sx")
    out = os.open(oci.base / "sx-exec.out", os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        proc = {
            "args": ["sh", "-c", "grep ^Seccomp: /proc/self/status; unshare -n true; echo rc=$?"],
            "cwd": "/",
            "env": ["PATH=/bin"],
            "noNewPrivileges": True,
        }
        p = lifecycle.exec_process(oci.root, "sx", proc, stdout=out, stderr=out)
    finally:
        os.close(out)
    assert support.wait(p) == 0
    text = (oci.base / "sx-exec.out").read_text()
    assert "Seccomp:\t2" in text and "rc=1" in text
    lifecycle.delete(oci.root, "sx", force=True)
    support.wait(pid)
