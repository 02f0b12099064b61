"""Daemons for tests: one in a thread over any runtime (the fake), or the real process.

``serve(runtime, path)`` runs the API server in this process over ``runtime``
(no loop), for unit tests of the API and the codec. ``start(roots, …)`` runs
``pyreconcile daemon`` with the roots' environment and waits until its socket
answers; ``stop`` sends SIGTERM (the graceful path) and waits, and ``kill``
sends SIGKILL. Only the pid started here is ever signalled.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from reconciler.daemon import api_daemon, api_runtime, api_stacks, app, events, metrics, server
from runtime import client

PYRECONCILE = [sys.executable, "-m", "reconciler.cli"]


@contextlib.contextmanager
def serve(
    runtime: client.RuntimeClient, path: str, max_body: int = server.MAX_BODY
) -> Iterator[app.App]:
    application = app.App(
        runtime=runtime,
        root=os.path.dirname(path),
        run_root=os.path.dirname(path),
        events=events.EventLog(),
        metrics=metrics.Metrics(),
    )
    routes = [*api_daemon.ROUTES, *api_stacks.ROUTES, *api_runtime.ROUTES]
    server.prepare_socket(path, None)
    httpd = server.Server(path, application, routes, max_body)
    server.bind(httpd, path, None)
    thread = threading.Thread(
        target=httpd.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True
    )
    thread.start()
    try:
        yield application
    finally:
        httpd.shutdown()
        httpd.server_close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


def socket_path(roots: Any) -> str:
    return str(Path(roots.run_root) / "pyreconcile.sock")


def answers(path: str) -> bool:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(path)
        return True
    except OSError:
        return False
    finally:
        sock.close()


def start(
    roots: Any,
    *args: str,
    env: dict[str, str] | None = None,
    log: Path | None = None,
    timeout: float = 30.0,
) -> subprocess.Popen[bytes]:
    environment = dict(env if env is not None else roots.env())
    environment.pop("PYRECONCILE_DAEMON", None)
    out = open(log, "ab") if log is not None else subprocess.DEVNULL  # noqa: SIM115
    proc = subprocess.Popen(
        [*PYRECONCILE, "daemon", *args], env=environment, stdout=out, stderr=out
    )
    if log is not None:
        out.close()  # type: ignore[union-attr]
    path = socket_path(roots)
    deadline = time.monotonic() + timeout
    while not answers(path):
        if proc.poll() is not None:
            detail = log.read_text()[-3000:] if log is not None else ""
            raise AssertionError(f"the daemon exited with {proc.returncode}\n{detail}")
        if time.monotonic() > deadline:
            kill(proc)
            raise AssertionError("the daemon's socket did not answer in time")
        time.sleep(0.02)
    return proc


def stop(proc: subprocess.Popen[bytes], timeout: float = 30.0) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise AssertionError("the daemon did not stop on SIGTERM in time") from None
    return proc.returncode


def kill(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def unix_session(path: str) -> Any:
    """A ``requests.Session`` whose every URL goes to the unix socket at ``path``
    (for schemathesis, whose cases call through requests)."""
    import requests
    import urllib3

    class Connection(urllib3.connection.HTTPConnection):
        def _new_conn(self) -> socket.socket:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(30)
            sock.connect(path)
            return sock

    class Pool(urllib3.connectionpool.HTTPConnectionPool):
        ConnectionCls = Connection

    class Adapter(requests.adapters.HTTPAdapter):
        def get_connection_with_tls_context(
            self, request: Any, verify: Any, proxies: Any = None, cert: Any = None
        ) -> Any:
            return Pool("localhost")

    session = requests.Session()
    session.mount("http://", Adapter())
    return session
