"""Routes of the runtime's objects: containers, images, volumes, networks.

Each route is one method of ``runtime.client.RuntimeClient`` (the daemon's own
``LocalRuntime``), so :class:`reconciler.daemon.remote.RemoteRuntime` can be the
same Protocol over HTTP and every CLI command works unchanged against a
daemon. Names in paths are percent-encoded segments (an image reference has
``/`` and ``:``). A change to a container made through the API is reported to
the loop (``App.on_api_write``), which looks at that container's stack again
when it keeps one in sync.

Paths in requests (``image import``/``save``/``load``) are read and written by
the daemon, as root: as with Docker's group, access to the socket is access
to the host. Files the daemon writes for a caller belong to the caller
(``SO_PEERCRED``).
"""

from __future__ import annotations

import io
import json
import os
import queue
import socket
import threading
import typing
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


def _name(call: Call) -> str:
    return call.params["name"]


def _wrote(app: App, name: str) -> None:
    app.on_api_write(name)


# -- containers ----------------------------------------------------------------


def list_containers(app: App, call: Call) -> Any:
    return app.runtime.list_containers()


def get_container(app: App, call: Call) -> Any:
    return app.runtime.get_container(_name(call))


def create_container(app: App, call: Call) -> Any:
    info = app.runtime.create_container(call.body)
    _wrote(app, info.name)
    return info


def remove_container(app: App, call: Call) -> Any:
    app.runtime.remove_container(_name(call), force=bool(call.query.get("force")))
    _wrote(app, _name(call))


def start_container(app: App, call: Call) -> Any:
    info = app.runtime.start_container(_name(call))
    _wrote(app, info.name)
    return info


def stop_container(app: App, call: Call) -> Any:
    body: T.StopRequest = call.body
    info = app.runtime.stop_container(_name(call), body.timeout, operator=body.operator)
    _wrote(app, info.name)
    return info


def restart_container(app: App, call: Call) -> Any:
    info = app.runtime.restart_container(_name(call), call.body.timeout)
    _wrote(app, info.name)
    return info


def kill_container(app: App, call: Call) -> Any:
    info = app.runtime.kill_container(_name(call), call.body.signal)
    _wrote(app, info.name)
    return info


def wait_container(app: App, call: Call) -> Any:
    return app.runtime.wait_container(_name(call), call.body.timeout)


def update_container(app: App, call: Call) -> Any:
    info = app.runtime.update_container(_name(call), call.body)
    _wrote(app, info.name)
    return info


def rename_container(app: App, call: Call) -> Any:
    info = app.runtime.rename_container(_name(call), call.body.new_name)
    _wrote(app, _name(call))
    _wrote(app, info.name)
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
        _name(call),
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
    name = _name(call)
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


# -- images --------------------------------------------------------------------


def list_images(app: App, call: Call) -> Any:
    return app.runtime.list_images()


def get_image(app: App, call: Call) -> Any:
    return app.runtime.get_image(call.params["ref"])


def remove_image(app: App, call: Call) -> Any:
    app.runtime.remove_image(call.params["ref"])


def _progress_stream(work: Any) -> server.Stream:
    """Run ``work(progress)`` in a thread; stream its progress events, then its result."""
    lines: queue.Queue[T.ImageProgressLine | None] = queue.Queue()

    def progress(event: client.ProgressEvent) -> None:
        lines.put(T.ImageProgressLine(event="progress", progress=event))

    def run() -> None:
        try:
            lines.put(work(progress))
        except errors.RuntimeError_ as exc:
            lines.put(T.ImageProgressLine(event="error", error=server.error_body(exc)))
        except Exception as exc:  # a bug: said, not hidden
            lines.put(
                T.ImageProgressLine(event="error", error=T.ErrorBody(f"internal error: {exc}"))
            )
        lines.put(None)

    threading.Thread(target=run, name="image-transfer", daemon=True).start()

    def items() -> Iterator[T.ImageProgressLine]:
        while True:
            line = lines.get()
            if line is None:
                return
            yield line

    return server.Stream(items())


def pull_image(app: App, call: Call) -> Any:
    body: T.PullRequest = call.body
    return _progress_stream(
        lambda progress: T.ImageProgressLine(
            event="result",
            image=app.runtime.pull_image(body.reference, platform=body.platform, progress=progress),
        )
    )


def push_image(app: App, call: Call) -> Any:
    body: T.PushRequest = call.body
    return _progress_stream(
        lambda progress: T.ImageProgressLine(
            event="result",
            digest=app.runtime.push_image(body.ref, body.destination, progress=progress),
        )
    )


def resolve_remote(app: App, call: Call) -> Any:
    return app.runtime.resolve_remote(call.body.reference, platform=call.body.platform)


def tag_image(app: App, call: Call) -> Any:
    return app.runtime.tag_image(call.body.source, call.body.target)


def import_image(app: App, call: Call) -> Any:
    body: T.ImportRequest = call.body
    _absolute(body.path)
    return app.runtime.import_image(body.path, body.reference, dict(body.annotations))


def prune_images(app: App, call: Call) -> Any:
    return app.runtime.prune_images(all_unused=call.body.all_unused)


def save_images(app: App, call: Call) -> Any:
    body: T.SaveRequest = call.body
    _absolute(body.path)
    if not body.refs:
        raise errors.InvalidSpec("name at least one image to save")
    app.runtime.save_images(list(body.refs), body.path, format=body.format)
    _give_to(body.path, call.peer)


def load_images(app: App, call: Call) -> Any:
    _absolute(call.body.path)
    return app.runtime.load_images(call.body.path)


def login(app: App, call: Call) -> Any:
    body: T.LoginRequest = call.body
    app.runtime.login(body.registry, body.username, body.password)


def logout(app: App, call: Call) -> Any:
    return T.Removed(removed=app.runtime.logout(call.body.registry))


def _absolute(path: str) -> None:
    if not os.path.isabs(path):
        raise errors.InvalidSpec(
            f"path {path!r} must be absolute (the daemon has no working directory of yours)"
        )


def _give_to(path: str, peer: server.Peer) -> None:
    """Files written for a caller belong to the caller."""
    if peer.uid <= 0:
        return
    for top, dirs, files in os.walk(path) if os.path.isdir(path) else [("", [], [path])]:
        for entry in [
            top,
            *[os.path.join(top, d) for d in dirs],
            *[os.path.join(top, f) for f in files],
        ]:
            if entry:
                try:
                    os.lchown(entry, peer.uid, peer.gid)
                except OSError:
                    pass


# -- volumes -------------------------------------------------------------------


def list_volumes(app: App, call: Call) -> Any:
    return app.runtime.list_volumes()


def create_volume(app: App, call: Call) -> Any:
    return app.runtime.create_volume(call.body)


def get_volume(app: App, call: Call) -> Any:
    return app.runtime.get_volume(_name(call))


def update_volume(app: App, call: Call) -> Any:
    body: T.MetadataUpdate = call.body
    return app.runtime.update_volume(_name(call), body.labels, body.annotations)


def remove_volume(app: App, call: Call) -> Any:
    app.runtime.remove_volume(_name(call))


def prune_volumes(app: App, call: Call) -> Any:
    return app.runtime.prune_volumes(all_unused=call.body.all_unused)


class _ChunkWriter(io.RawIOBase):
    """A writable file whose writes become chunks of the answer (sent lazily, so an
    error before the first byte is still a JSON error answer)."""

    def __init__(self, handler: server.Handler, content_type: str) -> None:
        self.handler = handler
        self.content_type = content_type
        self.started = False

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        view = bytes(data)
        if not view:
            return 0
        if not self.started:
            self.handler._start_chunked(self.content_type)
            self.started = True
        self.handler._chunk(view)
        return len(view)


def backup_volume(app: App, call: Call) -> Any:
    writer = _ChunkWriter(call.handler, "application/x-tar")
    out = typing.cast(typing.BinaryIO, writer)
    app.runtime.backup_volume(_name(call), out, stop=bool(call.query.get("stop")))
    if not writer.started:
        call.handler._start_chunked("application/x-tar")
    call.handler._end_chunks()
    return server.DONE


class _BodyReader(io.RawIOBase):
    def __init__(self, chunks: Iterator[bytes]) -> None:
        self.chunks = chunks
        self.rest = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self.rest:
            try:
                self.rest = next(self.chunks)
            except StopIteration:
                return 0
        n = min(len(buffer), len(self.rest))
        buffer[:n] = self.rest[:n]
        self.rest = self.rest[n:]
        return n


def restore_volume(app: App, call: Call) -> Any:
    reader = io.BufferedReader(_BodyReader(call.handler.read_raw_body()))
    return app.runtime.restore_volume(_name(call), reader, replace=bool(call.query.get("replace")))


# -- networks ------------------------------------------------------------------


def list_networks(app: App, call: Call) -> Any:
    return app.runtime.list_networks()


def create_network(app: App, call: Call) -> Any:
    return app.runtime.create_network(call.body)


def update_network(app: App, call: Call) -> Any:
    body: T.MetadataUpdate = call.body
    return app.runtime.update_network(_name(call), body.labels, body.annotations)


def remove_network(app: App, call: Call) -> Any:
    app.runtime.remove_network(_name(call))


def connect_network(app: App, call: Call) -> Any:
    body: T.ConnectRequest = call.body
    app.runtime.connect_network(
        _name(call), body.container, aliases=body.aliases, ipv4_address=body.ipv4_address
    )
    _wrote(app, body.container)


def disconnect_network(app: App, call: Call) -> Any:
    app.runtime.disconnect_network(_name(call), call.body.container)
    _wrote(app, call.body.container)


def list_ports(app: App, call: Call) -> Any:
    return app.runtime.list_published_ports()


C = "containers"
I = "images"  # noqa: E741
V = "volumes"
N = "networks"
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
    Route("GET", "/v1/images", list_images, "List images", I, returns=list[client.ImageInfo]),
    Route("GET", "/v1/images/{ref}", get_image, "Inspect an image", I, returns=client.ImageInfo),
    Route("DELETE", "/v1/images/{ref}", remove_image, "Remove an image reference", I),
    Route(
        "POST",
        "/v1/images/pull",
        pull_image,
        "Pull an image, streaming progress",
        I,
        body=T.PullRequest,
        stream=T.ImageProgressLine,
    ),
    Route(
        "POST",
        "/v1/images/push",
        push_image,
        "Push an image, streaming progress",
        I,
        body=T.PushRequest,
        stream=T.ImageProgressLine,
    ),
    Route(
        "POST",
        "/v1/images/resolve",
        resolve_remote,
        "What a tag names in its registry",
        I,
        body=T.ResolveRequest,
        returns=client.RemoteImage,
    ),
    Route(
        "POST",
        "/v1/images/tag",
        tag_image,
        "Name an image",
        I,
        body=T.TagRequest,
        returns=client.ImageInfo,
    ),
    Route(
        "POST",
        "/v1/images/import",
        import_image,
        "Import a file on the host",
        I,
        body=T.ImportRequest,
        returns=client.ImageInfo,
    ),
    Route(
        "POST",
        "/v1/images/prune",
        prune_images,
        "Delete unused images",
        I,
        body=T.PruneRequest,
        returns=list[str],
    ),
    Route(
        "POST",
        "/v1/images/save",
        save_images,
        "Write images to an archive on the host",
        I,
        body=T.SaveRequest,
    ),
    Route(
        "POST",
        "/v1/images/load",
        load_images,
        "Load an archive on the host",
        I,
        body=T.PathRequest,
        returns=list[client.ImageInfo],
    ),
    Route("POST", "/v1/auth/login", login, "Store registry credentials", I, body=T.LoginRequest),
    Route(
        "POST",
        "/v1/auth/logout",
        logout,
        "Forget registry credentials",
        I,
        body=T.RegistryRequest,
        returns=T.Removed,
    ),
    Route("GET", "/v1/volumes", list_volumes, "List volumes", V, returns=list[client.VolumeInfo]),
    Route(
        "POST",
        "/v1/volumes",
        create_volume,
        "Create a volume",
        V,
        body=client.VolumeConfig,
        returns=client.VolumeInfo,
        status=201,
    ),
    Route(
        "POST",
        "/v1/volumes/prune",
        prune_volumes,
        "Delete unused volumes",
        V,
        body=T.PruneRequest,
        returns=list[str],
    ),
    Route(
        "GET", "/v1/volumes/{name}", get_volume, "Inspect a volume", V, returns=client.VolumeInfo
    ),
    Route(
        "PATCH",
        "/v1/volumes/{name}",
        update_volume,
        "Set labels and annotations",
        V,
        body=T.MetadataUpdate,
        returns=client.VolumeInfo,
    ),
    Route("DELETE", "/v1/volumes/{name}", remove_volume, "Remove a volume", V),
    Route(
        "GET",
        "/v1/volumes/{name}/archive",
        backup_volume,
        "The volume's content as a tar",
        V,
        query=(Param("stop", bool, "stop its containers for the copy"),),
        raw_answer="application/x-tar",
    ),
    Route(
        "PUT",
        "/v1/volumes/{name}/archive",
        restore_volume,
        "Fill the volume from a tar",
        V,
        query=(Param("replace", bool, "replace data it holds"),),
        raw_body="application/x-tar",
        returns=client.VolumeInfo,
    ),
    Route(
        "GET", "/v1/networks", list_networks, "List networks", N, returns=list[client.NetworkInfo]
    ),
    Route(
        "POST",
        "/v1/networks",
        create_network,
        "Create a network",
        N,
        body=client.NetworkConfig,
        returns=client.NetworkInfo,
        status=201,
    ),
    Route(
        "PATCH",
        "/v1/networks/{name}",
        update_network,
        "Set labels and annotations",
        N,
        body=T.MetadataUpdate,
        returns=client.NetworkInfo,
    ),
    Route("DELETE", "/v1/networks/{name}", remove_network, "Remove a network", N),
    Route(
        "POST",
        "/v1/networks/{name}/connect",
        connect_network,
        "Connect a container",
        N,
        body=T.ConnectRequest,
    ),
    Route(
        "POST",
        "/v1/networks/{name}/disconnect",
        disconnect_network,
        "Disconnect a container",
        N,
        body=T.DisconnectRequest,
    ),
    Route(
        "GET",
        "/v1/ports",
        list_ports,
        "Published ports as bound",
        N,
        returns=list[client.PortBinding],
    ),
]
