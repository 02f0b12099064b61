"""The control socket and the event loop, with a fake supervisor, in a child process.

No root and no container: a ``python -I -S`` process runs the shim's Loop and
Server around a stand-in supervisor; the test talks to it over the socket.
(It must be a process of its own: signal wakeup fds work only in a main thread.)
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from runtime import errors
from runtime.shim.client import ShimClient

REPO = str(Path(__file__).resolve().parents[2])

FAKE = """
import sys
sys.path.insert(0, {repo!r})
from runtime import errors
from runtime.shim import events, loop, server, signals

lp = loop.Loop()
signals_seen = []
lp.on_signal(signals.SIGUSR1, lambda: signals_seen.append("USR1"))


class Fake:
    execs = None
    final = False
    log_listeners = []
    log_path = {log!r}

    def state(self):
        return {{"status": "running", "signals": signals_seen}}

    def wait(self, condition, timeout, reply):
        lp.call_later(timeout or 0, lambda: reply({{"condition": condition, "timed_out": True}}))

    def kill(self, sig, all_processes=False):
        if sig == 9:
            raise errors.FailedPrecondition("container fake is not running")
        if sig == 10:
            raise KeyError("a bug")

    def stop(self, sig, timeout, reply):
        lp.call_later(0.05, lambda: reply({{"exit_code": 143, "signal": sig}}))

    def shutdown(self):
        srv.finish(lp.stop)


srv = server.Server(lp, Fake(), {path!r}, events.EventLog({log!r}))
srv.listen()
print("ready", flush=True)
lp.run()
srv.close()
lp.close()
"""


@pytest.fixture
def fake_shim(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[str], Path]]:
    path = str(tmp_path / "s.sock")
    log = tmp_path / "shim.log"
    code = FAKE.format(repo=REPO, path=path, log=str(log))
    proc = subprocess.Popen(
        [sys.executable, "-I", "-S", "-c", code], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
        yield path, proc, log
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        assert proc.stdout is not None
        proc.stdout.close()


def _exchange(path: str, payload: bytes, replies: int) -> list[dict[str, object]]:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(10)
        s.connect(path)
        s.sendall(payload)
        data = b""
        while data.count(b"\n") < replies:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    return [json.loads(line) for line in data.splitlines()]


def test_requests_errors_and_deferred_replies(
    fake_shim: tuple[str, subprocess.Popen[str], Path],
) -> None:
    path, _, log = fake_shim
    got = _exchange(
        path,
        b'{"op": "wait", "timeout": 0.2, "id": "w"}\n'
        b'{"op": "state", "id": "s"}\n'
        b'{"op": "kill", "signal": "KILL", "id": "k"}\n'
        b'{"op": "kill", "signal": "USR1", "id": "bug"}\n'
        b'{"op": "stop", "id": "t"}\n',
        5,
    )
    by_id = {r["id"]: r for r in got}
    # the deferred ones (wait, stop) come after the immediate ones
    assert [r["id"] for r in got[:3]] == ["s", "k", "bug"]
    assert by_id["s"]["result"] == {"status": "running", "signals": []}
    assert by_id["k"]["error"] == {
        "category": "FailedPrecondition",
        "message": "container fake is not running",
    }
    assert by_id["bug"]["error"]["category"] == "Terminal"  # type: ignore[index]
    assert "request_failed" in log.read_text()
    assert by_id["t"]["result"] == {"exit_code": 143, "signal": None}
    assert by_id["w"]["result"] == {"condition": "stopped", "timed_out": True}


def test_a_request_split_across_writes_and_one_too_long(
    fake_shim: tuple[str, subprocess.Popen[str], Path],
) -> None:
    path, _, _ = fake_shim
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(10)
        s.connect(path)
        for part in (b'{"op": ', b'"state"', b"}\n"):
            s.sendall(part)
            time.sleep(0.01)  # let the shim see each part on its own
        assert json.loads(s.recv(65536))["ok"] is True
    big = _exchange(path, b"[" + b"1," * 40000, 1)
    assert big[0]["error"]["category"] == "InvalidSpec"  # type: ignore[index]
    assert "longer than" in big[0]["error"]["message"]  # type: ignore[index]


def test_client_maps_errors_and_signals_reach_the_loop(
    fake_shim: tuple[str, subprocess.Popen[str], Path],
) -> None:
    path, proc, _ = fake_shim
    client = ShimClient(path, timeout=5)
    with pytest.raises(errors.FailedPrecondition, match="not running"):
        client.kill("SIGKILL")
    with pytest.raises(errors.InvalidSpec, match="not known"):
        client.kill("SIGNOPE")
    os.kill(proc.pid, signal.SIGUSR1)
    deadline = time.monotonic() + 10
    while client.state()["signals"] != ["USR1"]:
        assert time.monotonic() < deadline, "the loop never ran the signal callback"
        time.sleep(0.01)


def test_shutdown_answers_then_closes_and_removes_the_socket(
    fake_shim: tuple[str, subprocess.Popen[str], Path],
) -> None:
    path, proc, _ = fake_shim
    idle = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    idle.connect(path)  # a connection that never asks: it must not keep the shim alive
    try:
        assert ShimClient(path).shutdown() == {"status": "running", "signals": []}
        assert proc.wait(timeout=10) == 0
    finally:
        idle.close()
    assert not os.path.exists(path)
    with pytest.raises(errors.Unavailable, match="not running"):
        ShimClient(path).state()


def test_long_socket_paths_work(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    deep.mkdir(parents=True)
    path = str(deep / "s.sock")
    assert len(path) > 108
    code = FAKE.format(repo=REPO, path=path, log=str(tmp_path / "log"))
    proc = subprocess.Popen(
        [sys.executable, "-I", "-S", "-c", code], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
        assert ShimClient(path).state()["status"] == "running"
        ShimClient(path).shutdown()
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        assert proc.stdout is not None
        proc.stdout.close()
