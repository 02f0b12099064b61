"""``apply`` and ``diff`` through a running daemon, without the full CLI.

A no-op re-apply of 50 containers costs the daemon ~25 ms; the full CLI's start
(click, the API's typed client with its dataclasses, ``http.client``) cost ~90 ms
more, so a CLI a tenth as slow as docker-compose was out of reach. When the
command line is one this module understands and a daemon answers on the
socket, the request is made here with the stdlib alone: the same body the
typed client sends (a test holds the two side by side), the same output and
exit codes (:mod:`reconciler.cli.report`). Anything else — an option not
listed here, ``-h``, a saved plan, ``diff --out``, ``PYRECONCILE_DAEMON=never``,
no daemon, a socket that refuses us — returns None before anything is read
or sent, and the full CLI takes the command as it always did.
"""

from __future__ import annotations

import json
import os
import socket
import sys
from collections.abc import Iterator
from typing import Any

from reconciler.cli import report
from reconciler.daemon import address

__all__ = ["Command", "parse", "run"]

#: PYRECONCILE_DAEMON values that let a daemon take the command (the full CLI
#: reports the others, and runs in-process for ``never``)
_DAEMON_MAY = {"auto", "", "always", "1", "on", "yes", "require"}

_FLAGS: dict[str, dict[str, tuple[str, bool]]] = {
    "apply": {
        "-q": ("quiet", True),
        "--quiet": ("quiet", True),
        "--prune": ("prune", True),
        "--no-prune": ("prune", False),
        "--prune-volumes": ("prune_volumes", True),
        "--allow-data-loss": ("allow_data_loss", True),
        "--wait": ("wait", True),
    },
    "diff": {
        "--prune": ("prune", True),
        "--no-prune": ("prune", False),
        "--prune-volumes": ("prune_volumes", True),
        "--fail-on-destructive": ("fail_on_destructive", True),
    },
}
_VALUES: dict[str, dict[str, str]] = {
    "apply": {"--stack": "stack", "--timeout": "timeout", "-f": "file", "--file": "file"},
    "diff": {
        "--stack": "stack",
        "-o": "output",
        "--output": "output",
        "--exit-code-style": "exit_code_style",
        "-f": "file",
        "--file": "file",
    },
}
_CHOICES = {"output": ("text", "json"), "exit_code_style": ("terraform", "diff")}
_DEFAULTS: dict[str, Any] = {
    "stack": None,
    "quiet": False,
    "prune": True,
    "prune_volumes": False,
    "allow_data_loss": False,
    "wait": False,
    "timeout": 300.0,
    "output": "text",
    "exit_code_style": "terraform",
    "fail_on_destructive": False,
}
MAX_ANSWER = 64 << 20  # a diff's rendered plan, or one progress line


class Command:
    """A command line this module can send: ``apply`` or ``diff`` and its options."""

    def __init__(self, name: str, run_root: str | None) -> None:
        self.name = name
        self.run_root = run_root
        self.files: list[str] = []
        self.options: dict[str, Any] = dict(_DEFAULTS)


def parse(argv: list[str]) -> Command | None:
    """``argv`` as a :class:`Command`, or None when the full CLI must read it."""
    args = list(argv)
    run_root = None
    while args and args[0].startswith("--"):
        key, eq, value = args.pop(0).partition("=")
        if key not in ("--root", "--run-root"):
            return None
        if not eq:
            if not args:
                return None
            value = args.pop(0)
        if key == "--run-root":
            run_root = value
    if not args or args[0] not in _FLAGS:
        return None
    command = Command(args.pop(0), run_root)
    flags, values = _FLAGS[command.name], _VALUES[command.name]
    while args:
        arg = args.pop(0)
        if arg in flags:
            field, flag = flags[arg]
            command.options[field] = flag
            continue
        key, eq, value = arg.partition("=") if arg.startswith("--") else (arg, "", "")
        if key not in values:
            return None  # a PLAN, --out, -h, -v, short options run together…
        if not eq:
            if not args:
                return None
            value = args.pop(0)
        field = values[key]
        if field == "file":
            command.files.append(value)
        elif field == "timeout":
            try:
                command.options["timeout"] = float(value)
            except ValueError:
                return None
        elif field in _CHOICES and value not in _CHOICES[field]:
            return None
        else:
            command.options[field] = value
    return command if command.files else None


def run(argv: list[str]) -> int | None:
    """Carry out ``argv`` through the daemon and return the exit code; None:
    nothing was done, the full CLI must take it."""
    if os.environ.get("PYRECONCILE_DAEMON", "auto").lower() not in _DAEMON_MAY:
        return None
    command = parse(argv)
    if command is None:
        return None
    sock = _connect(address.default_socket(command.run_root))
    if sock is None:
        return None
    with sock:
        try:
            if command.name == "apply":
                return _apply(sock, command)
            return _diff(sock, command)
        except (OSError, ValueError) as exc:
            return _fail(f"the daemon's answer broke off: {exc}")


def _connect(path: str) -> socket.socket | None:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    sock.settimeout(5.0)
    try:
        sock.connect(path)
    except OSError:  # no daemon, or one we may not use: the full CLI says which
        sock.close()
        return None
    sock.settimeout(None)
    return sock


def _inputs(command: Command) -> dict[str, Any]:
    """What the daemon reads the manifests with: as ``remote_cmds._inputs``."""
    return {
        "files": command.files,
        "cwd": os.getcwd(),
        "stdin": sys.stdin.read() if "-" in command.files else None,
        "environ": dict(os.environ),
        "stack": command.options["stack"],
        "prune": command.options["prune"],
        "pruneVolumes": command.options["prune_volumes"],
    }


def apply_body(command: Command) -> dict[str, Any]:
    """The ``POST /v1/stacks/apply`` body (``api_types.ApplyRequest``, encoded)."""
    o = command.options
    return {
        **_inputs(command),
        "allowDataLoss": o["allow_data_loss"],
        "plan": None,
        "planPath": "",
        "wait": o["wait"],
        "timeout": o["timeout"],
    }


def diff_body(command: Command) -> dict[str, Any]:
    """The ``POST /v1/stacks/diff`` body (``api_types.DiffRequest``, encoded)."""
    return {
        **_inputs(command),
        "output": command.options["output"],
        "colour": sys.stdout.isatty() and "NO_COLOR" not in os.environ,
        "save": False,
    }


def _apply(sock: socket.socket, command: Command) -> int:
    quiet = command.options["quiet"]
    status, _, body = _request(sock, "/v1/stacks/apply", apply_body(command))
    if status != 200:
        return _fail(_error(status, b"".join(body))["message"])
    for raw in _lines(body):
        line = json.loads(raw)
        event = line.get("event")
        if (text := _progress(line, quiet)) is not None:
            _err(text)
        if event == "result" and line.get("apply") and not quiet:
            done = line["apply"]
            if done.get("up"):
                _out(f"stack {done['stack']}: up")
            else:
                notes = [(n["kind"], n["name"], n["message"]) for n in done.get("notes", ())]
                for text in report.applied_lines(
                    done["stack"], done["executed"], done["rounds"], notes
                ):
                    _out(text)
        elif event == "error" and line.get("error"):
            error = line["error"]
            if error.get("reason") == "load_failed":
                return _load_failed(error, 1)
            return _fail(error["message"], 4 if error.get("reason") == "wait_timed_out" else 1)
    return 0


def _diff(sock: socket.socket, command: Command) -> int:
    style = command.options["exit_code_style"]
    error_code = 1 if style == "terraform" else 2
    status, _, body = _request(sock, "/v1/stacks/diff", diff_body(command))
    data = b"".join(body)
    if status != 200:
        error = _error(status, data)
        if error.get("reason") == "load_failed":
            return _load_failed(error, error_code)
        return _fail(error["message"], error_code)
    outcome = json.loads(data)
    sys.stdout.write(outcome["rendered"])
    sys.stdout.flush()
    return report.diff_exit_code(
        in_sync=bool(outcome["inSync"]),
        blocked=bool(outcome["blocked"]),
        destructive=bool(outcome["destructive"]),
        exit_code_style=style,
        fail_on_destructive=command.options["fail_on_destructive"],
    )


def _progress(line: dict[str, Any], quiet: bool) -> str | None:
    return report.progress_line(
        str(line.get("event")),
        line.get("op"),
        line.get("resource"),
        str(line.get("message", "")),
        quiet=quiet,
    )


def _error(status: int, data: bytes) -> dict[str, Any]:
    """An error answer's body (``api_types.ErrorBody``), as the typed client reads it."""
    try:
        body = json.loads(data)
        if isinstance(body, dict) and isinstance(body.get("message"), str):
            return body
    except ValueError:
        pass
    text = data.decode(errors="replace").strip()[:500]
    return {"message": f"the daemon answered {status}: {text or 'no details'}"}


def _load_failed(error: dict[str, Any], code: int) -> int:
    problems = error.get("problems") or []
    for problem in problems:
        _err(str(problem))
    return _fail(report.problems_found(problems), code)


def _fail(message: str, code: int = 1) -> int:
    _err(f"error: {message}")
    return code


def _out(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def _err(text: str) -> None:
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


# -- HTTP/1.1, as much as the daemon's two answers need ---------------------------


def _request(
    sock: socket.socket, path: str, body: dict[str, Any]
) -> tuple[int, dict[str, str], Iterator[bytes]]:
    """POST ``body`` as JSON; the status, the headers, and the body's pieces as they come."""
    payload = json.dumps(body).encode()
    head = (
        f"POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n"
    )
    sock.sendall(head.encode() + payload)
    reader = _Reader(sock)
    status_line = reader.line()
    parts = status_line.split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
        raise ValueError(f"not an HTTP answer: {status_line[:80]!r}")
    headers: dict[str, str] = {}
    while line := reader.line():
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding", "").lower() == "chunked":
        pieces = reader.chunks()
    elif "content-length" in headers:
        pieces = reader.exactly(int(headers["content-length"]))
    else:
        pieces = reader.to_end()
    return int(parts[1]), headers, pieces


class _Reader:
    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._buf = b""

    def _more(self) -> bool:
        data = self._sock.recv(65536)
        self._buf += data
        if len(self._buf) > MAX_ANSWER:
            raise ValueError("an answer larger than 64 MiB")
        return bool(data)

    def line(self) -> bytes:
        while b"\r\n" not in self._buf:
            if not self._more():
                raise ValueError("the connection closed in the middle of a line")
        line, _, self._buf = self._buf.partition(b"\r\n")
        return line

    def exactly(self, n: int) -> Iterator[bytes]:
        while len(self._buf) < n:
            if not self._more():
                raise ValueError("the connection closed before the answer's end")
        yield self._buf[:n]

    def to_end(self) -> Iterator[bytes]:
        while self._more():
            pass
        yield self._buf

    def chunks(self) -> Iterator[bytes]:
        while True:
            size = int(self.line().split(b";")[0], 16)
            if size == 0:
                while self.line():  # trailers, then the blank line
                    pass
                return
            while len(self._buf) < size + 2:
                if not self._more():
                    raise ValueError("the connection closed inside a chunk")
            yield self._buf[:size]
            self._buf = self._buf[size + 2 :]


def _lines(pieces: Iterator[bytes]) -> Iterator[bytes]:
    """JSON lines (``application/x-ndjson``) from the body's pieces, as they come."""
    pending = b""
    for piece in pieces:
        pending += piece
        while b"\n" in pending:
            line, _, pending = pending.partition(b"\n")
            if line.strip():
                yield line
    if pending.strip():
        yield pending
