"""Talk to a shim over its control socket (engine side).

One connection per request: a shim serves a handful of requests a minute, and
a fresh connection per call has no state to get wrong (a half-read reply, a
shim that exited between calls). The streams have a connection each too:
:meth:`ShimClient.exec` returns an :class:`ExecSession` that holds its
connection until the process exits (closing it early lets go of its pty), and
:meth:`ShimClient.logs` iterates over one. A socket that refuses or is missing means
the shim is gone: :class:`runtime.errors.Unavailable` — ask
:func:`runtime.shim.restore.probe` what became of the container. Error replies
are raised as the category the shim named.
"""

from __future__ import annotations

import array
import json
import os
import socket
import time
from collections.abc import Iterator, Sequence

from runtime import errors
from runtime.shim import protocol, statedir

DEFAULT_TIMEOUT = 10.0


def connect(path: str, timeout: float | None) -> socket.socket:
    """A connected socket to ``path``; long paths go through ``/proc/self/fd``."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    sock.settimeout(timeout)
    try:
        if len(os.fsencode(path)) < 100:
            sock.connect(path)
        else:
            directory, name = os.path.split(path)
            dfd = os.open(directory, os.O_PATH | os.O_CLOEXEC)
            try:
                sock.connect(f"/proc/self/fd/{dfd}/{name}")
            finally:
                os.close(dfd)
    except BaseException:
        sock.close()
        raise
    return sock


def _raise_error(socket_path: str, reply: dict[str, object]) -> None:
    error = reply.get("error")
    if not isinstance(error, dict):
        raise errors.Terminal(f"shim socket {socket_path}: malformed reply {reply!r}")
    category = getattr(errors, str(error.get("category")), None)
    if not (isinstance(category, type) and issubclass(category, errors.RuntimeError_)):
        category = errors.Terminal
    raise category(str(error.get("message")))


class _Lines:
    """Newline-framed JSON replies on a connection, and the fds that came with them."""

    def __init__(self, sock: socket.socket, socket_path: str) -> None:
        self.sock = sock
        self.socket_path = socket_path
        self.buffer = bytearray()
        self.fds: list[int] = []

    def next_raw(self) -> bytes | None:
        """The next line without its newline; None at EOF."""
        while b"\n" not in self.buffer:
            fds = array.array("i")
            data, ancdata, _, _ = self.sock.recvmsg(
                65536, socket.CMSG_SPACE(4 * fds.itemsize), socket.MSG_CMSG_CLOEXEC
            )
            for level, kind, payload in ancdata:
                if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                    fds.frombytes(payload[: len(payload) - len(payload) % fds.itemsize])
            self.fds.extend(fds)
            if not data:
                return None
            self.buffer += data
        end = self.buffer.index(b"\n")
        line = bytes(self.buffer[:end])
        del self.buffer[: end + 1]
        return line

    def next_reply(self, what: str) -> dict[str, object]:
        line = self.next_raw()
        if line is None:
            raise errors.Unavailable(
                f"shim socket {self.socket_path}: the shim closed the connection during {what}"
            )
        try:
            reply = json.loads(line)
        except ValueError:
            raise errors.Terminal(
                f"shim socket {self.socket_path}: reply is not JSON: {line[:200]!r}"
            ) from None
        if not isinstance(reply, dict):
            raise errors.Terminal(f"shim socket {self.socket_path}: reply is not an object")
        if reply.get("ok") is False:
            _raise_error(self.socket_path, reply)
        return reply

    def close_fds(self) -> None:
        for fd in self.fds:
            os.close(fd)
        self.fds.clear()


class ExecSession:
    """A process started with ``exec``: its pid, its pty (if any), its exit code.

    Holds the connection to the shim until :meth:`wait` has the exit code or
    :meth:`close` is called; closing it earlier makes the shim let go of the
    pty (the process then gets SIGHUP once the caller closes ``pty`` too).
    """

    def __init__(self, lines: _Lines, started: dict[str, object], pty: int | None) -> None:
        self._lines = lines
        self.exec_id = str(started.get("exec_id"))
        pid = started.get("pid")
        self.pid = pid if isinstance(pid, int) else 0
        #: the pty master (tty only): read the output from it, write the input to it
        self.pty = pty
        self.exit_code: int | None = None

    def wait(self, timeout: float | None = None) -> int:
        """Block until the process exits; its exit code (128+signal when killed).

        Raises :class:`runtime.errors.Unavailable` on timeout (the process runs on).
        """
        if self.exit_code is not None:
            return self.exit_code
        self._lines.sock.settimeout(timeout)
        try:
            reply = self._lines.next_reply("exec")
        except TimeoutError:
            raise errors.Unavailable(f"exec {self.exec_id} still runs after {timeout}s") from None
        except OSError as exc:
            raise errors.Unavailable(
                f"exec {self.exec_id}: connection to the shim: {exc}"
            ) from None
        result = reply.get("result")
        code = result.get("exit_code") if isinstance(result, dict) else None
        if not isinstance(code, int):
            raise errors.Terminal(f"exec {self.exec_id}: malformed exit reply {reply!r}")
        self.exit_code = code
        return code

    def resize(self, rows: int, cols: int) -> None:
        """Set the pty's size (through the shim, which keeps the master too)."""
        ShimClient(self._lines.socket_path).call(
            "resize", {"exec_id": self.exec_id, "rows": rows, "cols": cols}
        )

    def close(self) -> None:
        """Drop the connection and our copy of the pty (idempotent)."""
        self._lines.sock.close()
        self._lines.close_fds()
        if self.pty is not None:
            os.close(self.pty)
            self.pty = None

    def __enter__(self) -> ExecSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ShimClient:
    def __init__(self, socket_path: str, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.socket_path = socket_path
        self.timeout = timeout

    def call(
        self,
        op: str,
        params: dict[str, object] | None = None,
        *,
        reply_timeout: float | None = -1.0,
    ) -> dict[str, object]:
        """Send one request, return its result; raise its error category.

        ``reply_timeout``: seconds to wait for the reply (None: forever; negative:
        the client's default).
        """
        wait = self.timeout if reply_timeout is not None and reply_timeout < 0 else reply_timeout
        try:
            sock = connect(self.socket_path, wait)
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            raise errors.Unavailable(
                f"shim socket {self.socket_path}: {exc.strerror or exc}; "
                "the shim is not running (probe the bundle to learn why)"
            ) from None
        except OSError as exc:
            raise errors.Unavailable(f"shim socket {self.socket_path}: {exc}") from None
        with sock:
            try:
                sock.sendall(protocol.encode({"op": op, **(params or {})}))
                reply = self._read_reply(sock)
            except TimeoutError:
                raise errors.Unavailable(
                    f"shim socket {self.socket_path}: no reply to {op!r} within {wait}s"
                ) from None
            except OSError as exc:
                raise errors.Unavailable(
                    f"shim socket {self.socket_path}: {op!r} failed: {exc}"
                ) from None
        if reply.get("ok") is True:
            result = reply.get("result")
            return result if isinstance(result, dict) else {}
        _raise_error(self.socket_path, reply)
        raise AssertionError("unreachable")

    def _read_reply(self, sock: socket.socket) -> dict[str, object]:
        data = bytearray()
        while b"\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionResetError("the shim closed the connection without a reply")
            data += chunk
            if len(data) > protocol.MAX_RESPONSE:
                raise errors.Terminal(f"shim socket {self.socket_path}: reply too large")
        line = bytes(data[: data.index(b"\n")])
        try:
            reply = json.loads(line)
        except ValueError:
            raise errors.Terminal(
                f"shim socket {self.socket_path}: reply is not JSON: {line[:200]!r}"
            ) from None
        if not isinstance(reply, dict):
            raise errors.Terminal(f"shim socket {self.socket_path}: reply is not an object")
        return reply

    # verbs ---------------------------------------------------------------

    def state(self) -> dict[str, object]:
        """``status`` (running/restarting/stopped), ``pid``, ``exit_code``, ``restart_count``…"""
        return self.call("state")

    def wait(self, timeout: float | None = None, condition: str = "stopped") -> dict[str, object]:
        """Block until the container has ``stopped`` for good (or is ``not-running``).

        With ``timeout``, returns the current state with ``timed_out: true`` when
        it passes first. A shim that has already exited answers from its exit file.
        """
        params: dict[str, object] = {"condition": condition}
        if timeout is not None:
            params["timeout"] = timeout
        sock_timeout = None if timeout is None else timeout + self.timeout
        try:
            return self.call("wait", params, reply_timeout=sock_timeout)
        except errors.Unavailable as exc:
            return self._ended_or_raise(exc)

    def kill(self, signal: int | str, all: bool = False) -> dict[str, object]:
        return self.call("kill", {"signal": signal, "all": all})

    def stop(
        self, signal: int | str | None = None, timeout: float | None = None
    ) -> dict[str, object]:
        """Stop for good (no restart); returns the final state with the exit status."""
        params: dict[str, object] = {}
        if signal is not None:
            params["signal"] = signal
        if timeout is not None:
            params["timeout"] = timeout
        # without a timeout the shim uses its own (--stop-timeout) and then SIGKILLs:
        # a reply is certain, so block for it
        sock_timeout = None if timeout is None else timeout + self.timeout
        try:
            return self.call("stop", params, reply_timeout=sock_timeout)
        except errors.Unavailable as exc:
            return self._ended_or_raise(exc)

    def _ended_or_raise(self, exc: errors.Unavailable) -> dict[str, object]:
        """The final state from the ``exit`` file beside the socket (the shim's state dir).

        A shim closes its socket right after writing that file, so a request
        that races its exit is refused or reset: the file has the answer. No
        file: the shim is gone without one (lost) — re-raise.
        """
        record = statedir.read_exit(os.path.dirname(self.socket_path))
        if record is None:
            raise exc
        return {**record, "status": "stopped", "pid": None, "final": True}

    def shutdown(self) -> dict[str, object]:
        return self.call("shutdown")

    def _connect(self) -> socket.socket:
        try:
            return connect(self.socket_path, self.timeout)
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            raise errors.Unavailable(
                f"shim socket {self.socket_path}: {exc.strerror or exc}; "
                "the shim is not running (probe the bundle to learn why)"
            ) from None
        except OSError as exc:
            raise errors.Unavailable(f"shim socket {self.socket_path}: {exc}") from None

    def exec(
        self,
        args: Sequence[str],
        *,
        env: Sequence[str] = (),
        cwd: str | None = None,
        user: dict[str, object] | None = None,
        tty: bool = False,
        stdio: tuple[int, int, int] | None = None,
    ) -> ExecSession:
        """Start ``args`` in the running container; return once it runs.

        Without ``tty``, ``stdio`` are the fds the process gets as 0, 1, 2
        (default: /dev/null for all three); they are passed to the shim, the
        caller keeps its own copies. With ``tty``, the session's ``pty`` is the
        master of a pty made in the container.
        """
        request: dict[str, object] = {"op": "exec", "args": list(args), "tty": tty}
        if env:
            request["env"] = list(env)
        if cwd is not None:
            request["cwd"] = cwd
        if user is not None:
            request["user"] = user
        sock = self._connect()
        lines = _Lines(sock, self.socket_path)
        null = -1
        try:
            fds: list[int] = []
            if not tty:
                if stdio is None:
                    null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
                    stdio = (null, null, null)
                fds = list(stdio)
            ancillary = (
                [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds).tobytes())]
                if fds
                else []
            )
            sock.sendmsg([protocol.encode(request)], ancillary)
            reply = lines.next_reply("exec")
        except TimeoutError:
            sock.close()
            lines.close_fds()
            raise errors.Unavailable(
                f"shim socket {self.socket_path}: exec did not start"
            ) from None
        except OSError as exc:
            sock.close()
            lines.close_fds()
            raise errors.Unavailable(
                f"shim socket {self.socket_path}: exec failed: {exc}"
            ) from None
        except BaseException:
            sock.close()
            lines.close_fds()
            raise
        finally:
            if null >= 0:
                os.close(null)
        result = reply.get("result")
        started = result if isinstance(result, dict) else {}
        pty = None
        if started.get("tty"):
            if not lines.fds:
                sock.close()
                raise errors.Terminal(f"exec {started.get('exec_id')}: the shim sent no pty")
            pty = lines.fds.pop(0)
        lines.close_fds()
        return ExecSession(lines, started, pty)

    def logs(
        self,
        *,
        tail: int | None = None,
        since: float | str | None = None,
        follow: bool = False,
    ) -> Iterator[dict[str, str]]:
        """The container's log records from its shim (see ``protocol``'s ``logs``).

        With ``follow`` it ends when the container stops for good; if the shim
        goes away first (or drops a slow reader), :class:`runtime.errors.Unavailable`.
        """
        request: dict[str, object] = {"op": "logs", "follow": follow}
        if tail is not None:
            request["tail"] = tail
        if since is not None:
            request["since"] = since
        sock = self._connect()
        sock.settimeout(None if follow else self.timeout)
        lines = _Lines(sock, self.socket_path)
        try:
            sock.sendall(protocol.encode(request))
            while True:
                try:
                    raw = lines.next_raw()
                except OSError as exc:
                    raise errors.Unavailable(
                        f"shim socket {self.socket_path}: logs stream broke: {exc}"
                    ) from None
                if raw is None:
                    raise errors.Unavailable(
                        f"shim socket {self.socket_path}: the logs stream ended early "
                        "(the shim exited or dropped a slow reader)"
                    )
                try:
                    record = json.loads(raw)
                except ValueError:
                    continue
                if not isinstance(record, dict):
                    continue
                if "ok" in record:
                    if record.get("ok") is False:
                        _raise_error(self.socket_path, record)
                    return
                if isinstance(record.get("log"), str):
                    yield record
        finally:
            sock.close()
            lines.close_fds()

    def wait_gone(self, timeout: float = DEFAULT_TIMEOUT) -> None:
        """Poll until the shim's socket is gone (it removes it as it exits)."""
        deadline = time.monotonic() + timeout
        while os.path.exists(self.socket_path):
            if time.monotonic() > deadline:
                raise errors.Unavailable(f"shim socket {self.socket_path} still there")
            time.sleep(0.01)
