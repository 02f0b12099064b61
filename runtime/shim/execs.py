"""``exec``: more processes in a running container, started and reaped by its shim.

The request names what to run (``args``, and optionally ``env``, ``cwd``,
``user``, ``tty``); the rest of the process — capabilities, rlimits,
``noNewPrivileges``, the container's env and user — comes from the
container's own ``config.json``, as Docker's exec does (:func:`build_process`).

Stdio: without a TTY the client passes its three fds over the control socket
(``SCM_RIGHTS``) and they become the process's fds 0-2: the output goes
straight to the client, the shim copies nothing. With a TTY the runtime makes
a pty inside the container and hands its master to the shim (the OCI
``--console-socket`` protocol); the shim passes a copy to the client with the
``started`` reply and keeps one, so ``resize`` works from any connection.
When the exec's connection closes the shim closes its copy: with the client's
gone too, the pty hangs up and the process gets SIGHUP, like a closed
terminal.

The process is started detached (``exec --detach``): the runtime's own
process exits at once and the exec'd process, orphaned, is reparented to the
shim (a child subreaper), which reaps it (:meth:`Execs.reaped`) and answers
the waiter with its exit code (128+signal when killed). A process still
registered when the container ends for good is answered with code 137.

Stdlib only (runs inside the shim).
"""

from __future__ import annotations

import _socket
import fcntl
import os
import sys

from runtime import errors
from runtime.shim import jsonio, protocol, statedir

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from runtime.shim.events import EventLog
    from runtime.shim.runtimes import OciRuntime

    Reply = Callable[[dict[str, object]], None]

_TIOCSWINSZ = 0x5414
CONSOLE_TIMEOUT = 10.0
MAX_EXECS = 64
ABANDONED_EXIT_CODE = 137


class ExecProcess:
    __slots__ = ("exec_id", "master", "on_exit", "pid")

    def __init__(self, exec_id: str, pid: int, master: int | None, on_exit: Reply) -> None:
        self.exec_id = exec_id
        self.pid = pid
        self.master = master
        self.on_exit = on_exit

    def close_master(self) -> None:
        if self.master is not None:
            os.close(self.master)
            self.master = None


def build_process(
    config_process: dict[str, object], request: dict[str, object]
) -> dict[str, object]:
    """The OCI process of an exec: the container's, with the request's overrides.

    ``args`` (required, non-empty strings); ``env`` ("K=V" items) merged over
    the container's (same key: the request wins); ``cwd``; ``user`` as
    ``{"uid", "gid", "additionalGids"}`` (names are resolved by the engine,
    which can read the container's /etc/passwd); ``tty``. Raises
    :class:`protocol.ProtocolError` for a malformed request.
    """
    args = request.get("args")
    if not isinstance(args, list) or not args or not all(isinstance(a, str) for a in args):
        raise protocol.ProtocolError("'args' must be a non-empty list of strings")
    process = dict(config_process)
    process.pop("consoleSize", None)
    process["args"] = list(args)
    process["terminal"] = protocol.get_bool(request, "tty")
    env = request.get("env", [])
    if not isinstance(env, list) or not all(isinstance(e, str) and "=" in e for e in env):
        raise protocol.ProtocolError("'env' must be a list of 'KEY=value' strings")
    if env:
        merged: dict[str, str] = {}
        base = process.get("env")
        for item in base if isinstance(base, list) else []:
            key, _, value = str(item).partition("=")
            merged[key] = value
        for item in env:
            key, _, value = item.partition("=")
            merged[key] = value
        process["env"] = [f"{k}={v}" for k, v in merged.items()]
    cwd = request.get("cwd")
    if cwd is not None:
        if not isinstance(cwd, str) or not cwd.startswith("/"):
            raise protocol.ProtocolError("'cwd' must be an absolute path")
        process["cwd"] = cwd
    user = request.get("user")
    if user is not None:
        if not isinstance(user, dict):
            raise protocol.ProtocolError("'user' must be {uid, gid, additionalGids}")
        ids = [user.get("uid"), user.get("gid"), *(user.get("additionalGids") or [])]
        if not all(isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in ids):
            raise protocol.ProtocolError("'user' ids must be integers >= 0")
        process["user"] = {
            "uid": user["uid"],
            "gid": user["gid"],
            "additionalGids": list(user.get("additionalGids") or []),
        }
    return process


class Execs:
    """The exec'd processes of one shim, by pid and by exec id."""

    def __init__(
        self, container_id: str, bundle: str, runtime: OciRuntime, events: EventLog
    ) -> None:
        self.container_id = container_id
        self.bundle = bundle
        self.runtime = runtime
        self.events = events
        self._by_pid: dict[int, ExecProcess] = {}
        self._by_id: dict[str, ExecProcess] = {}
        self._exited: dict[int, int] = {}  # reaped before they were registered
        self._serial = 0

    def _config_process(self) -> dict[str, object]:
        with open(statedir.path(self.bundle, "config.json"), "rb") as f:
            config = jsonio.loads(f.read())
        process = config.get("process") if isinstance(config, dict) else None
        if not isinstance(process, dict):
            raise errors.Terminal(f"container {self.container_id}: config.json has no process")
        return process

    def start(
        self, request: dict[str, object], fds: list[int], on_exit: Reply
    ) -> tuple[dict[str, object], int | None]:
        """Start the process; return the ``started`` result and the pty master (tty only).

        ``fds`` are the client's stdin, stdout, stderr (without a TTY); the
        caller keeps and closes them.
        """
        process = build_process(self._config_process(), request)
        tty = bool(process["terminal"])
        if not tty and len(fds) != 3:
            raise protocol.ProtocolError(
                f"exec without a tty needs 3 fds (stdin, stdout, stderr), got {len(fds)}"
            )
        if len(self._by_id) >= MAX_EXECS:
            raise errors.Unavailable(
                f"container {self.container_id} runs {MAX_EXECS} execs already: try again later"
            )
        self._serial += 1
        exec_id = f"{os.getpid()}-{self._serial}"
        pid_file = statedir.path(self.bundle, f"exec-{self._serial}.pid")
        console: _Console | None = _Console(self._serial) if tty else None
        null = -1
        try:
            if tty:
                null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
                stdio = (null, null, null)
            else:
                stdio = (fds[0], fds[1], fds[2])
            pid = self.runtime.exec(
                process, stdio, pid_file, console.path if console is not None else None
            )
            master = console.receive() if console is not None else None
        finally:
            if console is not None:
                console.close()
            if null >= 0:
                os.close(null)
            statedir.remove(self.bundle, os.path.basename(pid_file))
        entry = ExecProcess(exec_id, pid, master, on_exit)
        self._by_pid[pid] = entry
        self._by_id[exec_id] = entry
        self.events.info("exec_started", exec_id=exec_id, pid=pid, tty=tty, args=process["args"])
        status = self._exited.pop(pid, None)
        if status is not None:  # pragma: no cover - reaped while we were registering
            self.reaped(pid, status)
        return {"event": "started", "exec_id": exec_id, "pid": pid, "tty": tty}, master

    def reaped(self, pid: int, status: int) -> None:
        """A child of the shim exited: if it is one of ours, answer its waiter."""
        entry = self._by_pid.pop(pid, None)
        if entry is None:
            return
        self._by_id.pop(entry.exec_id, None)
        code = os.waitstatus_to_exitcode(status)
        exit_code = 128 - code if code < 0 else code
        entry.close_master()
        self.events.info("exec_exited", exec_id=entry.exec_id, pid=pid, exit_code=exit_code)
        entry.on_exit({"event": "exited", "exec_id": entry.exec_id, "exit_code": exit_code})

    def resize(self, exec_id: str, rows: int, cols: int) -> None:
        entry = self._by_id.get(exec_id)
        if entry is None:
            raise errors.NotFound(f"container {self.container_id} has no exec {exec_id!r}")
        if entry.master is None:
            raise errors.FailedPrecondition(f"exec {exec_id} has no tty to resize")
        size = b"".join(n.to_bytes(2, sys.byteorder) for n in (rows, cols, 0, 0))
        fcntl.ioctl(entry.master, _TIOCSWINSZ, size)

    def detach(self, exec_id: str) -> None:
        """The exec's connection closed: let go of its pty (the process gets SIGHUP)."""
        entry = self._by_id.get(exec_id)
        if entry is not None:
            entry.close_master()

    def abandon_all(self) -> None:
        """The container ended for good: answer every waiter still registered."""
        for entry in list(self._by_id.values()):
            self._by_id.pop(entry.exec_id, None)
            self._by_pid.pop(entry.pid, None)
            entry.close_master()
            entry.on_exit(
                {"event": "exited", "exec_id": entry.exec_id, "exit_code": ABANDONED_EXIT_CODE}
            )


class _Console:
    """A console socket for the runtime to hand a pty master over (``--console-socket``).

    Bound in a private directory under /tmp, not in the bundle: a bundle's
    path in the run root may be too long for a ``sockaddr_un``, and the runtime
    connects by path.
    """

    def __init__(self, serial: int) -> None:
        self.directory = ""
        for attempt in range(100):
            candidate = f"/tmp/pyreconcile-console-{os.getpid()}-{serial}-{attempt}"
            try:
                os.mkdir(candidate, 0o700)
            except FileExistsError:
                continue
            self.directory = candidate
            break
        else:
            raise errors.Unavailable("cannot make a console socket directory under /tmp")
        self.path = os.path.join(self.directory, "console.sock")
        self.sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM | _socket.SOCK_CLOEXEC)
        try:
            self.sock.bind(self.path)
            self.sock.listen(1)
        except BaseException:
            self.close()
            raise

    def receive(self) -> int:
        """The pty master the runtime sent (it has exited by now: the fd is queued)."""
        self.sock.settimeout(CONSOLE_TIMEOUT)
        try:
            fd, _ = self.sock._accept()  # type: ignore[attr-defined]
        except OSError as exc:
            raise errors.Terminal(f"the runtime sent no pty master: {exc}") from None
        conn = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM, 0, fd)
        try:
            conn.settimeout(CONSOLE_TIMEOUT)
            _, ancdata, _, _ = conn.recvmsg(4096, _socket.CMSG_SPACE(4), _socket.MSG_CMSG_CLOEXEC)
        finally:
            conn.close()
        received = protocol.unpack_fds(ancdata)
        if not received:
            raise errors.Terminal("the runtime's console message carried no fd")
        for extra in received[1:]:
            os.close(extra)
        return received[0]

    def close(self) -> None:
        if hasattr(self, "sock"):
            self.sock.close()
        try:
            os.unlink(self.path)
        except (FileNotFoundError, AttributeError):
            pass
        if self.directory:
            try:
                os.rmdir(self.directory)
            except OSError:
                pass
