"""Talk to a shim over its control socket (engine side).

One connection per request: a shim serves a handful of requests a minute, and
a fresh connection per call has no state to get wrong (a half-read reply, a
shim that exited between calls). A socket that refuses or is missing means
the shim is gone: :class:`runtime.errors.Unavailable` — ask
:func:`runtime.shim.restore.probe` what became of the container. Error replies
are raised as the category the shim named.
"""

from __future__ import annotations

import json
import os
import socket
import time

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
        error = reply.get("error")
        if not isinstance(error, dict):
            raise errors.Terminal(f"shim socket {self.socket_path}: malformed reply {reply!r}")
        category = getattr(errors, str(error.get("category")), None)
        if not (isinstance(category, type) and issubclass(category, errors.RuntimeError_)):
            category = errors.Terminal
        raise category(str(error.get("message")))

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

    def wait_gone(self, timeout: float = DEFAULT_TIMEOUT) -> None:
        """Poll until the shim's socket is gone (it removes it as it exits)."""
        deadline = time.monotonic() + timeout
        while os.path.exists(self.socket_path):
            if time.monotonic() > deadline:
                raise errors.Unavailable(f"shim socket {self.socket_path} still there")
            time.sleep(0.01)
