"""Start a shim for a container, from the engine's process (CLI or daemon).

:func:`spawn_shim` execs the real interpreter (``sys.executable -I -S``, never
a PATH wrapper) with ``subprocess`` — never ``fork()`` of the caller, which may
be a threaded daemon — and a bootstrap that puts the directory holding the
``runtime`` package on ``sys.path`` (``-I -S`` drop site-packages and
PYTHONPATH) and calls :func:`runtime.shim.main.main`. The launched process
detaches the shim (double fork) and exits; the shim reports through a pipe
whose write end only it holds. ``spawn_shim`` returns when the container
runs, or raises the runtime's error (category and text as the shim saw them),
by which time the shim has removed everything it made. The caller may exit
right after: the shim lives on.

With ``fork_server`` (a run root), the shim is forked by that run root's fork
server instead (:mod:`runtime.shim.forkserver`: shared memory, a fork instead
of an interpreter start), which is started first if it is not running; when
no server can be had, the shim is exec'd as above. Either way it reports
through the same pipe.

Stopping and asking the shim is :class:`runtime.shim.client.ShimClient`'s job;
finding out what became of it after an engine restart is
:mod:`runtime.shim.restore`'s.
"""

from __future__ import annotations

import dataclasses
import fcntl
import json
import os
import selectors
import signal
import subprocess
import sys
import time

from runtime import errors
from runtime.shim import forkserver, policy, protocol, runtimes, statedir
from runtime.shim import main as shim_main

DEFAULT_TIMEOUT = 60.0

_RUNTIME_PARENT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

BOOTSTRAP = (
    "import sys; sys.path.insert(0, {path!r}); "
    "from runtime.shim import main; sys.exit(main.main(sys.argv[1:]))"
)


@dataclasses.dataclass(frozen=True)
class ShimOptions:
    """How to run one container's shim.

    ``runtime_binary`` None selects the builtin runtime (in-process library);
    otherwise a runc-compatible binary (``/usr/sbin/runc``, ``/usr/bin/crun``).
    """

    container_id: str
    bundle: str
    runtime_root: str
    log_path: str
    log_max_size: int = shim_main.DEFAULT_LOG_MAX_SIZE
    log_max_files: int = shim_main.DEFAULT_LOG_MAX_FILES
    runtime_binary: str | None = None
    restart_policy: str = "no"
    stop_signal: str = shim_main.DEFAULT_STOP_SIGNAL
    stop_timeout: float = shim_main.DEFAULT_STOP_TIMEOUT
    #: restarts done by earlier shims of the container (the shim counts on from it)
    restart_count: int = 0
    #: a run root: fork the shim from its fork server (None: exec a new interpreter)
    fork_server: str | None = None

    def argv(self) -> list[str]:
        """The shim's command-line options (what ``pyreconcile-shim`` takes)."""
        args = [
            "--id", self.container_id,
            "--bundle", os.path.abspath(self.bundle),
            "--runtime-root", os.path.abspath(self.runtime_root),
            "--log-path", os.path.abspath(self.log_path),
            "--log-max-size", str(self.log_max_size),
            "--log-max-files", str(self.log_max_files),
            "--restart", self.restart_policy,
            "--stop-signal", self.stop_signal,
            "--stop-timeout", repr(float(self.stop_timeout)),
            "--restart-count", str(self.restart_count),
        ]  # fmt: skip
        if self.runtime_binary:
            args += ["--runtime", self.runtime_binary]
        return args

    def check(self) -> None:
        """Raise :class:`runtime.errors.InvalidSpec` for options the shim would refuse."""
        try:
            policy.parse(self.restart_policy)
            protocol.parse_signal(self.stop_signal)
            shim_main.parse_args(self.argv())
        except ValueError as exc:
            raise errors.InvalidSpec(f"shim for container {self.container_id}: {exc}") from None


@dataclasses.dataclass(frozen=True)
class ShimInfo:
    pid: int
    socket_path: str
    init_pid: int
    #: the shim's ``state`` record as it sent "ready" (what the ``state`` op answers)
    state: dict[str, object] = dataclasses.field(default_factory=dict)


def bootstrap_argv(opts: ShimOptions, sync_fd: int) -> list[str]:
    code = BOOTSTRAP.format(path=_RUNTIME_PARENT)
    return [sys.executable, "-I", "-S", "-c", code, *opts.argv(), "--sync-fd", str(sync_fd)]


def spawn_shim(opts: ShimOptions, *, timeout: float = DEFAULT_TIMEOUT) -> ShimInfo:
    """Start the shim and the container; return once it runs.

    Raises the runtime's error as the shim reported it (its category from
    :mod:`runtime.errors`, its text), ``AlreadyExists`` when the container has
    a live shim, ``InvalidSpec`` for bad options, ``Unavailable`` when the shim
    does not answer within ``timeout`` seconds (it is then killed and its
    container deleted).
    """
    opts.check()
    read_fd, write_fd = os.pipe()
    proc: subprocess.Popen[bytes] | None = None
    try:
        if not (opts.fork_server and _fork(opts, write_fd)):
            executable, guard_fds = guarded_executable()
            proc = subprocess.Popen(
                bootstrap_argv(opts, write_fd),
                executable=executable,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                pass_fds=(write_fd, *guard_fds),
                cwd="/",
            )
    except OSError as exc:
        os.close(read_fd)
        raise errors.Unavailable(f"cannot start a shim with {sys.executable}: {exc}") from exc
    except BaseException:
        os.close(read_fd)
        raise
    finally:
        os.close(write_fd)
    try:
        stderr_fd = proc.stderr.fileno() if proc is not None and proc.stderr else None
        messages, stderr = _collect(read_fd, stderr_fd, timeout)
    finally:
        os.close(read_fd)
        if proc is not None:
            if proc.stderr is not None:
                proc.stderr.close()
            proc.wait()
    final = messages[-1] if messages else {}
    shim_pid = next((m.get("pid") for m in messages if m.get("event") == "started"), None)
    if final.get("event") == "ready":
        state = final.get("state")
        return ShimInfo(
            pid=int(final["pid"]),  # type: ignore[call-overload]
            socket_path=str(final["socket"]),
            init_pid=int(final["init_pid"]),  # type: ignore[call-overload]
            state=state if isinstance(state, dict) else {},
        )
    if final.get("event") == "error":
        category = getattr(errors, str(final.get("category")), None)
        if not (isinstance(category, type) and issubclass(category, errors.RuntimeError_)):
            category = errors.Terminal
        raise category(str(final.get("message")))
    if isinstance(shim_pid, int):
        _abandon(opts, shim_pid)
        raise errors.Unavailable(
            f"shim for container {opts.container_id} did not report within {timeout:.0f}s; "
            "it was killed and the container deleted"
        )
    status = f"exit status {proc.returncode}" if proc is not None else "no report"
    detail = stderr.decode(errors="replace").strip() or status
    raise errors.Unavailable(
        f"shim for container {opts.container_id} failed to start: {detail[-2000:]}"
    )


def _collect(
    sync_fd: int, stderr_fd: int | None, timeout: float
) -> tuple[list[dict[str, object]], bytes]:
    """Read the shim's messages until ready/error, EOF or timeout; and the launcher's stderr."""
    messages: list[dict[str, object]] = []
    buffers = {sync_fd: b""}
    if stderr_fd is not None:
        buffers[stderr_fd] = b""
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as sel:
        for fd in buffers:
            sel.register(fd, selectors.EVENT_READ)
        while sel.get_map():
            left = deadline - time.monotonic()
            if left <= 0:
                break
            for key, _ in sel.select(left):
                fd = int(key.fd)
                data = os.read(fd, 65536)
                if not data:
                    sel.unregister(fd)
                    continue
                buffers[fd] += data
                if fd != sync_fd:
                    continue
                *lines, buffers[fd] = buffers[fd].split(b"\n")
                for line in lines:
                    try:
                        message = json.loads(line)
                    except ValueError:
                        continue
                    if isinstance(message, dict):
                        messages.append(message)
                        if message.get("event") == "ready":
                            return messages, buffers.get(stderr_fd or -1, b"")
                        # after an error, EOF comes when the shim has exited
    return messages, buffers.get(stderr_fd or -1, b"")


def _fork(opts: ShimOptions, sync_fd: int) -> bool:
    """Have the run root's fork server fork the shim; False when there is no server
    to be had (the caller execs one instead). Raises InvalidSpec for bad options.

    Starting a server is serialised (a flock beside its socket, which threads
    of one process contend for too): shims of one run root should share one
    server's pages, not be spread over racing ones.
    """
    assert opts.fork_server is not None
    path = forkserver.socket_path(opts.fork_server, os.path.join(_RUNTIME_PARENT, "runtime"))
    try:
        forkserver.request(path, opts.argv(), sync_fd)
        return True
    except errors.Unavailable:
        pass
    try:
        lock = os.open(path + ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError:
        return False
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:  # another thread or process may have started one meanwhile
            forkserver.request(path, opts.argv(), sync_fd)
            return True
        except errors.Unavailable:
            pass
        if not _start_fork_server(path):
            return False
    finally:
        os.close(lock)
    try:
        forkserver.request(path, opts.argv(), sync_fd)
        return True
    except errors.Unavailable:
        return False


def guarded_executable() -> tuple[str | None, tuple[int, ...]]:
    """The interpreter to start shims (and fork servers) with: the guarded copy
    (:mod:`runtime.sys.exeguard`, CVE-2019-5736), as ``/proc/self/fd/N`` of an fd
    the child keeps until its exec, or the plain one where no guard can be made.

    A container's init is a fork of its shim; if the container's program is a
    ``#!/proc/self/exe`` script the kernel re-runs the shim's executable inside
    the container, and that file must not be writable from there.
    """
    from runtime.sys import exeguard

    try:
        fd, _ = exeguard.guarded_interpreter()
    except OSError:
        return None, ()
    return f"/proc/self/fd/{fd}", (fd,)


def _start_fork_server(path: str, timeout: float = DEFAULT_TIMEOUT) -> bool:
    """Start a fork server at ``path``; True once it listens (or another one does)."""
    read_fd, write_fd = os.pipe()
    code = BOOTSTRAP.format(path=_RUNTIME_PARENT)
    room = " " * forkserver.TITLE_ROOM  # where forked shims write their command lines
    try:
        executable, guard_fds = guarded_executable()
        proc = subprocess.Popen(
            [sys.executable, "-I", "-S", "-c", code, "--fork-server", str(write_fd), room],
            executable=executable,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            pass_fds=(write_fd, *guard_fds),
            cwd="/",
            env={**os.environ, forkserver.ENV_SOCKET: path},
        )
    except OSError:
        os.close(read_fd)
        return False
    finally:
        os.close(write_fd)
    try:
        with selectors.DefaultSelector() as sel:
            sel.register(read_fd, selectors.EVENT_READ)
            ready = b""
            deadline = time.monotonic() + timeout
            while b"\n" not in ready and time.monotonic() < deadline:
                if not sel.select(deadline - time.monotonic()):
                    break
                chunk = os.read(read_fd, 64)
                if not chunk:
                    break
                ready += chunk
    finally:
        os.close(read_fd)
        proc.wait()
    return ready.startswith(b"ready")


def _abandon(opts: ShimOptions, shim_pid: int) -> None:
    """A shim that never reported: kill it and delete what it may have created."""
    try:
        os.kill(shim_pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    runtime = runtimes.make(opts.runtime_binary, opts.runtime_root, opts.container_id, opts.bundle)
    try:
        runtime.delete(force=True)
    except errors.RuntimeError_:
        pass
    statedir.remove(opts.bundle, *statedir.SHIM_FILES)
