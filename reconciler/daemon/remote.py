"""``RemoteRuntime``: the ``RuntimeClient`` Protocol over the daemon's API.

The CLI's commands take ``context.runtime`` and do not know whether it is the
engine in this process or the daemon's: every command (ps, logs -f, exec,
stop/start/restart/kill, inspect, image …, volume …, network …) works the same
both ways. Records come back as the same frozen dataclasses (the codec decodes
them), errors as the same categories with the same messages.

``exec`` passes this process's stdin, stdout and stderr to the daemon over the
unix socket (``SCM_RIGHTS``), so the process in the container writes to the
caller's terminal directly; with a TTY the pty's master comes back the same
way and ``reconciler.cli.exec_tty`` pumps it as it does in-process.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, BinaryIO

from reconciler.daemon import api_runtime, codec
from reconciler.daemon import api_types as T
from reconciler.daemon.client import ApiClient, quote, raise_for
from runtime import client, errors

C = client


class RemoteExecSession:
    """An exec started by the daemon: control lines on the upgraded connection."""

    def __init__(self, sock: socket.socket, started: T.ExecStarted, pty: int | None) -> None:
        self._sock = sock
        self._buffer = b""
        self.exec_id = started.exec_id
        self.pid = started.pid
        self.pty = pty
        self._code: int | None = None

    def _request(self, control: T.ExecControl) -> T.ExecReply:
        self._sock.sendall(json.dumps(codec.encode(control, T.ExecControl)).encode() + b"\n")
        while b"\n" not in self._buffer:
            data = self._sock.recv(65536)
            if not data:
                raise errors.Unavailable(f"exec {self.exec_id}: the daemon closed the connection")
            self._buffer += data
        line, _, self._buffer = self._buffer.partition(b"\n")
        reply: T.ExecReply = codec.decode(json.loads(line), T.ExecReply)
        if reply.error is not None:
            raise_for(reply.error)
        return reply

    def wait(self, timeout: float | None = None) -> int:
        if self._code is None:
            reply = self._request(T.ExecControl(op="wait", timeout=timeout))
            if reply.exit_code is None:
                raise errors.Terminal(f"exec {self.exec_id}: the daemon sent no exit code")
            self._code = reply.exit_code
        return self._code

    def resize(self, rows: int, cols: int) -> None:
        self._request(T.ExecControl(op="resize", rows=rows, cols=cols))

    def close(self) -> None:
        self._sock.close()
        if self.pty is not None:
            os.close(self.pty)
            self.pty = None


class RemoteRuntime:
    """Every ``RuntimeClient`` method as one request to the daemon."""

    def __init__(self, api: ApiClient) -> None:
        self.api = api

    def close(self) -> None:
        self.api.close()

    # images
    def list_images(self) -> list[client.ImageInfo]:
        return self.api.call("GET", "/v1/images", returns=list[C.ImageInfo])

    def get_image(self, ref: str) -> client.ImageInfo:
        return self.api.call("GET", f"/v1/images/{quote(ref)}", returns=C.ImageInfo)

    def import_image(
        self, path: str, reference: str | None = None, annotations: Mapping[str, str] | None = None
    ) -> client.ImageInfo:
        body = T.ImportRequest(os.path.abspath(path), reference, client.frozen_map(annotations))
        return self.api.call(
            "POST", "/v1/images/import", body, body_type=T.ImportRequest, returns=C.ImageInfo
        )

    def _transfer(
        self, path: str, body: Any, body_type: Any, progress: client.ProgressCallback | None
    ) -> T.ImageProgressLine:
        result = None
        for line in self.api.stream(
            "POST", path, body, body_type=body_type, item=T.ImageProgressLine
        ):
            if line.event == "progress" and line.progress is not None and progress is not None:
                progress(line.progress)
            elif line.event == "error" and line.error is not None:
                raise_for(line.error)
            elif line.event == "result":
                result = line
        if not isinstance(result, T.ImageProgressLine):
            raise errors.Unavailable("the daemon ended the transfer without a result")
        return result

    def pull_image(
        self,
        reference: str,
        *,
        platform: str | None = None,
        progress: client.ProgressCallback | None = None,
    ) -> client.ImageInfo:
        line = self._transfer(
            "/v1/images/pull", T.PullRequest(reference, platform), T.PullRequest, progress
        )
        assert line.image is not None
        return line.image

    def resolve_remote(self, reference: str, *, platform: str | None = None) -> client.RemoteImage:
        return self.api.call(
            "POST",
            "/v1/images/resolve",
            T.ResolveRequest(reference, platform),
            body_type=T.ResolveRequest,
            returns=C.RemoteImage,
        )

    def push_image(
        self,
        ref: str,
        destination: str | None = None,
        *,
        progress: client.ProgressCallback | None = None,
    ) -> str:
        line = self._transfer(
            "/v1/images/push", T.PushRequest(ref, destination), T.PushRequest, progress
        )
        assert line.digest is not None
        return line.digest

    def tag_image(self, source: str, target: str) -> client.ImageInfo:
        return self.api.call(
            "POST",
            "/v1/images/tag",
            T.TagRequest(source, target),
            body_type=T.TagRequest,
            returns=C.ImageInfo,
        )

    def remove_image(self, ref: str) -> None:
        self.api.call("DELETE", f"/v1/images/{quote(ref)}")

    def prune_images(self, *, all_unused: bool = False) -> list[str]:
        return self.api.call(
            "POST",
            "/v1/images/prune",
            T.PruneRequest(all_unused),
            body_type=T.PruneRequest,
            returns=list[str],
        )

    def save_images(
        self, refs: Sequence[str], path: str, *, format: client.ArchiveFormat = "docker-archive"
    ) -> None:
        body = T.SaveRequest(tuple(refs), os.path.abspath(path), format)
        self.api.call("POST", "/v1/images/save", body, body_type=T.SaveRequest)

    def load_images(self, path: str) -> list[client.ImageInfo]:
        return self.api.call(
            "POST",
            "/v1/images/load",
            T.PathRequest(os.path.abspath(path)),
            body_type=T.PathRequest,
            returns=list[C.ImageInfo],
        )

    def login(self, registry: str, username: str, password: str) -> None:
        self.api.call(
            "POST",
            "/v1/auth/login",
            T.LoginRequest(registry, username, password),
            body_type=T.LoginRequest,
        )

    def logout(self, registry: str) -> bool:
        removed: T.Removed = self.api.call(
            "POST",
            "/v1/auth/logout",
            T.RegistryRequest(registry),
            body_type=T.RegistryRequest,
            returns=T.Removed,
        )
        return removed.removed

    # volumes
    def list_volumes(self) -> list[client.VolumeInfo]:
        return self.api.call("GET", "/v1/volumes", returns=list[C.VolumeInfo])

    def create_volume(self, config: client.VolumeConfig) -> client.VolumeInfo:
        return self.api.call(
            "POST", "/v1/volumes", config, body_type=C.VolumeConfig, returns=C.VolumeInfo
        )

    def update_volume(
        self,
        name: str,
        labels: tuple[tuple[str, str], ...],
        annotations: tuple[tuple[str, str], ...],
    ) -> client.VolumeInfo:
        body = T.MetadataUpdate(labels, annotations)
        return self.api.call(
            "PATCH",
            f"/v1/volumes/{quote(name)}",
            body,
            body_type=T.MetadataUpdate,
            returns=C.VolumeInfo,
        )

    def remove_volume(self, name: str) -> None:
        self.api.call("DELETE", f"/v1/volumes/{quote(name)}")

    def get_volume(self, name: str) -> client.VolumeInfo:
        return self.api.call("GET", f"/v1/volumes/{quote(name)}", returns=C.VolumeInfo)

    def prune_volumes(self, *, all_unused: bool = False) -> list[str]:
        return self.api.call(
            "POST",
            "/v1/volumes/prune",
            T.PruneRequest(all_unused),
            body_type=T.PruneRequest,
            returns=list[str],
        )

    def backup_volume(self, name: str, out: BinaryIO, *, stop: bool = False) -> None:
        for data in self.api.download("GET", f"/v1/volumes/{quote(name)}/archive", {"stop": stop}):
            out.write(data)

    def restore_volume(
        self, name: str, archive: BinaryIO, *, replace: bool = False
    ) -> client.VolumeInfo:
        info: client.VolumeInfo = self.api.upload(
            "PUT",
            f"/v1/volumes/{quote(name)}/archive",
            archive,
            returns=C.VolumeInfo,
            query={"replace": replace},
        )
        return info

    # networks
    def list_networks(self) -> list[client.NetworkInfo]:
        return self.api.call("GET", "/v1/networks", returns=list[C.NetworkInfo])

    def create_network(self, config: client.NetworkConfig) -> client.NetworkInfo:
        return self.api.call(
            "POST", "/v1/networks", config, body_type=C.NetworkConfig, returns=C.NetworkInfo
        )

    def update_network(
        self,
        name: str,
        labels: tuple[tuple[str, str], ...],
        annotations: tuple[tuple[str, str], ...],
    ) -> client.NetworkInfo:
        body = T.MetadataUpdate(labels, annotations)
        return self.api.call(
            "PATCH",
            f"/v1/networks/{quote(name)}",
            body,
            body_type=T.MetadataUpdate,
            returns=C.NetworkInfo,
        )

    def remove_network(self, name: str) -> None:
        self.api.call("DELETE", f"/v1/networks/{quote(name)}")

    def connect_network(
        self,
        network: str,
        container: str,
        *,
        aliases: tuple[str, ...] = (),
        ipv4_address: str | None = None,
    ) -> None:
        body = T.ConnectRequest(container, tuple(aliases), ipv4_address)
        self.api.call(
            "POST", f"/v1/networks/{quote(network)}/connect", body, body_type=T.ConnectRequest
        )

    def disconnect_network(self, network: str, container: str) -> None:
        self.api.call(
            "POST",
            f"/v1/networks/{quote(network)}/disconnect",
            T.DisconnectRequest(container),
            body_type=T.DisconnectRequest,
        )

    def list_published_ports(self) -> list[client.PortBinding]:
        return self.api.call("GET", "/v1/ports", returns=list[C.PortBinding])

    # containers
    def list_containers(self) -> list[client.ContainerInfo]:
        return self.api.call("GET", "/v1/containers", returns=list[C.ContainerInfo])

    def get_container(self, name_or_id: str) -> client.ContainerInfo:
        return self.api.call("GET", f"/v1/containers/{quote(name_or_id)}", returns=C.ContainerInfo)

    def create_container(self, config: client.ContainerConfig) -> client.ContainerInfo:
        return self.api.call(
            "POST", "/v1/containers", config, body_type=C.ContainerConfig, returns=C.ContainerInfo
        )

    def _verb(
        self, name: str, verb: str, body: Any = None, body_type: Any = Any
    ) -> client.ContainerInfo:
        return self.api.call(
            "POST",
            f"/v1/containers/{quote(name)}/{verb}",
            body,
            body_type=body_type,
            returns=C.ContainerInfo,
        )

    def start_container(self, name: str) -> client.ContainerInfo:
        return self._verb(name, "start")

    def stop_container(
        self, name: str, timeout: float | None = None, *, operator: bool = False
    ) -> client.ContainerInfo:
        return self._verb(name, "stop", T.StopRequest(timeout, operator), T.StopRequest)

    def wait_container(self, name: str, timeout: float | None = None) -> client.ContainerInfo:
        return self._verb(name, "wait", T.TimeoutRequest(timeout), T.TimeoutRequest)

    def update_container(self, name: str, update: client.ContainerUpdate) -> client.ContainerInfo:
        return self._verb(name, "update", update, C.ContainerUpdate)

    def remove_container(self, name: str, *, force: bool = False) -> None:
        self.api.call("DELETE", f"/v1/containers/{quote(name)}", query={"force": force})

    def rename_container(self, name: str, new_name: str) -> client.ContainerInfo:
        return self._verb(name, "rename", T.RenameRequest(new_name), T.RenameRequest)

    def container_logs(
        self,
        name: str,
        *,
        tail: int | None = None,
        follow: bool = False,
        since: float | str | None = None,
    ) -> Iterator[client.LogEntry]:
        # a stream of its own: the caller may ask other things while it follows
        api = self.api.fresh() if follow else self.api
        query = {"tail": tail, "follow": follow, "since": since}
        return api.stream("GET", f"/v1/containers/{quote(name)}/logs", item=C.LogEntry, query=query)

    def kill_container(self, name: str, signal: str = "SIGKILL") -> client.ContainerInfo:
        return self._verb(name, "kill", T.KillRequest(signal), T.KillRequest)

    def restart_container(self, name: str, timeout: float | None = None) -> client.ContainerInfo:
        return self._verb(name, "restart", T.TimeoutRequest(timeout), T.TimeoutRequest)

    def exec_container(
        self, name: str, config: client.ExecConfig, *, stdio: tuple[int, int, int] | None = None
    ) -> client.ExecSession:
        return _exec(self.api.path, name, config, stdio)


def _exec(
    path: str, name: str, config: client.ExecConfig, stdio: tuple[int, int, int] | None
) -> RemoteExecSession:
    body = json.dumps(codec.encode(config, C.ExecConfig)).encode()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(path)
        head = (
            f"POST /v1/containers/{quote(name)}/exec HTTP/1.1\r\nHost: localhost\r\n"
            f"Connection: Upgrade\r\nUpgrade: {api_runtime.EXEC_PROTOCOL}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        sock.sendall(head.encode() + body)
        status, rest = _read_head(sock)
        if status != 101:
            raise_for(_error_of(status, rest, sock))
        fds = list(stdio) if stdio is not None else [0, 1, 2]
        socket.send_fds(sock, [b"\0"], fds)
        data, got, _, _ = socket.recv_fds(sock, 65536, 1)
        while b"\n" not in data:
            more = sock.recv(65536)
            if not more:
                raise errors.Unavailable("exec: the daemon closed the connection")
            data += more
        line, _, leftover = data.partition(b"\n")
        reply = json.loads(line)
        if "execId" not in reply:
            for fd in got:
                os.close(fd)
            raise_for(codec.decode(reply, T.ExecReply).error or T.ErrorBody("exec failed"))
        started: T.ExecStarted = codec.decode(reply, T.ExecStarted)
        session = RemoteExecSession(sock, started, got[0] if got else None)
        session._buffer = leftover
        return session
    except BaseException:
        sock.close()
        raise


def _read_head(sock: socket.socket) -> tuple[int, bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            raise errors.Unavailable("exec: the daemon closed the connection")
        data += chunk
        if len(data) > 65536:
            raise errors.Terminal("exec: the daemon's answer has no end of headers")
    head, _, rest = data.partition(b"\r\n\r\n")
    parts = head.split(b"\r\n", 1)[0].split()
    status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
    if status != 101:
        for line in head.split(b"\r\n")[1:]:
            key, _, value = line.partition(b":")
            if key.strip().lower() == b"content-length" and value.strip().isdigit():
                want = int(value.strip())
                while len(rest) < want:
                    chunk = sock.recv(65536)
                    if not chunk:
                        break
                    rest += chunk
    return status, rest


def _error_of(status: int, body: bytes, sock: socket.socket) -> T.ErrorBody:
    try:
        decoded: T.ErrorBody = codec.decode(json.loads(body), T.ErrorBody)
        return decoded
    except (ValueError, codec.CodecError):
        return T.ErrorBody(f"exec: the daemon answered {status}")
