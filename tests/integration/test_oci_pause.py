"""pause/resume (the freezer), ps, stats and features — through the library
and through ``pyreconcile-runc`` (exec, pause, resume, ps, events --stats,
features)."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from runtime import errors
from runtime.oci import lifecycle, state
from tests.integration import test_oci_support as support
from tests.integration.test_oci_cli import RUNC


@pytest.fixture
def oci(roots: Any, busybox_dir: Path) -> Iterator[support.Env]:
    with support.environment(roots.base, busybox_dir, roots.cgroup_parent) as env:
        yield env


def _ticks(env: support.Env, cid: str) -> int:
    return len(env.output(cid)[0])


def test_pause_freezes_every_process_and_resume_thaws_them(oci: support.Env) -> None:
    def configure(doc: dict[str, Any]) -> None:
        doc["linux"]["resources"]["memory"] = {"limit": 64 << 20}

    pid = oci.create("pz", ["sh", "-c", "while :; do printf x; usleep 2000; done"], configure)
    lifecycle.start(oci.root, "pz")
    support.until(lambda: _ticks(oci, "pz") > 3)
    lifecycle.pause(oci.root, "pz")
    assert lifecycle.state(oci.root, "pz")["status"] == "paused"
    rec = state.load(oci.root, "pz")
    assert state.is_frozen(rec.freezer)
    frozen_at = _ticks(oci, "pz")
    stat = Path(f"/proc/{pid}/stat").read_text()
    assert _ticks(oci, "pz") == frozen_at and stat  # nothing runs while frozen
    with pytest.raises(errors.FailedPrecondition, match="not running: paused"):
        lifecycle.pause(oci.root, "pz")
    with pytest.raises(errors.FailedPrecondition, match="not stopped: paused"):
        lifecycle.delete(oci.root, "pz")
    stats = lifecycle.stats(oci.root, "pz")
    assert stats["memory"]["usage"]["limit"] == 64 << 20  # type: ignore[index]
    assert stats["pids"]["current"] >= 1  # type: ignore[index]
    assert stats["cpu"]["usage"]["total"] > 0  # type: ignore[index]
    lifecycle.resume(oci.root, "pz")
    assert lifecycle.state(oci.root, "pz")["status"] == "running"
    support.until(lambda: _ticks(oci, "pz") > frozen_at + 3)
    with pytest.raises(errors.FailedPrecondition, match="not paused: running"):
        lifecycle.resume(oci.root, "pz")
    lifecycle.pause(oci.root, "pz")
    lifecycle.delete(oci.root, "pz", force=True)  # a frozen container still dies
    assert support.wait(pid) == 137


def test_cli_exec_pause_ps_stats_and_features(oci: support.Env) -> None:
    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*RUNC, "--root", oci.root, *args], stdin=subprocess.DEVNULL,
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip

    pid = oci.create("c", ["sleep", "1000"])
    lifecycle.start(oci.root, "c")
    r = cli("exec", "c", "sh", "-c", "echo in $(hostname); exit 6")
    assert (r.returncode, r.stdout) == (6, "in runc\n"), r.stderr
    process = oci.base / "process.json"
    process.write_text(json.dumps({"args": ["id", "-u"], "cwd": "/", "user": {"uid": 7}}))
    r = cli("exec", "--process", str(process), "c")
    assert (r.returncode, r.stdout) == (0, "7\n"), r.stderr
    detached = subprocess.run(  # stdio not a pipe: the detached process keeps it open
        [*RUNC, "--root", oci.root, "exec", "--detach", "--pid-file", str(oci.base / "x.pid"),
         "c", "sleep", "1000"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        timeout=60, check=False,
    )  # fmt: skip
    assert detached.returncode == 0
    extra = int((oci.base / "x.pid").read_text())
    assert sorted(json.loads(cli("ps", "--format", "json", "c").stdout)) == sorted([pid, extra])
    table = cli("ps", "c").stdout.splitlines()
    assert "PID" in table[0] and len(table) == 3
    assert cli("pause", "c").returncode == 0
    assert json.loads(cli("state", "c").stdout)["status"] == "paused"
    assert cli("resume", "c").returncode == 0
    ev = json.loads(cli("events", "--stats", "c").stdout)
    assert ev["type"] == "stats" and ev["data"]["pids"]["current"] == 2
    feats = json.loads(cli("features").stdout)
    assert "seccomp" in feats["linux"] and feats["linux"]["seccomp"]["enabled"] is True
    assert "user" in feats["linux"]["namespaces"] and "createRuntime" in feats["hooks"]
    assert cli("exec", "ghost", "true").returncode == 1
    os.kill(extra, 9)  # reaped by us (the subreaper): the pid namespace waits for that
    assert support.wait(extra) == 137
    lifecycle.delete(oci.root, "c", force=True)
    support.wait(pid)
    assert not os.path.exists(os.path.join(oci.root, "c"))
