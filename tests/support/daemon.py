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

from reconciler.daemon import api_daemon, api_runtime, api_stacks, app, metrics, server
from reconciler.daemon import events as events_mod
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
        events=events_mod.EventLog(),
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


def stop(proc: subprocess.Popen[bytes], timeout: float = 30.0, log: Path | None = None) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGUSR1)  # the daemon's threads' stacks to its log
            time.sleep(1)
            proc.kill()
            proc.wait()
            error = AssertionError("the daemon did not stop on SIGTERM in time")
            if log is not None:
                error.add_note(log.read_text()[-6000:])
            raise error from None
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


def api(roots: Any) -> Any:
    from reconciler.daemon import client as api_client

    return api_client.ApiClient(socket_path(roots))


def remote(roots: Any) -> Any:
    from reconciler.daemon.remote import RemoteRuntime

    return RemoteRuntime(api(roots))


def wait_for(
    predicate: Any, timeout: float = 20.0, what: str = "condition", tick: float = 0.01
) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(tick)


def events(client_: Any, since: int = 0) -> list[Any]:
    from reconciler.daemon import api_types

    return list(client_.stream("GET", "/v1/events", item=api_types.Event, query={"since": since}))


def wait_event(
    client_: Any, type_: str, since: int = 0, timeout: float = 20.0, where: Any = None
) -> Any:
    def found() -> Any:
        for event in events(client_, since):
            if event.type == type_ and (where is None or where(event)):
                return event
        return None

    return wait_for(found, timeout, f"event {type_}", tick=0.05)


def last_seq(client_: Any) -> int:
    found = events(client_)
    return found[-1].seq if found else 0


def container(rt: Any, stack: str, name: str) -> Any:
    from runtime import errors

    try:
        return rt.get_container(f"{stack}_{name}")
    except errors.NotFound:
        return None


def metric(client_: Any, line_prefix: str) -> float:
    text = b"".join(client_.download("GET", "/metrics")).decode()
    total = 0.0
    for line in text.splitlines():
        if line.startswith(line_prefix):
            total += float(line.rsplit(" ", 1)[1])
    return total


def delete_in_process(roots: Any, stack: str) -> None:
    """Remove a stack with the engine in this test's process (the daemon is stopped)."""
    env = dict(roots.env())
    env["PYRECONCILE_DAEMON"] = "never"
    subprocess.run(
        [*PYRECONCILE, "delete", "--stack", stack, "--volumes", "-q"],
        env=env,
        check=True,
        capture_output=True,
        timeout=120,
    )


def api_types() -> Any:
    from reconciler.daemon import api_types as types

    return types


def diagnose(proc: subprocess.Popen[bytes], log: Path) -> str:
    """The daemon's threads' stacks (SIGUSR1, faulthandler) and the end of its log."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGUSR1)
        time.sleep(1)
    return log.read_text()[-12000:]
