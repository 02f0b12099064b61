"""Running the daemon: systemd notifications, SIGHUP reloads, graceful shutdown,
the socket's permissions, events and metrics through the CLI."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from tests.conftest import Roots
from tests.integration.test_daemon_watch import STACK
from tests.support import daemon

UNUSED_UID = 65533  # nogroup's neighbour: no such user, no groups


def cli(roots: Roots, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = dict(roots.env(), PYRECONCILE_DAEMON="always")
    done = subprocess.run(
        [*daemon.PYRECONCILE, *args], env=env, capture_output=True, text=True, timeout=60
    )
    if check and done.returncode != 0:
        raise AssertionError(f"{args} exited {done.returncode}: {done.stderr}")
    return done


def test_notify_reload_shutdown_events_metrics_and_status(roots: Roots, busybox_tar: Path) -> None:
    one = roots.base / "one"
    two = roots.base / "two"
    for directory, greeting in ((one, "a"), (two, "b")):
        directory.mkdir()
        (directory / "stack.yaml").write_text(STACK.format(tar=busybox_tar, greeting=greeting))
    config = roots.base / "daemon.toml"
    config.write_text('resync = "600s"\n[[source]]\nname = "one"\nwatch = ["one"]\n')
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify_path = str(roots.base / "notify.sock")
    notify.bind(notify_path)
    notify.settimeout(10)
    env = dict(roots.env(), NOTIFY_SOCKET=notify_path, WATCHDOG_USEC="200000")
    log = roots.base / "d.log"
    proc = daemon.start(roots, "--config", str(config), env=env, log=log)
    env["WATCHDOG_PID"] = str(proc.pid)
    rt = daemon.remote(roots)
    api = daemon.api(roots)
    told: list[str] = []

    def listen() -> None:
        while True:
            try:
                told.append(notify.recv(4096).decode())
            except OSError:
                return

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    try:
        ready = daemon.wait_for(lambda: [m for m in told if "READY=1" in m], what="READY=1")
        assert f"MAINPID={proc.pid}" in ready[0]
        daemon.wait_for(lambda: told.count("WATCHDOG=1") >= 3, what="watchdog pings")
        web = daemon.wait_for(
            lambda: (c := daemon.container(rt, "one", "web")) and c.status == "running" and c,
            what="source one applied",
        )
        follower = subprocess.Popen(
            [*daemon.PYRECONCILE, "events", "-f", "-o", "json"],
            env=dict(roots.env(), PYRECONCILE_DAEMON="always"),
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            # SIGHUP: a source added to the file is applied
            config.write_text(
                'resync = "600s"\n[[source]]\nname = "one"\nwatch = ["one"]\n'
                '[[source]]\nname = "two"\nwatch = ["two"]\n'
            )
            proc.send_signal(signal.SIGHUP)
            daemon.wait_for(
                lambda: (c := daemon.container(rt, "two", "web")) and c.status == "running",
                what="source two applied after SIGHUP",
            )
            seen = []
            assert follower.stdout is not None
            while "revision_applied" not in [e["type"] for e in seen if e.get("stack") == "two"]:
                seen.append(json.loads(follower.stdout.readline()))
            assert "config_reloaded" in [e["type"] for e in seen]
        finally:
            follower.kill()
            follower.wait()

        status = json.loads(cli(roots, "status", "-o", "json").stdout)
        by_stack = {s["stack"]: s for s in status}
        assert by_stack["one"]["source"]["name"] == "one"
        assert by_stack["two"]["objects"][0]["state"] == "running"
        text = cli(roots, "status", "two").stdout
        assert "stack two (source two" in text and "container  web" in text

        metrics = b"".join(api.download("GET", "/metrics")).decode()
        assert 'pyreconcile_objects{kind="Container",stack="one",state="running"} 1' in metrics
        assert 'pyreconcile_drift_objects{category="runtime",stack="two"} 0' in metrics
        assert 'pyreconcile_reconcile_rounds_total{result="success",source="two"}' in metrics
        assert "pyreconcile_reconcile_duration_seconds_bucket" in metrics

        # graceful shutdown: STOPPING, the socket goes, every container runs on
        assert daemon.stop(proc, log=log) == 0
        daemon.wait_for(lambda: any("STOPPING=1" in m for m in told), what="STOPPING=1")
        assert any("RELOADING=1" in m for m in told)
        assert not os.path.exists(daemon.socket_path(roots))
        os.kill(web.pid, 0)
        with open(f"/proc/{web.pid}/stat") as f:
            assert f.read().split(") ", 1)[1][0] in "RS"
    finally:
        rt.close()
        api.close()
        notify.close()
        daemon.stop(proc)
        daemon.delete_in_process(roots, "one")
        daemon.delete_in_process(roots, "two")


def test_a_user_without_access_to_the_socket_gets_a_clear_error(roots: Roots) -> None:
    proc = daemon.start(roots, log=roots.base / "d.log")
    try:
        mode = os.stat(daemon.socket_path(roots)).st_mode & 0o777
        assert mode == 0o660
        # the real CLI as an unprivileged uid (the system's python: the venv's
        # interpreter lives under /root), with the project and its packages
        site = next(p for p in sys.path if p.endswith("site-packages"))
        repo = str(Path(__file__).resolve().parents[2])
        env = {
            "PATH": "/usr/bin:/bin",
            "PYTHONPATH": f"{repo}:{site}",
            "PYRECONCILE_RUN_ROOT": str(roots.run_root),
            "PYRECONCILE_ROOT": str(roots.root),
        }
        done = subprocess.run(
            ["setpriv", f"--reuid={UNUSED_UID}", f"--regid={UNUSED_UID}", "--clear-groups",
             "/usr/bin/python3", "-m", "reconciler.cli", "ps"],
            env=env, capture_output=True, text=True, timeout=60, cwd="/",
        )  # fmt: skip
        assert done.returncode == 1, done
        assert "permission denied on the daemon's socket" in done.stderr
        assert "group" in done.stderr
        assert "Traceback" not in done.stderr
    finally:
        daemon.stop(proc)


def test_a_second_daemon_on_the_same_socket_is_refused(roots: Roots) -> None:
    log = roots.base / "d.log"
    proc = daemon.start(roots, log=log)
    try:
        second = subprocess.run(
            [*daemon.PYRECONCILE, "daemon"],
            env=roots.env(),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert second.returncode == 1
        assert "another daemon is serving" in second.stderr
        assert daemon.answers(daemon.socket_path(roots))
        started = time.monotonic()
    finally:
        daemon.stop(proc, log=log)
    assert time.monotonic() - started < 5
