"""The shim's control socket: accept, read JSON lines, dispatch, write replies.

Non-blocking sockets on the shim's :class:`~runtime.shim.loop.Loop`. Bounds: a
request line may be at most :data:`protocol.MAX_REQUEST` bytes (a longer one
gets an error reply and the connection is closed after it), at most
:data:`MAX_CONNECTIONS` connections are served at once (more are closed on
accept). Every request is answered, malformed ones with an ``InvalidSpec``
error; an unexpected exception while serving one is logged and answered as
``Terminal`` — the control socket must never take the container's keeper down.

Socket paths longer than a ``sockaddr_un`` allows are bound relative to their
directory (the shim is single-threaded, so a short ``chdir`` is safe); clients
reach them through ``/proc/self/fd`` (:func:`runtime.shim.client.connect`).

Sockets come from ``_socket``, the C half of ``socket``: the Python half adds
enums and file objects the shim does not use, for ~2 ms and ~0.2 MB per shim.
"""

from __future__ import annotations

import _socket
import os

from runtime import errors
from runtime.shim import protocol

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from runtime.shim.events import EventLog
    from runtime.shim.loop import Loop, Timer
    from runtime.shim.supervisor import Supervisor

MAX_CONNECTIONS = 64
FINISH_TIMEOUT = 2.0


class _Conn:
    __slots__ = ("closed", "eof", "fd", "pending", "rbuf", "sock", "wbuf")

    def __init__(self, sock: _socket.socket) -> None:
        self.sock = sock
        self.fd = sock.fileno()
        self.rbuf = bytearray()
        self.wbuf = bytearray()
        self.pending = 0  # deferred replies still owed (wait, stop)
        self.eof = False  # the peer will send nothing more
        self.closed = False


class Server:
    def __init__(self, loop: Loop, supervisor: Supervisor, path: str, events: EventLog) -> None:
        self.loop = loop
        self.supervisor = supervisor
        self.path = path
        self.events = events
        self._listener: _socket.socket | None = None
        self._identity: tuple[int, int] | None = None
        self._conns: list[_Conn] = []
        self._finishing: Callable[[], None] | None = None
        self._finish_timer: Timer | None = None

    # listening -------------------------------------------------------------

    def listen(self) -> None:
        sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM | _socket.SOCK_CLOEXEC)
        try:
            try:
                os.unlink(self.path)  # a stale socket of a dead shim (we hold the lock)
            except FileNotFoundError:
                pass
            directory, name = os.path.split(self.path)
            cwd = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                os.chdir(directory or ".")
                sock.bind(name)
            finally:
                os.fchdir(cwd)
                os.close(cwd)
            os.chmod(self.path, 0o600)
            sock.listen(16)
            sock.setblocking(False)
        except BaseException:
            sock.close()
            raise
        st = os.stat(self.path)
        self._identity = (st.st_dev, st.st_ino)
        self._listener = sock
        self.loop.add_reader(sock.fileno(), self._accept)

    def close(self) -> None:
        """Stop listening, remove our socket file, drop every connection."""
        self._stop_listening()
        for conn in list(self._conns):
            self._close(conn)

    def _stop_listening(self) -> None:
        if self._listener is None:
            return
        self.loop.remove_reader(self._listener.fileno())
        self._listener.close()
        self._listener = None
        try:
            st = os.stat(self.path)
            if (st.st_dev, st.st_ino) == self._identity:
                os.unlink(self.path)
        except FileNotFoundError:
            pass

    def finish(self, then: Callable[[], None]) -> None:
        """Stop listening; call ``then`` once owed replies are written (or after a timeout)."""
        self._finishing = then
        self._stop_listening()
        self._finish_timer = self.loop.call_later(FINISH_TIMEOUT, self._finished)
        # next round: the request being served now (shutdown, stop) is answered first
        self.loop.call_later(0, self._close_idle)

    def _close_idle(self) -> None:
        for conn in list(self._conns):
            if not conn.wbuf and not conn.pending:
                self._close(conn)
        self._maybe_finished()

    def _maybe_finished(self) -> None:
        if self._finishing is not None and not self._conns:
            self._finished()

    def _finished(self) -> None:
        then, self._finishing = self._finishing, None
        if self._finish_timer is not None:
            self._finish_timer.cancel()
            self._finish_timer = None
        for conn in list(self._conns):
            self._close(conn)
        if then is not None:
            then()

    # connections -----------------------------------------------------------

    def _accept(self) -> None:
        assert self._listener is not None
        try:
            fd, _ = self._listener._accept()  # type: ignore[attr-defined]  # accept4, CLOEXEC
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self.events.warning("accept_failed", error=str(exc))
            return
        sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM, 0, fd)
        if len(self._conns) >= MAX_CONNECTIONS:
            sock.close()
            self.events.warning("connection_refused", reason="too many connections")
            return
        sock.setblocking(False)
        conn = _Conn(sock)
        self._conns.append(conn)
        self.loop.add_reader(sock.fileno(), lambda: self._on_readable(conn))

    def _close(self, conn: _Conn) -> None:
        if conn.closed:
            return
        conn.closed = True
        self.loop.remove_reader(conn.fd)
        self.loop.remove_writer(conn.fd)
        conn.sock.close()
        self._conns.remove(conn)
        self._maybe_finished()

    def _on_readable(self, conn: _Conn) -> None:
        try:
            data = conn.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            conn.eof = True
            self.loop.remove_reader(conn.fd)
            self._close_if_done(conn)
            return
        conn.rbuf += data
        while not conn.closed and not conn.eof:
            end = conn.rbuf.find(b"\n")
            if end < 0 or end > protocol.MAX_REQUEST:
                break
            line = bytes(conn.rbuf[:end])
            del conn.rbuf[: end + 1]
            self._handle(conn, line)
        if not conn.closed and not conn.eof and len(conn.rbuf) > protocol.MAX_REQUEST:
            conn.rbuf.clear()
            conn.eof = True  # stop reading: the rest of the stream cannot be framed
            self.loop.remove_reader(conn.fd)
            message = f"request is longer than {protocol.MAX_REQUEST} bytes"
            self._send(conn, protocol.error("InvalidSpec", message))

    def _close_if_done(self, conn: _Conn) -> None:
        if conn.eof and not conn.pending and not conn.wbuf:
            self._close(conn)

    def _send(self, conn: _Conn, reply: dict[str, object]) -> None:
        if conn.closed:
            return
        conn.wbuf += protocol.encode(reply)
        self._flush(conn)

    def _flush(self, conn: _Conn) -> None:
        try:
            while conn.wbuf:
                sent = conn.sock.send(conn.wbuf, _socket.MSG_NOSIGNAL)
                del conn.wbuf[:sent]
        except (BlockingIOError, InterruptedError):
            self.loop.add_writer(conn.fd, lambda: self._flush(conn))
            return
        except OSError:
            self._close(conn)  # the peer went away
            return
        self.loop.remove_writer(conn.fd)
        if self._finishing is not None and not conn.pending:
            self._close(conn)
            return
        self._close_if_done(conn)

    def _deferred(self, conn: _Conn, request_id: object) -> Callable[[dict[str, object]], None]:
        conn.pending += 1

        def reply(result: dict[str, object]) -> None:
            conn.pending -= 1
            self._send(conn, protocol.ok(result, request_id))
            self._close_if_done(conn)

        return reply

    # requests --------------------------------------------------------------

    def _handle(self, conn: _Conn, line: bytes) -> None:
        request_id: object = None
        try:
            request = protocol.decode_request(line)
            request_id = request.get("id")
            result = self._dispatch(conn, request, request_id)
        except protocol.ProtocolError as exc:
            self._send(conn, protocol.error("InvalidSpec", str(exc), request_id))
        except errors.RuntimeError_ as exc:
            self._send(conn, protocol.error(type(exc).__name__, str(exc), request_id))
        except Exception as exc:
            import traceback  # only on this path: it costs the shim imports

            self.events.error("request_failed", error=repr(exc), traceback=traceback.format_exc())
            self._send(conn, protocol.error("Terminal", f"shim: {exc!r}", request_id))
        else:
            if result is not None:
                self._send(conn, protocol.ok(result, request_id))

    def _dispatch(
        self, conn: _Conn, request: dict[str, object], request_id: object
    ) -> dict[str, object] | None:
        """Serve one request; None when the reply is deferred."""
        sup = self.supervisor
        op = request["op"]
        if op == "state":
            return sup.state()
        if op == "wait":
            condition = request.get("condition", "stopped")
            if condition not in protocol.WAIT_CONDITIONS:
                raise protocol.ProtocolError(
                    f"wait condition {condition!r} is not one of "
                    + ", ".join(protocol.WAIT_CONDITIONS)
                )
            timeout = protocol.get_float(request, "timeout", None)
            sup.wait(str(condition), timeout, self._deferred(conn, request_id))
            return None
        if op == "kill":
            sig = protocol.parse_signal(request.get("signal", "SIGKILL"))
            sup.kill(sig, protocol.get_bool(request, "all"))
            return sup.state()
        if op == "stop":
            raw = request.get("signal")
            stop_signal = None if raw is None else protocol.parse_signal(raw)
            timeout = protocol.get_float(request, "timeout", None)
            sup.stop(stop_signal, timeout, self._deferred(conn, request_id))
            return None
        if op == "shutdown":
            sup.shutdown()
            return sup.state()
        raise protocol.ProtocolError(f"unknown op {op!r}")
