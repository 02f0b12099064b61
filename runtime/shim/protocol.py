"""The shim's control protocol: one JSON object per line, over a unix stream socket.

Request::

    {"op": "state"}
    {"op": "wait", "timeout": 5.0, "condition": "stopped" | "not-running"}
    {"op": "kill", "signal": "SIGHUP", "all": false}
    {"op": "stop", "signal": "SIGTERM", "timeout": 10.0}      # both optional
    {"op": "shutdown"}
    {"op": "exec", "args": ["sh"], "env": ["K=v"], "cwd": "/", "tty": false,
     "user": {"uid": 0, "gid": 0, "additionalGids": []}}     # + 3 fds without a tty
    {"op": "resize", "exec_id": "…", "rows": 24, "cols": 80}
    {"op": "logs", "follow": false, "tail": 10, "since": "2026-11-28T06:50:35Z"}

Every op answers with the container's state: ``id``, ``status`` (running |
restarting | stopped), ``pid`` (the init, while running), ``shim_pid``,
``restart_policy``, ``restart_count``, ``stop_requested``, ``final`` (stopped
for good: the shim is exiting), and the last exit: ``exit_code``, ``signal``,
``started_at``, ``finished_at`` (unix seconds), ``oom_killed``, ``error`` (why
the last restart failed). ``wait`` answers when the container has stopped for
good (``stopped``, the default) or is not running (``not-running``: at once
if it is not), or with ``timed_out: true``; ``stop`` sends the signal (default:
the shim's ``--stop-signal``), SIGKILLs after ``timeout`` (default:
``--stop-timeout``), never restarts, and answers once stopped for good;
``kill`` needs a running container (``all``: every process of its cgroup, via
the runtime); ``shutdown`` ends a shim whose container is not running (and
cancels a pending restart).

``exec`` runs a process in the running container (:mod:`runtime.shim.execs`):
without a TTY the request carries the process's stdin, stdout and stderr as
fds (``SCM_RIGHTS``); it answers ``{"event": "started", "exec_id", "pid",
"tty"}`` at once (with a TTY, carrying the pty master as an fd), then
``{"event": "exited", "exec_id", "exit_code"}`` on the same connection when
the process ends. ``resize`` sets an exec's pty size. ``logs`` streams the
log's records (one ``{"time", "stream", "log"}`` object per line), the last
``tail`` of them and/or those ``since`` a time, then, with ``follow``, new
ones as they are written, until the container stops for good; the stream
ends with ``{"ok": true, "result": {"event": "end"}}``. The client adds the
timestamps it wants to show: every record carries its time.

Any request may carry an ``"id"``, echoed in its reply (replies to ``wait``
and ``stop`` are deferred, so on one connection they can come after replies
to later requests). Reply::

    {"ok": true, "result": {...}}
    {"ok": false, "error": {"category": "FailedPrecondition", "message": "..."}}

``category`` names a class of :mod:`runtime.errors`; the client raises it.
Requests are bounded (:data:`MAX_REQUEST`); a malformed one gets an error
reply and never takes the shim down. Plain JSON and no framework: both ends
are a few lines, and the shim pays no import for it (stdlib only).
"""

from __future__ import annotations

import _socket
import sys

from runtime.shim import jsonio, signals

MAX_REQUEST = 64 * 1024
MAX_RESPONSE = 1024 * 1024
OPS = ("state", "wait", "kill", "stop", "shutdown", "exec", "resize", "logs")
WAIT_CONDITIONS = ("stopped", "not-running")


class ProtocolError(ValueError):
    """A request that cannot be served as sent (its text says what is wrong)."""


def encode(obj: object) -> bytes:
    return jsonio.dumps(obj).encode() + b"\n"


def ok(result: object, request_id: object = None) -> dict[str, object]:
    reply: dict[str, object] = {"ok": True, "result": result}
    if request_id is not None:
        reply["id"] = request_id
    return reply


def error(category: str, message: str, request_id: object = None) -> dict[str, object]:
    reply: dict[str, object] = {"ok": False, "error": {"category": category, "message": message}}
    if request_id is not None:
        reply["id"] = request_id
    return reply


def decode_request(line: bytes) -> dict[str, object]:
    """Parse and check one request line (without its newline)."""
    try:
        obj = jsonio.loads(line)
    except ValueError as exc:  # UnicodeDecodeError included
        raise ProtocolError(f"request is not valid JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise ProtocolError("request must be a JSON object with an 'op' field")
    op = obj.get("op")
    if op not in OPS:
        raise ProtocolError(f"unknown op {op!r}: expected one of {', '.join(OPS)}")
    return obj


def get_float(req: dict[str, object], key: str, default: float | None) -> float | None:
    value = req.get(key, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ProtocolError(f"{key!r} must be a number of seconds >= 0")
    return float(value)


def get_bool(req: dict[str, object], key: str) -> bool:
    value = req.get(key, False)
    if not isinstance(value, bool):
        raise ProtocolError(f"{key!r} must be true or false")
    return value


def parse_signal(value: object) -> int:
    """A signal from ``"SIGTERM"``, ``"TERM"``, ``15`` or ``"15"``; ProtocolError if unknown."""
    if isinstance(value, bool):
        raise ProtocolError(f"signal {value!r} is not a signal name or number")
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and value.isdigit():
        number = int(value)
    elif isinstance(value, str):
        found = signals.number(value)
        if found is None:
            raise ProtocolError(f"signal {value!r} is not known (e.g. SIGTERM, KILL, 9)")
        return found
    else:
        raise ProtocolError(f"signal {value!r} is not a signal name or number")
    if not 0 < number < signals.NSIG:
        raise ProtocolError(f"signal {value!r} is out of range 1..{signals.NSIG - 1}")
    return number


def unpack_fds(ancdata: list[tuple[int, int, bytes]]) -> list[int]:
    """The fds of ``SCM_RIGHTS`` control messages (as ``recvmsg`` returns them)."""
    fds: list[int] = []
    for level, kind, data in ancdata:
        if level == _socket.SOL_SOCKET and kind == _socket.SCM_RIGHTS:
            usable = len(data) - len(data) % 4
            for i in range(0, usable, 4):
                fds.append(int.from_bytes(data[i : i + 4], sys.byteorder, signed=True))
    return fds


def pack_fds(fds: list[int]) -> list[tuple[int, int, bytes]]:
    """``SCM_RIGHTS`` ancillary data for ``sendmsg``."""
    data = b"".join(fd.to_bytes(4, sys.byteorder, signed=True) for fd in fds)
    return [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, data)]
