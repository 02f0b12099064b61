"""The API server: HTTP/1.1 on a unix socket, a route table, JSON in and out.

Why the stdlib (``http.server`` on a ``ThreadingUnixStreamServer``): the API
serves one host's CLI and tools, a few requests a second; a thread per
connection is plenty, and it needs no dependency. What the stdlib lacks is
added here: a route table (also the source of the OpenAPI document, see
:mod:`reconciler.daemon.openapi`), bounded and strictly decoded bodies, JSON
errors for everything (the stdlib's HTML error pages are replaced), chunked
``application/x-ndjson`` streams, and the caller's credentials
(``SO_PEERCRED``) for the log and the events.

Status codes: 400 malformed (bad JSON, a field of the wrong type, an unknown
query parameter), 404 no such route or object, 405 wrong method, 409 exists or
in the wrong state, 411/413 body without a length or too large, 503 the
runtime is unavailable or the daemon is shutting down; 500 only for a runtime
failure (``Terminal``) or a bug (the traceback goes to the log, not to the
client). Every error body is an :class:`~reconciler.daemon.api_types.ErrorBody`.
"""

from __future__ import annotations

import dataclasses
import http.server
import json
import os
import select
import socket
import socketserver
import struct
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from typing import Any

import structlog

from reconciler.daemon import api_types, codec
from runtime import errors

log = structlog.get_logger(__name__)

MAX_BODY = 8 << 20  # a 4 MiB manifest on stdin, with its environment, fits
REQUEST_TIMEOUT = 30.0  # seconds to send a request (slow clients are dropped)
TICK = 0.25  # how often a quiet stream checks that its client is still there

STATUS: dict[type[errors.RuntimeError_], int] = {
    errors.NotFound: 404,
    errors.AlreadyExists: 409,
    errors.InvalidSpec: 400,
    errors.FailedPrecondition: 409,
    errors.Unavailable: 503,
    errors.Transient: 503,
    errors.Terminal: 500,
}


class HTTPError(Exception):
    """An answer other than success, with its JSON body."""

    def __init__(self, status: int, message: str, reason: str = "bad_request") -> None:
        super().__init__(message)
        self.status = status
        self.body = api_types.ErrorBody(
            message=message, category=_category_for_status(status), reason=reason
        )


def _category_for_status(status: int) -> api_types.Category:
    if status == 404:
        return "NotFound"
    if status == 409:
        return "FailedPrecondition"
    if status == 503:
        return "Unavailable"
    if status >= 500:
        return "Terminal"
    return "InvalidSpec"


def category_of(exc: errors.RuntimeError_) -> api_types.Category:
    for cls in type(exc).__mro__:
        if cls in STATUS:
            return cls.__name__  # type: ignore[return-value]
    return "Terminal"


def error_body(exc: errors.RuntimeError_, reason: str = "") -> api_types.ErrorBody:
    problems = getattr(exc, "problems", ())
    return api_types.ErrorBody(
        message=str(exc),
        category=category_of(exc),
        problems=tuple(str(p) for p in problems),
        reason=reason,
    )


@dataclasses.dataclass(frozen=True)
class Param:
    """A query parameter."""

    name: str
    type: Any
    description: str = ""


@dataclasses.dataclass(frozen=True)
class Route:
    method: str
    path: str  # /v1/containers/{name}/start
    handler: Callable[[Any, Call], Any]
    summary: str
    tag: str
    body: Any = None  # the request body's type
    returns: Any = None  # the answer's type; None: 204 without a body
    stream: Any = None  # the type of each line of an application/x-ndjson answer
    query: tuple[Param, ...] = ()
    raw_body: str | None = None  # content type of a streamed request body (archives)
    raw_answer: str | None = None  # content type of a raw answer (text, tar)
    upgrade: str | None = None  # the protocol a 101 switches to (exec)
    status: int = 200

    @property
    def segments(self) -> tuple[str, ...]:
        return tuple(self.path.strip("/").split("/"))


@dataclasses.dataclass(frozen=True)
class Peer:
    pid: int
    uid: int
    gid: int


@dataclasses.dataclass
class Stream:
    """An ``application/x-ndjson`` answer: ``items`` yields values of the route's
    stream type, or ``None`` as a tick (nothing to send; the server then checks
    that the client is still connected and, if not, sets ``cancel``)."""

    items: Iterator[Any]
    cancel: threading.Event | None = None


@dataclasses.dataclass
class Raw:
    """A raw answer: bytes of ``content_type``, as one piece or chunked."""

    content_type: str
    chunks: Iterator[bytes]


class Done:
    """The handler has written its whole answer itself."""


DONE = Done()


@dataclasses.dataclass
class Call:
    route: Route
    params: dict[str, str]
    query: dict[str, Any]
    body: Any
    peer: Peer
    handler: Handler


class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = False

    def __init__(self, path: str, app: Any, routes: list[Route], max_body: int = MAX_BODY) -> None:
        self.app = app
        self.routes = routes
        self.max_body = max_body
        self.stopping = threading.Event()
        super().__init__(path, Handler, bind_and_activate=False)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client gone between two requests (it closed, reset or timed out) is no
        error; anything else is logged, not printed on stderr by socketserver."""
        if isinstance(sys.exc_info()[1], ConnectionError | TimeoutError):
            return
        log.exception("connection_failed")

    def route(self, method: str, raw_path: str) -> tuple[Route, dict[str, str]]:
        parts = raw_path.strip("/").split("/")
        allowed = []
        for route in self.routes:
            segments = route.segments
            if len(segments) != len(parts):
                continue
            params: dict[str, str] = {}
            for want, got in zip(segments, parts, strict=True):
                if want.startswith("{"):
                    try:
                        value = urllib.parse.unquote(got, errors="strict")
                    except UnicodeDecodeError:
                        raise HTTPError(400, f"bad percent-encoding in {raw_path!r}") from None
                    if not value or "\0" in value:
                        break
                    params[want[1:-1]] = value
                elif want != got:
                    break
            else:
                if route.method == method:
                    return route, params
                allowed.append(route.method)
        if allowed:
            raise HTTPError(405, f"{method} is not allowed on {raw_path}; use {', '.join(allowed)}")
        raise HTTPError(404, f"no such endpoint: {method} {raw_path}", "no_route")


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "pyreconcile"
    sys_version = ""
    timeout = REQUEST_TIMEOUT
    server: Server

    # -- the stdlib's hooks ----------------------------------------------------

    def log_message(self, format: str, *args: Any) -> None:
        """Requests are counted in the metrics and logged by :meth:`_serve`."""

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """The stdlib's own errors (a bad request line, too many headers) as JSON."""
        body = api_types.ErrorBody(
            message=(message or explain or "bad request").lower(),
            category=_category_for_status(code),
            reason="bad_request",
        )
        self.close_connection = True
        if getattr(self, "request_version", "HTTP/0.9") == "HTTP/0.9":
            self.request_version = "HTTP/1.1"  # no HTTP/0.9 here: always a status line
        try:
            self._send_json(code, codec.encode(body, api_types.ErrorBody))
        except OSError:
            pass

    def address_string(self) -> str:
        return "unix"

    def do_GET(self) -> None:
        self._serve()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = do_GET

    def __getattr__(self, name: str) -> Any:
        """Any other method (TRACE, CONNECT, made-up ones): routed too, so that it
        gets a 405 listing the allowed methods rather than the stdlib's 501."""
        if name.startswith("do_") and name[3:].isalpha():
            return self._serve
        raise AttributeError(name)

    # -- serving ---------------------------------------------------------------

    def _serve(self) -> None:
        started = time.monotonic()
        route: Route | None = None
        status = 500
        try:
            url = urllib.parse.urlsplit(self.path)
            if self.server.stopping.is_set():
                raise HTTPError(503, "the daemon is shutting down", "shutting_down")
            route, params = self.server.route(self.command, url.path)
            call = Call(
                route=route,
                params=params,
                query=_query(route, url.query),
                body=self._body(route),
                peer=self.peer(),
                handler=self,
            )
            result = route.handler(self.server.app, call)
            status = self._answer(route, result)
        except HTTPError as exc:
            status = exc.status
            self._fail(exc.status, exc.body)
            if exc.status == 413:
                self._drain()
        except codec.CodecError as exc:
            status = 400
            self._fail(400, api_types.ErrorBody(message=str(exc), category="InvalidSpec"))
        except errors.RuntimeError_ as exc:
            status = _status_of(exc)
            self._fail(
                status, error_body(exc, "load_failed" if getattr(exc, "problems", None) else "")
            )
        except (BrokenPipeError, ConnectionResetError):
            status = 499
            self.close_connection = True
        except Exception:
            log.exception("request_failed", method=self.command, path=self.path)
            status = 500
            self._fail(
                500,
                api_types.ErrorBody(
                    message="internal error in the daemon; see its log", reason="internal"
                ),
            )
        finally:
            metrics = getattr(self.server.app, "metrics", None)
            if metrics is not None:
                metrics.observe_request(
                    self.command, route.path if route else "-", status, time.monotonic() - started
                )

    def peer(self) -> Peer:
        try:
            raw = self.connection.getsockopt(
                socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i")
            )
            pid, uid, gid = struct.unpack("3i", raw)
            return Peer(pid, uid, gid)
        except OSError:
            return Peer(0, -1, -1)

    def _body(self, route: Route) -> Any:
        if route.raw_body is not None:
            return None  # the handler reads it (see read_raw_body)
        length = self._length()
        if route.body is None:
            if length:
                self._discard(length)
            return None
        if length == 0:
            data: Any = {}
        else:
            raw = self.rfile.read(length)
            if len(raw) != length:
                raise HTTPError(400, "the request body ended early")
            try:
                data = json.loads(raw)
            except (ValueError, UnicodeDecodeError) as exc:
                raise HTTPError(400, f"the request body is not JSON: {exc}") from None
        return codec.decode(data, route.body)

    def _length(self) -> int:
        if self.headers.get("Transfer-Encoding"):
            self.close_connection = True  # the body cannot be framed: nothing after it either
            raise HTTPError(411, "send the body with a Content-Length", "length_required")
        lengths = self.headers.get_all("Content-Length") or []
        if len(lengths) > 1:
            self.close_connection = True
            raise HTTPError(400, "more than one Content-Length")
        text = lengths[0] if lengths else None
        if text is None:
            return 0
        if not text.isdigit():
            self.close_connection = True
            raise HTTPError(400, f"Content-Length {text!r} is not a number")
        length = int(text)
        if length > self.server.max_body:
            self.close_connection = True
            raise HTTPError(
                413,
                f"the request body is {length} bytes; the limit is {self.server.max_body}",
                "too_large",
            )
        return length

    def _drain(self, seconds: float = 2.0, limit: int = 64 << 20) -> None:
        """After refusing a body unread: let the client finish sending, so that it
        reads the answer instead of a reset connection."""
        try:
            self.connection.shutdown(socket.SHUT_WR)
            self.connection.settimeout(seconds)
            deadline = time.monotonic() + seconds
            while limit > 0 and time.monotonic() < deadline:
                data = self.connection.recv(65536)
                if not data:
                    break
                limit -= len(data)
        except OSError:
            pass

    def _discard(self, length: int) -> None:
        while length > 0:
            chunk = self.rfile.read(min(length, 65536))
            if not chunk:
                break
            length -= len(chunk)

    def read_raw_body(self) -> Iterator[bytes]:
        """A streamed request body (Content-Length or chunked), any size."""
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            while True:
                line = self.rfile.readline(1024)
                try:
                    size = int(line.split(b";")[0].strip(), 16)
                except ValueError:
                    raise HTTPError(400, "bad chunk in the request body") from None
                if size == 0:
                    while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                        pass
                    return
                data = self.rfile.read(size)
                self.rfile.read(2)
                if len(data) != size:
                    raise HTTPError(400, "the request body ended early")
                yield data
        text = self.headers.get("Content-Length")
        if text is None or not text.isdigit():
            raise HTTPError(
                411, "send the body with a Content-Length or chunked", "length_required"
            )
        left = int(text)
        while left > 0:
            data = self.rfile.read(min(left, 1 << 20))
            if not data:
                raise HTTPError(400, "the request body ended early")
            left -= len(data)
            yield data

    # -- answers -----------------------------------------------------------------

    def _answer(self, route: Route, result: Any) -> int:
        if isinstance(result, Stream):
            self._stream(route, result)
            return 200
        if isinstance(result, Raw):
            self._raw(result)
            return 200
        if isinstance(result, Done):
            return 200
        if route.upgrade is not None:
            return 101  # the handler has taken the connection over
        if route.returns is None:
            self.send_response(204)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return 204
        self._send_json(route.status, codec.encode(result, route.returns))
        return route.status

    def _send_json(self, status: int, data: Any) -> None:
        payload = json.dumps(data, separators=(",", ":")).encode() + b"\n"
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    def _fail(self, status: int, body: api_types.ErrorBody) -> None:
        if getattr(self, "_headers_sent", False):
            self.close_connection = True  # a stream broke off: nothing more can be said
            return
        try:
            self._send_json(status, codec.encode(body, api_types.ErrorBody))
        except OSError:
            self.close_connection = True

    def _start_chunked(self, content_type: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()
        self._headers_sent = True

    def _chunk(self, data: bytes) -> None:
        if data:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))

    def _end_chunks(self) -> None:
        self.wfile.write(b"0\r\n\r\n")
        self._headers_sent = False

    def _stream(self, route: Route, stream: Stream) -> None:
        self._start_chunked("application/x-ndjson")
        try:
            for item in stream.items:
                if item is None:
                    if self.client_gone():
                        raise BrokenPipeError("the client closed the connection")
                    continue
                line = json.dumps(codec.encode(item, route.stream), separators=(",", ":"))
                self._chunk(line.encode() + b"\n")
            self._end_chunks()
        except OSError:
            if stream.cancel is not None:
                stream.cancel.set()
            close = getattr(stream.items, "close", None)
            if close is not None:
                close()
            raise

    def _raw(self, raw: Raw) -> None:
        self._start_chunked(raw.content_type)
        for data in raw.chunks:
            self._chunk(data)
        self._end_chunks()

    def client_gone(self) -> bool:
        """True when the client has closed its end (EOF is readable)."""
        try:
            ready, _, _ = select.select([self.connection], [], [], 0)
            if not ready:
                return False
            peeked: bytes = self.connection.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
            return peeked == b""
        except BlockingIOError:
            return False
        except OSError:
            return True

    def switch_protocols(self, protocol: str) -> socket.socket:
        """Answer 101 and hand the raw connection to the caller (exec)."""
        self.send_response(101)
        self.send_header("Connection", "Upgrade")
        self.send_header("Upgrade", protocol)
        self.end_headers()
        self.close_connection = True
        self._headers_sent = True
        connection: socket.socket = self.connection
        connection.settimeout(None)
        return connection


def _status_of(exc: errors.RuntimeError_) -> int:
    for cls in type(exc).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 500


def _query(route: Route, text: str) -> dict[str, Any]:
    try:
        pairs = urllib.parse.parse_qsl(
            text, keep_blank_values=True, strict_parsing=False, errors="strict"
        )
    except (ValueError, UnicodeDecodeError) as exc:
        raise HTTPError(400, f"bad query string: {exc}") from None
    known = {p.name: p for p in route.query}
    values: dict[str, Any] = {}
    for key, value in pairs:
        param = known.get(key)
        if param is None:
            names = ", ".join(sorted(known)) or "none"
            raise HTTPError(400, f"unknown query parameter {key!r} (known: {names})")
        values[key] = _query_value(key, value, param.type)
    return values


def _query_value(key: str, value: str, tp: Any) -> Any:
    if "\0" in value:
        raise HTTPError(400, f"query parameter {key}: must not contain NUL characters")
    if tp is bool:
        if value.lower() in ("1", "true", "yes", ""):
            return True
        if value.lower() in ("0", "false", "no"):
            return False
        raise HTTPError(400, f"query parameter {key}: expected true or false")
    if tp is int:
        if value.isdigit() and len(value) < 12:
            return int(value)
        raise HTTPError(400, f"query parameter {key}: expected a whole number")
    if tp is float:
        try:
            number = float(value)
        except ValueError:
            raise HTTPError(400, f"query parameter {key}: expected a number") from None
        if number != number or number in (float("inf"), float("-inf")) or number < 0:
            raise HTTPError(400, f"query parameter {key}: expected a finite number >= 0")
        return number
    return value


def prepare_socket(path: str, group: str | None) -> None:
    """Make room for the socket at ``path``: refuse while another daemon answers there,
    remove a stale one."""
    os.makedirs(os.path.dirname(path), mode=0o711, exist_ok=True)
    if not os.path.exists(path) and not os.path.islink(path):
        return
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(1.0)
    try:
        probe.connect(path)
    except OSError:
        os.unlink(path)  # nobody listens: a socket left by a daemon that died
        return
    finally:
        probe.close()
    raise errors.AlreadyExists(
        f"another daemon is serving {path}; stop it first (or give --socket another path)"
    )


def bind(server: Server, path: str, group: str | None) -> None:
    """Bind at a temporary name, set mode 0660 and the group, then rename into place,
    so that the socket is never reachable with looser permissions."""
    import grp

    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        os.unlink(tmp)
    except FileNotFoundError:
        pass
    server.socket.bind(tmp)
    os.chmod(tmp, 0o660)
    gid = None
    if group:
        try:
            gid = grp.getgrnam(group).gr_gid
        except KeyError:
            gid = None
    if gid is not None:
        os.chown(tmp, 0, gid)
        # the group must reach the socket: let others traverse (not list) its directory
        directory = os.path.dirname(path)
        mode = os.stat(directory).st_mode & 0o7777
        os.chmod(directory, mode | 0o011)
    os.replace(tmp, path)
    server.server_address = path
    server.server_activate()
