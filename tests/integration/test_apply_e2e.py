"""End to end through the CLI: real namespaces, mounts, shims and processes.

Each test has its own roots (the ``roots`` fixture), so tests run in parallel
and each fails if it leaves a mount, process or cgroup behind.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Roots

PYRECONCILE = [sys.executable, "-m", "reconciler.cli"]


def run(
    roots: Roots, *args: str, check: bool = True, timeout: float = 60, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [*PYRECONCILE, *args],
        env=roots.env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        input=input,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"pyreconcile {' '.join(args)} exited {proc.returncode}\n"
            f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
        )
    return proc


def wait_until(predicate: Any, timeout: float = 20.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def write_stack(directory: Path, busybox_tar: Path, containers: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "stack.yaml").write_text(
        f"""\
apiVersion: pyreconcile/v1
kind: Image
metadata: {{name: bb}}
spec:
  import: {{path: {busybox_tar}}}
{containers}"""
    )
    return directory


def ps(roots: Roots) -> dict[str, dict[str, Any]]:
    out = run(roots, "ps", "-o", "json").stdout
    return {c["object"] or c["name"]: c for c in json.loads(out)}


def ns(pid: int, kind: str) -> str:
    return os.readlink(f"/proc/{pid}/ns/{kind}")


WEB = """\
---
apiVersion: pyreconcile/v1
kind: Container
metadata: {{name: web}}
spec:
  image: bb
  command: [sh, -c, 'echo "hello from $$(hostname) in $$(pwd) with $$GREETING"; exec sleep 1000']
  env: {{GREETING: {greeting}}}
  workingDir: /tmp
  hostname: webhost
  restart: always
  stopGracePeriod: 1s
"""


def test_apply_runs_a_real_container(roots: Roots, busybox_tar: Path) -> None:
    stack = write_stack(roots.base / "s1", busybox_tar, WEB.format(greeting="hi"))
    run(roots, "apply", "-f", str(stack))
    try:
        web = wait_until(lambda: ps(roots).get("web"), what="web in ps")
        assert web["status"] == "running", web
        pid = web["pid"]
        for kind in ("pid", "mnt", "uts", "ipc", "net"):
            assert ns(pid, kind) != ns(os.getpid(), kind), kind
        with open(f"/proc/{pid}/environ", "rb") as f:
            env = dict(item.split(b"=", 1) for item in f.read().split(b"\0") if b"=" in item)
        assert env[b"GREETING"] == b"hi"
        assert os.readlink(f"/proc/{pid}/cwd") == "/tmp"
        logs = wait_until(
            lambda: run(roots, "logs", "s1/web").stdout.strip(), what="web's output in logs"
        )
        assert logs == "hello from webhost in /tmp with hi"
        # the container's init is a child of its shim, which is a child of PID 1
        with open(f"/proc/{pid}/stat") as f:
            shim = int(f.read().rsplit(")", 1)[1].split()[1])
        with open(f"/proc/{shim}/stat") as f:
            assert int(f.read().rsplit(")", 1)[1].split()[1]) == 1
    finally:
        run(roots, "delete", "-f", str(stack), "--volumes")
    assert ps(roots) == {}
    containers = roots.root / "containers"
    assert not containers.exists() or list(containers.iterdir()) == []
    bundles = roots.run_root / "containers"
    assert not bundles.exists() or list(bundles.iterdir()) == []


def test_diff_exit_codes_and_recreate(roots: Roots, busybox_tar: Path) -> None:
    stack = write_stack(roots.base / "s2", busybox_tar, WEB.format(greeting="hi"))
    run(roots, "apply", "-f", str(stack))
    try:
        first = wait_until(lambda: ps(roots).get("web"), what="web")
        assert run(roots, "diff", "-f", str(stack)).returncode == 0

        write_stack(stack, busybox_tar, WEB.format(greeting="changed-secret"))
        changed = run(roots, "diff", "-f", str(stack), check=False)
        assert changed.returncode == 2, changed.stderr
        assert "container/web" in changed.stdout
        assert "env.GREETING changed" in changed.stdout
        assert "changed-secret" not in changed.stdout  # env values are never shown
        doc = json.loads(run(roots, "diff", "-f", str(stack), "-o", "json", check=False).stdout)
        assert doc["schemaVersion"] == 1 and doc["inSync"] is False
        assert doc["changes"][0]["action"] == "recreate"
        assert doc["changes"][0]["reasons"][0]["path"] == "env.GREETING"
        style = run(roots, "diff", "-f", str(stack), "--exit-code-style", "diff", check=False)
        assert style.returncode == 1

        run(roots, "apply", "-f", str(stack))
        second = wait_until(lambda: ps(roots).get("web"), what="recreated web")
        assert second["id"] != first["id"]
        assert second["status"] == "running"
        assert run(roots, "diff", "-f", str(stack)).returncode == 0
    finally:
        run(roots, "delete", "-f", str(stack))


def test_container_survives_a_killed_pyreconcile(roots: Roots, busybox_tar: Path) -> None:
    """SIGKILL the apply while it waits: the container runs on and is adopted."""
    containers = (
        WEB.format(greeting="a")
        + """\
---
apiVersion: pyreconcile/v1
kind: Container
metadata: {name: after}
spec:
  image: bb
  command: [sleep, "1000"]
  stopGracePeriod: 1s
  dependsOn: [{name: web, condition: completed}]
"""
    )
    stack = write_stack(roots.base / "s3", busybox_tar, containers)
    apply = subprocess.Popen(
        [*PYRECONCILE, "apply", "-f", str(stack)],
        env=roots.env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        web = wait_until(
            lambda: (ps(roots).get("web") or {}).get("status") == "running" and ps(roots)["web"],
            what="web running while apply waits",
        )
        assert apply.poll() is None, "apply should still be waiting for web to complete"
        os.kill(apply.pid, signal.SIGKILL)
        apply.wait(10)
        os.kill(web["pid"], 0)  # still alive
        time.sleep(0.2)
        still = ps(roots)["web"]
        assert still["status"] == "running" and still["pid"] == web["pid"]
        # a new apply (without the waiting container) adopts it: nothing to recreate
        write_stack(stack, busybox_tar, WEB.format(greeting="a"))
        diff = run(roots, "diff", "-f", str(stack), check=False)
        assert "container/web" not in diff.stdout, diff.stdout
        run(roots, "apply", "-f", str(stack))
        assert ps(roots)["web"]["id"] == web["id"]
    finally:
        if apply.poll() is None:
            apply.kill()
            apply.wait()
        run(roots, "delete", "-f", str(stack))


def test_invalid_manifests_change_nothing(roots: Roots, busybox_tar: Path) -> None:
    stack = roots.base / "bad"
    stack.mkdir()
    (stack / "stack.yaml").write_text(
        "apiVersion: pyreconcile/v1\n"
        "kind: Container\n"
        "metadata: {name: web}\n"
        "spec:\n"
        "  image: busybox\n"
        "  netwroks: [backend]\n"
    )
    before = sorted(p.name for p in roots.root.iterdir())
    result = run(roots, "apply", "-f", str(stack), check=False)
    assert result.returncode == 1
    assert "stack.yaml:6:3" in result.stderr
    assert "did you mean 'networks'" in result.stderr
    assert "nothing was changed" in result.stderr
    assert sorted(p.name for p in roots.root.iterdir()) == before
    assert run(roots, "validate", "-f", str(stack), check=False).returncode == 1
    assert run(roots, "diff", "-f", str(stack), check=False).returncode == 1


def test_operator_stop_and_start(roots: Roots, busybox_tar: Path) -> None:
    stack = write_stack(roots.base / "s4", busybox_tar, WEB.format(greeting="x"))
    run(roots, "apply", "-f", str(stack))
    try:
        run(roots, "stop", "s4/web", "-t", "1")
        web = ps(roots)["web"]
        assert web["status"] == "exited" and web["operatorStopped"] is True
        diff = run(roots, "diff", "-f", str(stack), check=False)
        assert diff.returncode == 2 and "stopped by an operator" in diff.stdout
        run(roots, "start", "s4/web")
        assert ps(roots)["web"]["status"] == "running"
        assert run(roots, "diff", "-f", str(stack)).returncode == 0
    finally:
        run(roots, "delete", "-f", str(stack))


@pytest.mark.parametrize("stdin", [True])
def test_apply_from_stdin(roots: Roots, busybox_tar: Path, stdin: bool) -> None:
    text = (
        write_stack(roots.base / "s5", busybox_tar, WEB.format(greeting="in"))
        .joinpath("stack.yaml")
        .read_text()
    )
    run(roots, "apply", "--stack", "s5", "-f", "-", input=text)
    try:
        assert ps(roots)["web"]["status"] == "running"
    finally:
        run(roots, "delete", "--stack", "s5")
