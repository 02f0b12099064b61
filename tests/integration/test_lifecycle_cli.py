"""The container commands through the real CLI, each a new process (as an operator runs them):
exec (plain, -i, -t through a pty), logs -f, inspect, kill, restart, ps; and two concurrent
applies of one stack."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import time
from pathlib import Path

from tests.conftest import Roots
from tests.integration.test_lifecycle_support import (
    PYRECONCILE,
    cli,
    container_doc,
    ps_by_object,
    shim_pids,
    spawn_cli,
    wait_until,
    write_stack,
)

WEB = container_doc("web", "echo started; exec sleep 1000", env="{GREETING: hi}")


def test_exec_and_logs_follow_against_a_container_of_an_earlier_process(
    roots: Roots, busybox_tar: Path
) -> None:
    stack = write_stack(roots.base / "io", busybox_tar, WEB)
    cli(roots, "apply", "-f", str(stack))  # that process is gone now
    follower = spawn_cli(roots, "logs", "-f", "io/web")
    try:
        out = cli(roots, "exec", "io/web", "sh", "-c", "echo $GREETING-$((6*7)); exit 0")
        assert out.stdout == "hi-42\n"
        failed = cli(roots, "exec", "io/web", "sh", "-c", "echo oops >&2; exit 9", check=False)
        assert failed.returncode == 9 and failed.stderr == "oops\n"
        piped = cli(roots, "exec", "-i", "io/web", "tr", "a-z", "A-Z", input="shout\n")
        assert piped.stdout == "SHOUT\n"
        user = cli(roots, "exec", "-u", "nobody", "-w", "/tmp", "io/web", "sh", "-c", "id -u; pwd")
        assert user.stdout.split() == ["65534", "/tmp"]
        # a line on the container's own stdout, while logs -f follows
        cli(roots, "exec", "io/web", "sh", "-c", "echo from-exec > /proc/1/fd/1")
        cli(roots, "stop", "io/web", "-t", "1")  # the follow ends with the container
        stdout, _ = follower.communicate(timeout=30)
        assert follower.returncode == 0
        assert stdout == "started\nfrom-exec\n"
        stopped = cli(roots, "exec", "io/web", "true", check=False)
        assert stopped.returncode == 1 and "not running" in stopped.stderr
    finally:
        if follower.poll() is None:
            follower.kill()
            follower.communicate()
        cli(roots, "delete", "--stack", "io")


def test_exec_with_a_tty(roots: Roots, busybox_tar: Path) -> None:
    stack = write_stack(roots.base / "tty", busybox_tar, WEB)
    cli(roots, "apply", "-f", str(stack))
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [*PYRECONCILE, "exec", "-it", "tty/web", "sh"],
        env=roots.env(),
        stdin=slave,
        stdout=slave,
        stderr=slave,
    )
    os.close(slave)
    try:
        # (input sent before the CLI has made its terminal raw would be flushed)
        seen = _read_until(master, b"# ")
        os.write(master, b"tty; echo sum-$((40+2)); exit 5\r")
        seen += _read_until(master, b"sum-42")
        assert b"/dev/pts/" in seen  # a terminal made in the container
        assert proc.wait(20) == 5
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
        cli(roots, "delete", "--stack", "tty")


def test_inspect_kill_restart_and_ps(roots: Roots, busybox_tar: Path) -> None:
    docs = WEB + container_doc("svc", "exec sleep 1000", restart="always", init="true")
    stack = write_stack(roots.base / "ops", busybox_tar, docs)
    cli(roots, "apply", "-f", str(stack))
    try:
        [doc] = json.loads(cli(roots, "inspect", "ops/web").stdout)
        assert doc["State"]["Status"] == "running" and doc["State"]["Running"] is True
        assert doc["State"]["Pid"] > 0 and doc["State"]["ExitCode"] == 0
        assert doc["State"]["OOMKilled"] is False and doc["State"]["Restarting"] is False
        assert doc["State"]["FinishedAt"] == "0001-01-01T00:00:00Z"
        assert doc["Config"]["Env"] == ["GREETING=hi"]
        assert doc["HostConfig"]["RestartPolicy"] == {"Name": "no", "MaximumRetryCount": 0}
        assert doc["RestartCount"] == 0 and doc["Pyreconcile"]["Stack"] == "ops"

        svc = ps_by_object(roots)["svc"]
        assert "sent SIGKILL" in cli(roots, "kill", "ops/svc").stdout
        back = wait_until(
            lambda: (
                (c := ps_by_object(roots)["svc"])["status"] == "running"
                and c["pid"] != svc["pid"]
                and c
            ),
            what="the shim to restart the killed container",
        )
        assert back["restartCount"] == 1 and back["lastExit"]["exitCode"] == 137
        [doc] = json.loads(cli(roots, "inspect", "ops/svc").stdout)
        assert doc["RestartCount"] == 1 and doc["HostConfig"]["Init"] is True
        assert doc["State"]["FinishedAt"] != "0001-01-01T00:00:00Z"  # the last exit's

        # (sleep as PID 1 has no handler for TERM: the kernel ignores it; KILL it is)
        assert "sent KILL" in cli(roots, "kill", "-s", "KILL", "ops/web").stdout  # restart: no
        web = wait_until(
            lambda: (c := ps_by_object(roots)["web"])["status"] == "exited" and c, what="web"
        )
        assert web["exitCode"] == 137
        [doc] = json.loads(cli(roots, "inspect", "ops/web").stdout)
        assert doc["State"]["ExitCode"] == 137 and doc["State"]["Running"] is False
        assert doc["State"]["FinishedAt"].endswith("Z")
        not_running = cli(roots, "kill", "ops/web", check=False)
        assert not_running.returncode == 1 and "not running" in not_running.stderr

        assert "ops/web: running" in cli(roots, "restart", "ops/web", "-t", "1").stdout
        table = cli(roots, "ps").stdout.splitlines()
        assert table[0].split()[:8] == ["ID", "NAME", "STATUS", "RESTARTS", "LAST", "EXIT",
                                        "IMAGE", "CREATED"]  # fmt: skip
        svc_line = next(line for line in table if "ops/svc" in line)
        assert " 137 (" in svc_line
        web_line = next(line for line in table if "ops/web" in line)
        assert "running" in web_line and " 137 (" in web_line
    finally:
        cli(roots, "delete", "--stack", "ops")


def test_logs_tail_since_and_timestamps(roots: Roots, busybox_tar: Path) -> None:
    docs = container_doc("talk", "for i in 1 2 3 4 5; do echo line-$$i; done; exec sleep 1000")
    stack = write_stack(roots.base / "lg", busybox_tar, docs)
    cli(roots, "apply", "-f", str(stack))
    try:
        wait_until(lambda: cli(roots, "logs", "lg/talk").stdout.count("\n") == 5, what="5 lines")
        assert cli(roots, "logs", "--tail", "2", "lg/talk").stdout == "line-4\nline-5\n"
        stamped = cli(roots, "logs", "-t", "--tail", "1", "lg/talk").stdout
        stamp, text = stamped.split(" ", 1)
        assert text == "line-5\n" and stamp.endswith("Z") and "T" in stamp
        assert cli(roots, "logs", "--since", stamp, "lg/talk").stdout.endswith("line-5\n")
        assert cli(roots, "logs", "--since", "1h", "lg/talk").stdout.count("\n") == 5
        future = str(time.time() + 3600)
        assert cli(roots, "logs", "--since", future, "lg/talk").stdout == ""
        bad = cli(roots, "logs", "--since", "someday", "lg/talk", check=False)
        assert bad.returncode == 1 and "RFC 3339" in bad.stderr
    finally:
        cli(roots, "delete", "--stack", "lg")


def test_two_concurrent_applies_make_one_copy_of_each(roots: Roots, busybox_tar: Path) -> None:
    docs = "".join(container_doc(f"c{i}", "exec sleep 1000") for i in range(4))
    stack = write_stack(roots.base / "twice", busybox_tar, docs)
    first = spawn_cli(roots, "apply", "-f", str(stack))
    second = spawn_cli(roots, "apply", "-f", str(stack))
    try:
        for proc in (first, second):
            _, err = proc.communicate(timeout=120)
            assert proc.returncode == 0, err
        seen = ps_by_object(roots)  # fails on a name listed twice
        assert sorted(seen) == ["c0", "c1", "c2", "c3"]
        assert all(c["status"] == "running" for c in seen.values())
        shims = shim_pids(roots)
        assert sorted(shims) == sorted(c["id"] for c in seen.values())
        assert all(len(pids) == 1 for pids in shims.values())
        assert cli(roots, "diff", "-f", str(stack), check=False).returncode == 0
    finally:
        for proc in (first, second):
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        cli(roots, "delete", "--stack", "twice")
    assert shim_pids(roots) == {}


def _read_until(fd: int, marker: bytes, timeout: float = 20.0) -> bytes:
    seen = b""
    deadline = time.monotonic() + timeout
    while marker not in seen and time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 1)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                break
            if b"\x1b[6n" in chunk:  # the shell asks where the cursor is: top left
                os.write(fd, b"\x1b[1;1R")
            seen += chunk
    assert marker in seen, seen
    return seen
