"""Routes of the runtime's other objects: images (and registry logins), volumes, networks.

Names in paths are percent-encoded segments (an image reference has ``/`` and
``:``). Paths in requests (``image import``/``save``/``load``) are read and
written by the daemon, as root: as with Docker's group, access to the socket is
access to the host. Files the daemon writes for a caller belong to the caller
(``SO_PEERCRED``). Containers' routes: :mod:`reconciler.daemon.api_containers`.
"""

from __future__ import annotations

import io
import os
import queue
import threading
import typing
from collections.abc import Iterator
from typing import Any

from reconciler.daemon import api_types as T
from reconciler.daemon import server
from reconciler.daemon.api_containers import name_param, wrote
from reconciler.daemon.app import App
from reconciler.daemon.server import Call, Param, Route
from runtime import client, errors

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
    return app.runtime.get_volume(name_param(call))


def update_volume(app: App, call: Call) -> Any:
    body: T.MetadataUpdate = call.body
    return app.runtime.update_volume(name_param(call), body.labels, body.annotations)


def remove_volume(app: App, call: Call) -> Any:
    app.runtime.remove_volume(name_param(call))


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
    app.runtime.backup_volume(name_param(call), out, stop=bool(call.query.get("stop")))
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
    replace = bool(call.query.get("replace"))
    return app.runtime.restore_volume(name_param(call), reader, replace=replace)


# -- networks ------------------------------------------------------------------


def list_networks(app: App, call: Call) -> Any:
    return app.runtime.list_networks()


def create_network(app: App, call: Call) -> Any:
    return app.runtime.create_network(call.body)


def update_network(app: App, call: Call) -> Any:
    body: T.MetadataUpdate = call.body
    return app.runtime.update_network(name_param(call), body.labels, body.annotations)


def remove_network(app: App, call: Call) -> Any:
    app.runtime.remove_network(name_param(call))


def connect_network(app: App, call: Call) -> Any:
    body: T.ConnectRequest = call.body
    app.runtime.connect_network(
        name_param(call), body.container, aliases=body.aliases, ipv4_address=body.ipv4_address
    )
    wrote(app, body.container)


def disconnect_network(app: App, call: Call) -> Any:
    app.runtime.disconnect_network(name_param(call), call.body.container)
    wrote(app, call.body.container)


def list_ports(app: App, call: Call) -> Any:
    return app.runtime.list_published_ports()


I = "images"  # noqa: E741
V = "volumes"
N = "networks"

ROUTES: list[Route] = [
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
