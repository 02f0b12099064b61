"""The API client: HTTP/1.1 over the daemon's unix socket (stdlib ``http.client``).

:func:`connect` answers the CLI's first question: is a daemon there? A socket
that does not exist or that nobody listens on means "no daemon" (the CLI then
runs the engine in-process); a socket the user may not open is an error that
says so (:class:`PermissionDenied`), never a silent fallback to an in-process
engine that would fail later with a worse message.

Errors come back as the runtime's categories (``runtime.errors``) with the
daemon's message, so the CLI prints and exits exactly as it does in-process.
"""

from __future__ import annotations

import errno
import http.client
import json
import socket
import urllib.parse
from collections.abc import Iterator, Mapping
from typing import Any, BinaryIO, TypeVar, overload

from reconciler.daemon import api_types, codec
from reconciler.daemon.address import SOCKET_NAME, default_socket
from runtime import errors

__all__ = [
    "ApiClient",
    "PermissionDenied",
    "RemoteError",
    "SOCKET_NAME",
    "connect",
    "default_socket",
    "quote",
]

Tv = TypeVar("Tv")

CONNECT_TIMEOUT = 5.0

_CATEGORIES: dict[str, type[errors.RuntimeError_]] = {
    "NotFound": errors.NotFound,
    "AlreadyExists": errors.AlreadyExists,
    "InvalidSpec": errors.InvalidSpec,
    "FailedPrecondition": errors.FailedPrecondition,
    "Unavailable": errors.Unavailable,
    "Transient": errors.Transient,
    "Terminal": errors.Terminal,
}


class PermissionDenied(errors.FailedPrecondition):
    """The socket exists but this user may not connect to it."""


class RemoteError(errors.RuntimeError_):
    """Marker mixed into the errors raised from a daemon's answer."""

    body: api_types.ErrorBody


def raise_for(body: api_types.ErrorBody) -> None:
    """Raise ``body`` as its runtime error category (with ``.body`` for details)."""
    base = _CATEGORIES.get(body.category, errors.Terminal)
    cls = _remote_classes[base]
    exc = cls(body.message)
    exc.body = body
    raise exc


_remote_classes: dict[type[errors.RuntimeError_], type[RemoteError]] = {
    base: type(f"Remote{base.__name__}", (RemoteError, base), {}) for base in _CATEGORIES.values()
}


def quote(segment: str) -> str:
    return urllib.parse.quote(segment, safe="")


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float | None) -> None:
        super().__init__("localhost", timeout=timeout)
        self.socket_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(CONNECT_TIMEOUT)
        try:
            sock.connect(self.socket_path)
        except BaseException:
            sock.close()
            raise
        sock.settimeout(self.timeout)
        self.sock = sock


def connect(path: str) -> ApiClient | None:
    """A client of the daemon at ``path``, or None when no daemon answers there."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(CONNECT_TIMEOUT)
    try:
        sock.connect(path)
    except OSError as exc:
        sock.close()
        if exc.errno in (errno.EACCES, errno.EPERM):
            raise PermissionDenied(
                f"permission denied on the daemon's socket {path}: run as root, or join its "
                "group (sudo usermod -aG pyreconcile $USER, then log in again)"
            ) from None
        if exc.errno in (errno.ENOENT, errno.ECONNREFUSED, errno.ENOTDIR, errno.ENOTSOCK):
            return None
        raise errors.Unavailable(f"cannot reach the daemon at {path}: {exc.strerror}") from None
    conn = _UnixConnection(path, None)
    sock.settimeout(None)
    conn.sock = sock
    return ApiClient(path, conn)


class ApiClient:
    """Requests to one daemon over one kept-alive connection (not thread-safe:
    :meth:`fresh` gives another for a second thread or a long stream)."""

    def __init__(self, path: str, conn: http.client.HTTPConnection | None = None) -> None:
        self.path = path
        self._conn = conn

    def fresh(self) -> ApiClient:
        return ApiClient(self.path)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            self._conn = _UnixConnection(self.path, None)
        return self._conn

    def _send(
        self,
        method: str,
        path: str,
        body: bytes | BinaryIO | Iterator[bytes] | None,
        headers: Mapping[str, str],
    ) -> http.client.HTTPResponse:
        for attempt in (0, 1):
            conn = self._connection()
            try:
                conn.request(method, path, body=body, headers=dict(headers))
                return conn.getresponse()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as exc:
                self.close()
                # a kept-alive connection the daemon closed meanwhile: once more on a new one
                if attempt or not isinstance(body, (bytes, type(None))):
                    raise errors.Unavailable(
                        f"the daemon at {self.path} went away: {exc}"
                    ) from None
            except FileNotFoundError:
                self.close()
                raise errors.Unavailable(f"the daemon at {self.path} is gone") from None
            except ConnectionRefusedError:
                self.close()
                raise errors.Unavailable(f"the daemon at {self.path} does not answer") from None
        raise AssertionError("unreachable")

    def _url(self, path: str, query: Mapping[str, Any] | None) -> str:
        if not query:
            return path
        items = {k: _query_text(v) for k, v in query.items() if v is not None}
        return f"{path}?{urllib.parse.urlencode(items)}" if items else path

    @overload
    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        body_type: Any = Any,
        returns: type[Tv],
        query: Mapping[str, Any] | None = None,
    ) -> Tv: ...

    @overload
    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        body_type: Any = Any,
        returns: None = None,
        query: Mapping[str, Any] | None = None,
    ) -> None: ...

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        body_type: Any = Any,
        returns: Any = None,
        query: Mapping[str, Any] | None = None,
    ) -> Any:
        """One JSON request and its decoded JSON answer (None for 204)."""
        payload = None if body is None else json.dumps(codec.encode(body, body_type)).encode()
        headers = {"Content-Type": "application/json"} if payload is not None else {}
        response = self._send(method, self._url(path, query), payload, headers)
        data = response.read()
        if response.status >= 400:
            _raise_answer(response.status, data)
        if response.status == 204 or returns is None:
            return None
        return codec.decode(json.loads(data), returns)

    def stream(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        body_type: Any = Any,
        item: Any = Any,
        query: Mapping[str, Any] | None = None,
    ) -> Iterator[Any]:
        """A request whose answer is JSON lines: yields each, decoded as ``item``."""
        payload = None if body is None else json.dumps(codec.encode(body, body_type)).encode()
        headers = {"Content-Type": "application/json"} if payload is not None else {}
        response = self._send(method, self._url(path, query), payload, headers)
        if response.status >= 400:
            _raise_answer(response.status, response.read())
        try:
            while True:
                line = response.readline()
                if not line:
                    return
                if line.strip():
                    yield codec.decode(json.loads(line), item)
        finally:
            if not response.isclosed():
                # left early: the rest of the stream is unread, so the connection goes
                self.close()

    def download(
        self, method: str, path: str, query: Mapping[str, Any] | None = None
    ) -> Iterator[bytes]:
        response = self._send(method, self._url(path, query), None, {})
        if response.status >= 400:
            _raise_answer(response.status, response.read())
        try:
            while True:
                data = response.read1(1 << 16)
                if not data:
                    return
                yield data
        finally:
            if not response.isclosed():
                self.close()

    def upload(
        self,
        method: str,
        path: str,
        source: BinaryIO,
        *,
        returns: Any = None,
        query: Mapping[str, Any] | None = None,
    ) -> Any:
        def chunks() -> Iterator[bytes]:
            while True:
                data = source.read(1 << 16)
                if not data:
                    return
                yield data

        headers = {"Content-Type": "application/x-tar", "Transfer-Encoding": "chunked"}
        conn = self._connection()
        try:
            conn.request(
                method,
                self._url(path, query),
                body=chunks(),
                headers=headers,
                encode_chunked=True,
            )
            response = conn.getresponse()
        except OSError as exc:
            self.close()
            raise errors.Unavailable(f"the daemon at {self.path}: {exc}") from None
        data = response.read()
        if response.status >= 400:
            _raise_answer(response.status, data)
        if response.status == 204 or returns is None:
            return None
        return codec.decode(json.loads(data), returns)


def _query_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _raise_answer(status: int, data: bytes) -> None:
    try:
        body = codec.decode(json.loads(data), api_types.ErrorBody)
    except (ValueError, codec.CodecError):
        text = data.decode(errors="replace").strip()[:500]
        body = api_types.ErrorBody(
            message=f"the daemon answered {status}: {text or 'no details'}", category="Terminal"
        )
    raise_for(body)
