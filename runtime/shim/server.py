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

fds: requests are read with ``recvmsg``, so a client may pass fds along
(``SCM_RIGHTS``; ``exec`` takes the stdio of the process that way); they are
queued on the connection, taken by the request that needs them, and closed
with the connection otherwise. A reply may carry fds too (``exec`` with a TTY
sends the pty master with its ``started`` reply).

Streams: ``exec`` answers twice on its connection (``started``, then
``exited``); ``logs`` answers with the log's records, one JSON object per line
as the log file has them, then ``{"ok": true, "result": {"event": "end"}}``.
The backlog is read from the files in batches as the client drains the
socket, and live records written meanwhile are queued behind it, so each line
comes once. A follower that lets more than :data:`MAX_FOLLOW_BUFFER` bytes
pile up is dropped (its connection closed without the end line): a slow
reader must not make the shim hold the container's output in memory.
"""

from __future__ import annotations

import _socket
import os

from runtime import errors
from runtime.shim import protocol

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from runtime.shim.events import EventLog
    from runtime.shim.loop import Loop, Timer
    from runtime.shim.supervisor import Supervisor

MAX_CONNECTIONS = 64
FINISH_TIMEOUT = 2.0
MAX_FDS = 3  # per message: an exec's stdin, stdout, stderr
MAX_FOLLOW_BUFFER = 4 * 1024 * 1024
LOW_WATER = 256 * 1024


class _LogStream:
    """A ``logs`` reply in progress: the backlog batches, then live records."""

    __slots__ = ("backlog", "follow", "live", "request_id")

    def __init__(self, backlog: Iterator[list[bytes]], follow: bool, request_id: object) -> None:
        self.backlog: Iterator[list[bytes]] | None = backlog
        self.follow = follow
        self.live = bytearray()  # records written while the backlog is being sent
        self.request_id = request_id


class _Conn:
    __slots__ = (
        "closed", "eof", "exec_ids", "fd", "fds", "pending", "rbuf", "sock", "stream", "wbuf",
        "wfds",
    )  # fmt: skip

    def __init__(self, sock: _socket.socket) -> None:
        self.sock = sock
        self.fd = sock.fileno()
        self.rbuf = bytearray()
        self.wbuf = bytearray()
        self.pending = 0  # deferred replies still owed (wait, stop, exec, logs)
        self.eof = False  # the peer will send nothing more
        self.closed = False
        self.fds: list[int] = []  # received, not yet taken by a request
        self.wfds: list[int] = []  # to send with the next bytes of wbuf (then closed)
        self.exec_ids: list[str] = []
        self.stream: _LogStream | None = None


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
        for fd in conn.fds + conn.wfds:
            os.close(fd)
        conn.fds.clear()
        conn.wfds.clear()
        if conn.stream is not None:
            self._unfollow(conn)
        if conn.exec_ids and self.supervisor.execs is not None:
            for exec_id in conn.exec_ids:
                self.supervisor.execs.detach(exec_id)
        self._conns.remove(conn)
        self._maybe_finished()

    def _on_readable(self, conn: _Conn) -> None:
        try:
            data, ancdata, _, _ = conn.sock.recvmsg(
                65536, _socket.CMSG_SPACE(MAX_FDS * 4), _socket.MSG_CMSG_CLOEXEC
            )
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data, ancdata = b"", []
        if ancdata:
            conn.fds.extend(protocol.unpack_fds(ancdata))
        if not data:
            conn.eof = True
            self.loop.remove_reader(conn.fd)
            if conn.stream is not None or conn.exec_ids:
                self._close(conn)  # the client is gone: no one to stream to, no pty to keep
                return
            self._close_if_done(conn)
            return
        if conn.stream is not None:
            return  # a logs stream owns the connection: nothing more is read from it
        conn.rbuf += data
        while not conn.closed and not conn.eof and conn.stream is None:
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

    def _send(self, conn: _Conn, reply: dict[str, object], fds: tuple[int, ...] = ()) -> None:
        """Queue a reply (and fds to pass with it, which are ours to close) and flush."""
        if conn.closed:
            for fd in fds:
                os.close(fd)
            return
        if fds and conn.wbuf:  # fds go with the reply's first byte: send what is queued first
            self._flush(conn)
            if conn.closed:
                for fd in fds:
                    os.close(fd)
                return
        # (still blocked: the fds go with the earliest unsent bytes; the client
        # takes fds from any message of the connection)
        conn.wfds.extend(fds)
        conn.wbuf += protocol.encode(reply)
        self._flush(conn)

    def _flush(self, conn: _Conn) -> None:
        try:
            while True:
                if not conn.wbuf and conn.stream is not None and not self._refill(conn):
                    break
                if not conn.wbuf:
                    break
                if conn.wfds:
                    sent = conn.sock.sendmsg(
                        [conn.wbuf], protocol.pack_fds(conn.wfds), _socket.MSG_NOSIGNAL
                    )
                    for fd in conn.wfds:
                        os.close(fd)
                    conn.wfds.clear()
                else:
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

    # logs --------------------------------------------------------------------

    def _start_logs(self, conn: _Conn, request: dict[str, object], request_id: object) -> None:
        from runtime.shim import logs  # the shim imports it anyway (times), so this is free

        tail = request.get("tail")
        if tail is not None and (isinstance(tail, bool) or not isinstance(tail, int) or tail < 0):
            raise protocol.ProtocolError("'tail' must be a number of lines >= 0")
        since = request.get("since")
        if since is not None and (
            isinstance(since, bool) or not isinstance(since, (int, float, str))
        ):
            raise protocol.ProtocolError("'since' must be unix seconds or an RFC 3339 time")
        if isinstance(since, str):
            try:
                logs.parse_time(since)
            except ValueError as exc:
                raise protocol.ProtocolError(str(exc)) from None
        follow = protocol.get_bool(request, "follow") and not self.supervisor.final
        backlog = logs.backlog(self.supervisor.log_path, tail, since)
        try:
            first = next(backlog)  # opens the files now: later records come live
        except StopIteration:
            first = []
        stream = _LogStream(backlog, follow, request_id)
        conn.stream = stream
        conn.pending += 1
        conn.wbuf += b"".join(first)
        if follow:
            self.supervisor.log_listeners.append(self._follower(conn))
        self._flush(conn)

    def _follower(self, conn: _Conn) -> Callable[[bytes], None]:
        def on_records(data: bytes) -> None:
            stream = conn.stream
            if conn.closed or stream is None:
                return
            if stream.backlog is not None:
                stream.live += data
            else:
                conn.wbuf += data
            if len(conn.wbuf) + len(stream.live) > MAX_FOLLOW_BUFFER:
                self.events.warning("log_follower_dropped", reason="too slow a reader")
                self._close(conn)
                return
            if stream.backlog is None:
                self._flush(conn)

        on_records.conn = conn  # type: ignore[attr-defined]  # to find it again
        return on_records

    def _unfollow(self, conn: _Conn) -> None:
        listeners = self.supervisor.log_listeners
        listeners[:] = [f for f in listeners if getattr(f, "conn", None) is not conn]
        conn.stream = None

    def _refill(self, conn: _Conn) -> bool:
        """More bytes for a logs stream's empty buffer; False when there are none now."""
        stream = conn.stream
        assert stream is not None
        if stream.backlog is not None:
            batch = next(stream.backlog, None)
            if batch is not None:
                conn.wbuf += b"".join(batch)
                return True
            stream.backlog = None
            if stream.live:
                conn.wbuf += stream.live
                stream.live = bytearray()
                if stream.follow:
                    return True
        if stream.follow and not self.supervisor.final and self._finishing is None:
            return False  # live records come through the listener
        self._unfollow(conn)
        conn.pending -= 1
        conn.wbuf += protocol.encode(protocol.ok({"event": "end"}, stream.request_id))
        return True

    def end_follows(self) -> None:
        """The container stopped for good: end every logs stream once drained."""
        for conn in list(self._conns):
            if conn.stream is not None:
                conn.stream.follow = False
                self._flush(conn)

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
        if op == "exec":
            self._exec(conn, request, request_id)
            return None
        if op == "resize":
            if sup.execs is None:
                raise errors.FailedPrecondition("this shim runs no execs")
            exec_id = request.get("exec_id")
            if not isinstance(exec_id, str):
                raise protocol.ProtocolError("'exec_id' must be a string")
            rows, cols = _size(request, "rows"), _size(request, "cols")
            sup.execs.resize(exec_id, rows, cols)
            return {"exec_id": exec_id, "rows": rows, "cols": cols}
        if op == "logs":
            self._start_logs(conn, request, request_id)
            return None
        raise protocol.ProtocolError(f"unknown op {op!r}")

    def _exec(self, conn: _Conn, request: dict[str, object], request_id: object) -> None:
        fds, conn.fds = conn.fds, []
        answer: list[Callable[[dict[str, object]], None]] = []
        try:
            result, master = self.supervisor.exec(
                request, fds, lambda r: answer[0](r) if answer else None
            )
        finally:
            for fd in fds:
                os.close(fd)
        answer.append(self._deferred(conn, request_id))
        conn.exec_ids.append(str(result["exec_id"]))
        # the client gets a copy of the pty master; the shim keeps its own (resize)
        self._send(
            conn, protocol.ok(result, request_id), (os.dup(master),) if master is not None else ()
        )


def _size(request: dict[str, object], key: str) -> int:
    value = request.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 65536:
        raise protocol.ProtocolError("'rows' and 'cols' must be integers 1..65535")
    return value
