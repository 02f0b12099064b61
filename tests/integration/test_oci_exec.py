"""``exec`` into running containers, terminals through a console socket, and
the CVE-2019-5736 guard: whatever joins a container runs from an interpreter
file that cannot be opened for writing."""

from __future__ import annotations

import errno
import os
import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import runtime.sys as rsys
from runtime import errors
from runtime.oci import execproc, lifecycle, state
from runtime.sys import exeguard
from tests.integration import test_oci_support as support


@pytest.fixture
def oci(roots: Any, busybox_dir: Path) -> Iterator[support.Env]:
    with support.environment(roots.base, busybox_dir, roots.cgroup_parent) as env:
        yield env


def _exec(env: support.Env, cid: str, process: dict[str, Any], name: str, **kw: Any) -> Any:
    """exec ``process``; (exit code, output)."""
    out = os.open(env.base / f"{name}.out", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        pid = lifecycle.exec_process(env.root, cid, process, stdout=out, stderr=out, **kw)
    finally:
        os.close(out)
    code = support.wait(pid)
    return code, (env.base / f"{name}.out").read_text()


def test_exec_joins_namespaces_and_cgroup_with_its_own_identity(oci: support.Env) -> None:
    def configure(doc: dict[str, Any]) -> None:
        doc["hostname"] = "exec-target"

    init = oci.create("ex", ["sleep", "1000"], configure)
    lifecycle.start(oci.root, "ex")
    script = (
        "for ns in pid mnt uts net ipc; do echo $ns=$(readlink /proc/self/ns/$ns); done;"
        "echo host=$(hostname); echo id=$(id -u):$(id -g):$(id -G); echo cwd=$(pwd);"
        "echo env=$FOO; echo fds=$(ls /proc/self/fd | wc -l); echo ppid=$PPID;"
        "grep -E '^(CapEff|NoNewPrivs)' /proc/self/status | tr -d '\\t' | tr : =; exit 5"
    )
    proc = execproc.process_from_config(
        str(oci.base / "bundle-ex"), ["sh", "-c", script], env=["FOO=bar"], cwd="/tmp",
        user=(1000, 1000), additional_gids=[5],
    )  # fmt: skip
    code, out = _exec(oci, "ex", proc, "ex1")
    assert code == 5, out
    f = dict(line.split("=", 1) for line in out.splitlines())
    for ns in ("pid", "mnt", "uts", "net", "ipc"):
        assert f[ns] == os.readlink(f"/proc/{init}/ns/{ns}"), ns
    assert (f["host"], f["id"], f["cwd"], f["env"]) == (
        "exec-target",
        "1000:1000:1000 5",
        "/tmp",
        "bar",
    )
    assert f["fds"] == "4"  # 0 1 2 and the one ls opens
    assert f["ppid"] == "0"  # its parent is outside the container's pid namespace
    assert (f["CapEff"], f["NoNewPrivs"]) == ("0" * 16, "1")  # non-root: no effective caps
    cg = state.load(oci.root, "ex").cgroup_dirs[0]
    p = lifecycle.exec_process(oci.root, "ex", {"args": ["sleep", "1000"], "cwd": "/"})
    assert str(p) in Path(cg, "cgroup.procs").read_text().split()
    assert sorted(lifecycle.pids(oci.root, "ex")) == sorted([init, p])
    os.kill(p, 9)
    assert support.wait(p) == 137
    lifecycle.delete(oci.root, "ex", force=True)
    support.wait(init)


def test_exec_errors(oci: support.Env) -> None:
    init = oci.create("ee", ["sleep", "1000"])
    lifecycle.start(oci.root, "ee")
    with pytest.raises(errors.InvalidSpec, match="executable file not found"):
        lifecycle.exec_process(oci.root, "ee", {"args": ["nope"], "cwd": "/"})
    with pytest.raises(errors.InvalidSpec, match=r"process\.args"):
        lifecycle.exec_process(oci.root, "ee", {"args": [], "cwd": "/"})
    lifecycle.kill(oci.root, "ee", 9)
    support.wait(init)
    with pytest.raises(errors.FailedPrecondition, match="it is stopped"):
        lifecycle.exec_process(oci.root, "ee", {"args": ["true"], "cwd": "/"})
    lifecycle.delete(oci.root, "ee")


def test_guarded_interpreter_cannot_be_opened_for_writing(tmp_path: Path) -> None:
    fd, kind = exeguard.guarded_interpreter()
    assert kind == "ro-bind" and exeguard.is_guarded_fd(fd)
    assert os.fstat(fd).st_ino == os.stat(os.path.realpath(sys.executable)).st_ino
    with pytest.raises(OSError) as info:
        os.open(f"/proc/self/fd/{fd}", os.O_WRONLY)
    assert info.value.errno in (errno.ETXTBSY, errno.EROFS)
    # a file nobody executes: the mount alone refuses the write
    copy = tmp_path / "python-copy"
    copy.write_bytes(b"#!/bin/false\n")
    ro = exeguard._ro_bind(str(copy))
    try:
        with pytest.raises(OSError) as info:
            os.open(f"/proc/self/fd/{ro}", os.O_WRONLY)
        assert info.value.errno == errno.EROFS
    finally:
        os.close(ro)
    sealed = exeguard._sealed_copy(str(copy))
    try:
        assert exeguard.is_guarded_fd(sealed)
        w = os.open(f"/proc/self/fd/{sealed}", os.O_WRONLY)
        try:
            with pytest.raises(PermissionError):
                os.write(w, b"overwritten")
        finally:
            os.close(w)
    finally:
        os.close(sealed)


_EVIL = """#!/proc/self/exe -S
import os
try:
    os.close(os.open("/proc/self/exe", os.O_WRONLY))
    print("opened-for-writing")
except OSError as exc:
    print("errno", exc.errno)
print("readonly", bool(os.statvfs("/proc/self/exe").f_flag & os.ST_RDONLY))
print("inode", os.stat("/proc/self/exe").st_ino)
"""


def _evil_rootfs(env: support.Env) -> Any:
    """Plant ``/evil`` and give the container the host's interpreter and libc
    (read-only binds), so that a re-executed interpreter can run in it."""
    prefix = str(Path(os.path.realpath(sys.executable)).parents[1])
    for link, target in (("lib", "usr/lib"), ("lib64", "usr/lib64")):
        if not os.path.lexists(env.rootfs / link):
            os.symlink(target, env.rootfs / link)
    (env.rootfs / "evil").write_text(_EVIL)
    os.chmod(env.rootfs / "evil", 0o755)

    def configure(doc: dict[str, Any]) -> None:
        for src in ("/usr", prefix):
            doc["mounts"].append(
                {"destination": src, "type": "bind", "source": src, "options": ["rbind", "ro"]}
            )

    return configure


def test_exec_of_a_proc_self_exe_script_runs_only_a_read_only_interpreter(
    oci: support.Env,
) -> None:
    """CVE-2019-5736: the container's program is ``#!/proc/self/exe``, so the
    kernel re-executes whatever runs the exec — inside the container. It must
    be our interpreter on a read-only mount, which the container cannot write."""
    configure = _evil_rootfs(oci)
    init = oci.create("cve", ["sleep", "1000"], configure)
    lifecycle.start(oci.root, "cve")
    code, out = _exec(oci, "cve", {"args": ["/evil"], "cwd": "/", "env": ["PATH=/bin"]}, "cve")
    assert code == 0, out
    f = dict(line.split(" ", 1) for line in out.splitlines())
    assert "opened-for-writing" not in out
    assert int(f["errno"]) in (errno.ETXTBSY, errno.EROFS)
    assert f["readonly"] == "True"
    assert int(f["inode"]) == os.stat(os.path.realpath(sys.executable)).st_ino
    lifecycle.delete(oci.root, "cve", force=True)
    support.wait(init)


def test_cli_run_of_a_proc_self_exe_entrypoint_is_guarded_too(oci: support.Env) -> None:
    """The same attack through ``pyreconcile-runc run``: the CLI re-executes
    itself from the guarded interpreter before it forks the init."""
    import json
    import subprocess

    from tests.integration.test_oci_cli import RUNC

    bundle = oci.bundle("clicve", ["/evil"], _evil_rootfs(oci))
    doc = json.loads(Path(bundle, "config.json").read_text())
    doc["process"]["env"].append("PYTHONDONTWRITEBYTECODE=1")
    Path(bundle, "config.json").write_text(json.dumps(doc))
    r = subprocess.run(
        [*RUNC, "--root", oci.root, "run", "--bundle", bundle, "clicve"],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    f = dict(line.split(" ", 1) for line in r.stdout.splitlines())
    assert f["readonly"] == "True" and "opened-for-writing" not in r.stdout


def _console(path: Path) -> socket.socket:
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(str(path))
    srv.listen(1)
    return srv


def _receive_master(srv: socket.socket) -> int:
    conn, _ = srv.accept()
    with conn:
        msg, fds, _, _ = socket.recv_fds(conn, 1024, 1)
    assert msg == b"/dev/ptmx" and len(fds) == 1
    return fds[0]


def _drain(fd: int) -> str:
    data = b""
    while True:
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # EIO once the last slave fd is closed
            break
        if not chunk:
            break
        data += chunk
    return data.decode()


def test_terminal_through_the_console_socket(oci: support.Env) -> None:
    srv = _console(oci.base / "console.sock")

    def configure(doc: dict[str, Any]) -> None:
        doc["process"]["terminal"] = True
        doc["process"]["consoleSize"] = {"height": 33, "width": 101}

    script = "tty; stty size; stat -c %t:%T /dev/console; readlink /proc/self/fd/0; sleep 1000"
    try:
        pid = oci.create("tty", ["sh", "-c", script], configure,
                         console_socket=str(oci.base / "console.sock"))  # fmt: skip
        master = _receive_master(srv)
        lifecycle.start(oci.root, "tty")
        support.until(lambda: bool(os.read(master, 1)) or True)
        # the same pty for exec --tty
        proc = {"args": ["sh", "-c", "tty; exit 4"], "cwd": "/", "terminal": True}
        p = lifecycle.exec_process(
            oci.root, "tty", proc, console_socket=str(oci.base / "console.sock")
        )
        exec_master = _receive_master(srv)
        assert support.wait(p) == 4
        assert _drain(exec_master).strip() == "/dev/pts/1"
        os.close(exec_master)
        lifecycle.kill(oci.root, "tty", 9)
        assert support.wait(pid) == 137
        out = "/" + _drain(master)  # the first byte was read above
        os.close(master)
        lines = [line.strip() for line in out.splitlines()]
        assert lines[:4] == ["/dev/pts/0", "33 101", "88:0", "/dev/pts/0"]
        lifecycle.delete(oci.root, "tty")
    finally:
        srv.close()


def test_terminal_without_a_console_socket_is_refused(oci: support.Env) -> None:
    def configure(doc: dict[str, Any]) -> None:
        doc["process"]["terminal"] = True

    with pytest.raises(errors.InvalidSpec, match="console socket"):
        oci.create("nosock", ["true"], configure)
    assert rsys.CLONE_NEWPID  # (module import used)
