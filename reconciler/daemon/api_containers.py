"""Routes of containers: their lifecycle, logs and exec sessions.

Each route is one method of ``runtime.client.RuntimeClient`` (the daemon's own
``LocalRuntime``), so :class:`reconciler.daemon.remote.RemoteRuntime` can be the
same Protocol over HTTP and every CLI command works unchanged against a
daemon. A change to a container made through the API is reported to the loop
(``App.on_api_write``), which looks at that container's stack again when it
keeps one in sync. The images', volumes' and networks' routes are in
:mod:`reconciler.daemon.api_objects`; :mod:`reconciler.daemon.api_runtime`
joins both tables.
"""

from __future__ import annotations

import json
import os
import queue
import socket
import threading
from collections.abc import Iterator
from typing import Any

from reconciler.daemon import api_types as T
from reconciler.daemon import codec, server
from reconciler.daemon.app import App
from reconciler.daemon.server import Call, Param, Route
from runtime import client, errors

EXEC_PROTOCOL = "pyreconcile-exec"
LOG_QUERY = (
    Param("tail", int, "only the last N lines"),
    Param("follow", bool, "keep streaming new lines until the container stops"),
    Param("since", str, "only lines since: unix seconds or an RFC 3339 time"),
)


def name_param(call: Call) -> str:
    """The ``{name}`` segment of a route's path (of any kind of object)."""
    return call.params["name"]


def wrote(app: App, name: str) -> None:
    """Tell the loop that a container was changed through the API."""
    app.on_api_write(name)


# -- containers ----------------------------------------------------------------


def list_containers(app: App, call: Call) -> Any:
    return app.runtime.list_containers()


def get_container(app: App, call: Call) -> Any:
    return app.runtime.get_container(name_param(call))


def create_container(app: App, call: Call) -> Any:
    info = app.runtime.create_container(call.body)
    wrote(app, info.name)
    return info


def remove_container(app: App, call: Call) -> Any:
    app.runtime.remove_container(name_param(call), force=bool(call.query.get("force")))
    wrote(app, name_param(call))


def start_container(app: App, call: Call) -> Any:
    info = app.runtime.start_container(name_param(call))
    wrote(app, info.name)
    return info


def stop_container(app: App, call: Call) -> Any:
    body: T.StopRequest = call.body
    info = app.runtime.stop_container(name_param(call), body.timeout, operator=body.operator)
    wrote(app, info.name)
    return info


def restart_container(app: App, call: Call) -> Any:
    info = app.runtime.restart_container(name_param(call), call.body.timeout)
    wrote(app, info.name)
    return info


def kill_container(app: App, call: Call) -> Any:
    info = app.runtime.kill_container(name_param(call), call.body.signal)
    wrote(app, info.name)
    return info


def wait_container(app: App, call: Call) -> Any:
    return app.runtime.wait_container(name_param(call), call.body.timeout)


def update_container(app: App, call: Call) -> Any:
    info = app.runtime.update_container(name_param(call), call.body)
    wrote(app, info.name)
    return info


def rename_container(app: App, call: Call) -> Any:
    info = app.runtime.rename_container(name_param(call), call.body.new_name)
    wrote(app, name_param(call))
    wrote(app, info.name)
    return info


def container_logs(app: App, call: Call) -> Any:
    since_text = call.query.get("since")
    since: float | str | None = None
    if since_text is not None:
        try:
            since = float(since_text)
        except ValueError:
            since = since_text
    entries = app.runtime.container_logs(
        name_param(call),
        tail=call.query.get("tail"),
        follow=bool(call.query.get("follow")),
        since=since,
    )
    if not call.query.get("follow"):
        return server.Stream(iter(list(entries)))
    return server.Stream(_with_ticks(entries))


def _with_ticks(items: Iterator[Any]) -> Iterator[Any]:
    """Items from a blocking iterator, with ``None`` ticks while it is quiet (so that
    the server notices a client that went away from a quiet ``logs -f``)."""
    box: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=256)
    stop = threading.Event()

    def pump() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        box.put(("item", item), timeout=server.TICK)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            box.put(("end", None))
        except BaseException as exc:
            box.put(("error", exc))
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                try:
                    close()
                except Exception:
                    pass

    threading.Thread(target=pump, name="stream-pump", daemon=True).start()
    try:
        while True:
            try:
                kind, value = box.get(timeout=server.TICK)
            except queue.Empty:
                yield None
                continue
            if kind == "end":
                return
            if kind == "error":
                raise value
            yield value
    finally:
        stop.set()


def exec_container(app: App, call: Call) -> Any:
    """Upgrade to the exec protocol: the client passes its stdin/stdout/stderr
    (``SCM_RIGHTS``); the daemon answers :class:`ExecStarted` (with the pty's
    master as an fd when ``tty``), then serves :class:`ExecControl` lines
    (``wait``, ``resize``) with :class:`ExecReply` lines. The process's stdio are
    the caller's own descriptors, so nothing is copied through the daemon."""
    name = name_param(call)
    config: client.ExecConfig = call.body
    app.runtime.get_container(name)  # 404 before the upgrade
    sock = call.handler.switch_protocols(EXEC_PROTOCOL)
    _, fds, _, _ = socket.recv_fds(sock, 16, 3)
    if len(fds) != 3:
        for fd in fds:
            os.close(fd)
        _send_line(
            sock, T.ExecReply(error=T.ErrorBody("exec: expected 3 descriptors")), T.ExecReply
        )
        return None
    try:
        session = app.runtime.exec_container(name, config, stdio=(fds[0], fds[1], fds[2]))
    except errors.RuntimeError_ as exc:
        _send_line(sock, T.ExecReply(error=server.error_body(exc)), T.ExecReply)
        return None
    finally:
        for fd in fds:
            os.close(fd)
    try:
        started = T.ExecStarted(
            exec_id=session.exec_id, pid=session.pid, tty=session.pty is not None
        )
        line = json.dumps(codec.encode(started, T.ExecStarted)).encode() + b"\n"
        if session.pty is not None:
            socket.send_fds(sock, [line], [session.pty])
        else:
            sock.sendall(line)
        _serve_exec(sock, session, call.handler)
    finally:
        session.close()
    return None


def _serve_exec(sock: socket.socket, session: client.ExecSession, handler: server.Handler) -> None:
    reader = sock.makefile("rb")
    while True:
        raw = reader.readline(4096)
        if not raw:
            return  # the client is gone: let go of the process, as in-process would
        try:
            control = codec.decode(json.loads(raw), T.ExecControl)
        except (ValueError, codec.CodecError) as exc:
            _send_line(
                sock, T.ExecReply(error=T.ErrorBody(f"exec: bad control line: {exc}")), T.ExecReply
            )
            continue
        if control.op == "resize":
            try:
                session.resize(control.rows, control.cols)
                _send_line(sock, T.ExecReply(), T.ExecReply)
            except errors.RuntimeError_ as exc:
                _send_line(sock, T.ExecReply(error=server.error_body(exc)), T.ExecReply)
            continue
        reply = _wait(session, control.timeout, handler)
        if reply is None:
            return
        _send_line(sock, reply, T.ExecReply)


def _wait(
    session: client.ExecSession, timeout: float | None, handler: server.Handler
) -> T.ExecReply | None:
    import time

    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        step = 0.5 if deadline is None else max(0.0, min(0.5, deadline - time.monotonic()))
        try:
            return T.ExecReply(exit_code=session.wait(step))
        except errors.Unavailable as exc:
            if deadline is not None and time.monotonic() >= deadline:
                return T.ExecReply(error=server.error_body(exc))
        except errors.RuntimeError_ as exc:
            return T.ExecReply(error=server.error_body(exc))
        if handler.client_gone():
            return None


def _send_line(sock: socket.socket, value: Any, tp: Any) -> None:
    sock.sendall(json.dumps(codec.encode(value, tp)).encode() + b"\n")


C = "containers"
CI = client.ContainerInfo

ROUTES: list[Route] = [
    Route("GET", "/v1/containers", list_containers, "List containers", C, returns=list[CI]),
    Route(
        "POST",
        "/v1/containers",
        create_container,
        "Create a container",
        C,
        body=client.ContainerConfig,
        returns=CI,
        status=201,
    ),
    Route("GET", "/v1/containers/{name}", get_container, "Inspect a container", C, returns=CI),
    Route(
        "DELETE",
        "/v1/containers/{name}",
        remove_container,
        "Remove a container",
        C,
        query=(Param("force", bool, "stop it first"),),
    ),
    Route(
        "POST",
        "/v1/containers/{name}/start",
        start_container,
        "Start a container (clears an operator stop)",
        C,
        returns=CI,
    ),
    Route(
        "POST",
        "/v1/containers/{name}/stop",
        stop_container,
        "Stop a container (operator: self-heal leaves it stopped)",
        C,
        body=T.StopRequest,
        returns=CI,
    ),
    Route(
        "POST",
        "/v1/containers/{name}/restart",
        restart_container,
        "Restart a container",
        C,
        body=T.TimeoutRequest,
        returns=CI,
    ),
    Route(
        "POST",
        "/v1/containers/{name}/kill",
        kill_container,
        "Send a signal",
        C,
        body=T.KillRequest,
        returns=CI,
    ),
    Route(
        "POST",
        "/v1/containers/{name}/wait",
        wait_container,
        "Wait until a container stops",
        C,
        body=T.TimeoutRequest,
        returns=CI,
    ),
    Route(
        "POST",
        "/v1/containers/{name}/update",
        update_container,
        "Change labels, restart policy or resources in place",
        C,
        body=client.ContainerUpdate,
        returns=CI,
    ),
    Route(
        "POST",
        "/v1/containers/{name}/rename",
        rename_container,
        "Rename a container",
        C,
        body=T.RenameRequest,
        returns=CI,
    ),
    Route(
        "GET",
        "/v1/containers/{name}/logs",
        container_logs,
        "A container's output, as JSON lines",
        C,
        stream=client.LogEntry,
        query=LOG_QUERY,
    ),
    Route(
        "POST",
        "/v1/containers/{name}/exec",
        exec_container,
        "Run a process in a running container (upgrades to pyreconcile-exec)",
        C,
        body=client.ExecConfig,
        upgrade=EXEC_PROTOCOL,
    ),
]
