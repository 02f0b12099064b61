"""The shim process: parse the options, detach, boot the container, serve until it ends.

Started by :func:`runtime.shim.launch.spawn_shim` as ``python -I -S -c
<bootstrap> --id … --bundle … --sync-fd N``, or by hand as ``pyreconcile-shim
--id … --bundle … --runtime-root … --log-path …`` (same code path; it prints
the result as JSON and exits, leaving the shim behind, like containerd's
``shim start``).

Detaching (the classic double fork): the launched process forks an
intermediate one and waits for it; that one forks the shim and exits at once,
so the shim is orphaned to PID 1 (or the nearest subreaper) and can never be
waited for by its launcher. The shim then calls ``setsid()`` (own session,
away from the launcher's terminal and process group), becomes a child
subreaper (``PR_SET_CHILD_SUBREAPER``: the container's init, orphaned when the
runtime's process exits, becomes its child), points stdio at /dev/null and
``chdir("/")``. It reports through the sync pipe: ``{"event": "started",
"pid"}`` first, then ``{"event": "ready", "pid", "init_pid", "socket"}`` once
the container runs (with ``state``, the answer to a ``state`` request at that
moment), or ``{"event": "error", "category", "message"}`` — after
removing everything it made (runtime state, socket, files).

Signals: SIGINT, SIGHUP and SIGTERM are logged and otherwise ignored — the
shim must outlive its callers and a signal to their process group, and it
never kills its container on its own. To end a shim: ``stop`` the container,
or ``shutdown`` a stopped one; SIGKILL leaves a "lost" shim that
:mod:`runtime.shim.restore` cleans up.

Stdlib only, and few imports: every shim pays for them (see the report in
``tests/integration/test_shim_footprint.py``).
"""

from __future__ import annotations

import fcntl
import os
import sys

from runtime import errors
from runtime.shim import jsonio, signals

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from runtime.shim.events import EventLog

DEFAULT_LOG_MAX_SIZE = 10 * 1024 * 1024
DEFAULT_LOG_MAX_FILES = 3
DEFAULT_STOP_SIGNAL = "SIGTERM"
DEFAULT_STOP_TIMEOUT = 10.0

USAGE = (
    "usage: pyreconcile-shim --id ID --bundle DIR --runtime-root DIR --log-path FILE "
    "[--runtime BINARY] [--restart no|always|on-failure[:N]|unless-stopped] "
    "[--stop-signal SIGTERM] [--stop-timeout 10] [--log-max-size BYTES] [--log-max-files N] "
    "[--restart-count N]"
)

_FLAGS = {
    "--id": "container_id",
    "--bundle": "bundle",
    "--runtime-root": "runtime_root",
    "--log-path": "log_path",
    "--log-max-size": "log_max_size",
    "--log-max-files": "log_max_files",
    "--runtime": "runtime_binary",
    "--restart": "restart",
    "--stop-signal": "stop_signal",
    "--stop-timeout": "stop_timeout",
    "--restart-count": "restart_count",
    "--sync-fd": "sync_fd",
}


class Options:
    """The shim's options, checked (no dataclasses: they cost the shim ~5 ms of imports)."""

    __slots__ = (
        "bundle", "container_id", "log_max_files", "log_max_size", "log_path", "restart",
        "restart_count", "runtime_binary", "runtime_root", "stop_signal", "stop_timeout",
        "sync_fd", "title",
    )  # fmt: skip

    def __init__(self, values: dict[str, str]) -> None:
        from runtime.shim import policy, protocol

        def need(key: str) -> str:
            value = values.get(key)
            if not value:
                flag = next(f for f, k in _FLAGS.items() if k == key)
                raise ValueError(f"{flag} is required\n{USAGE}")
            return value

        def number(key: str, default: float, kind: type[int] | type[float]) -> float:
            raw = values.get(key)
            if raw is None:
                return default
            try:
                value = kind(raw)
            except ValueError:
                raise ValueError(f"{key.replace('_', '-')} {raw!r} is not a number") from None
            if value < 0:
                raise ValueError(f"{key.replace('_', '-')} must be >= 0, not {raw}")
            return value

        self.container_id = need("container_id")
        if not all(c.isalnum() or c in "_.-" for c in self.container_id):
            raise ValueError(f"container id {self.container_id!r} may hold only [A-Za-z0-9_.-]")
        self.bundle = os.path.abspath(need("bundle"))
        self.runtime_root = os.path.abspath(need("runtime_root"))
        self.log_path = os.path.abspath(need("log_path"))
        self.log_max_size = int(number("log_max_size", DEFAULT_LOG_MAX_SIZE, int))
        self.log_max_files = max(1, int(number("log_max_files", DEFAULT_LOG_MAX_FILES, int)))
        self.runtime_binary = values.get("runtime_binary") or None
        self.restart = policy.parse(values.get("restart", "no"))
        try:
            self.stop_signal = protocol.parse_signal(values.get("stop_signal", DEFAULT_STOP_SIGNAL))
        except protocol.ProtocolError as exc:
            raise ValueError(str(exc)) from None
        self.stop_timeout = float(number("stop_timeout", DEFAULT_STOP_TIMEOUT, float))
        # restarts of earlier shims of this container: the count goes on from there
        self.restart_count = int(number("restart_count", 0, int))
        sync = values.get("sync_fd")
        self.sync_fd = int(sync) if sync is not None and sync.isdigit() else None
        #: the command line a forked shim shows (the server's otherwise)
        self.title: list[str] | None = None
        if not os.path.isfile(os.path.join(self.bundle, "config.json")):
            raise ValueError(f"bundle {self.bundle} has no config.json: write the bundle first")


def parse_args(argv: list[str]) -> Options:
    """``--flag value`` or ``--flag=value``; ValueError with the reason and the usage."""
    values: dict[str, str] = {}
    items = iter(argv)
    for item in items:
        flag, eq, value = item.partition("=")
        if flag in ("-h", "--help"):
            raise ValueError(USAGE)
        if flag not in _FLAGS:
            raise ValueError(f"unknown option {item!r}\n{USAGE}")
        if not eq:
            try:
                value = next(items)
            except StopIteration:
                raise ValueError(f"{flag} needs a value\n{USAGE}") from None
        values[_FLAGS[flag]] = value
    return Options(values)


def report_error(sync_fd: int, category: str, message: str) -> None:
    """Say on a sync pipe that the shim could not start (and close it)."""
    sync = _Sync(sync_fd)
    sync.send({"event": "error", "category": category, "message": message})
    sync.close()


class _Sync:
    """The pipe to the launcher; a launcher that went away is not an error."""

    def __init__(self, fd: int | None) -> None:
        self.fd = fd

    def send(self, message: dict[str, object]) -> None:
        if self.fd is None:
            return
        try:
            os.write(self.fd, jsonio.dumps(message).encode() + b"\n")
        except OSError:
            pass

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["--fork-server"] and len(args) >= 2 and args[1].isdigit():
        from runtime.shim import forkserver  # a server of shims (see there)

        return forkserver.serve_main(int(args[1]))
    sync_fd = _sync_fd_of(args)
    try:
        opts = parse_args(args)
    except ValueError as exc:
        if sync_fd is not None:
            _Sync(sync_fd).send({"event": "error", "category": "InvalidSpec", "message": str(exc)})
        else:
            print(f"pyreconcile-shim: {exc}", file=sys.stderr)
        return 2
    result_fd = None
    if opts.sync_fd is None:  # by hand: wait for the result here and print it
        result_fd, opts.sync_fd = os.pipe()
    child = os.fork()
    if child == 0:
        try:
            if result_fd is not None:
                os.close(result_fd)
            if os.fork() == 0:
                os._exit(run_shim(opts))
        finally:
            os._exit(0)
    os.close(opts.sync_fd)
    os.waitpid(child, 0)
    if result_fd is None:
        return 0
    with os.fdopen(result_fd, "rb") as f:
        final: dict[str, object] = {"event": "error", "message": "the shim exited without a word"}
        for line in f:
            message = jsonio.loads(line)
            if isinstance(message, dict) and message.get("event") in ("ready", "error"):
                final = message
                break
    print(jsonio.dumps(final))
    return 0 if final.get("event") == "ready" else 1


def _sync_fd_of(argv: list[str]) -> int | None:
    for index, item in enumerate(argv):
        value = None
        if item.startswith("--sync-fd="):
            value = item.partition("=")[2]
        elif item == "--sync-fd" and index + 1 < len(argv):
            value = argv[index + 1]
        if value is not None and value.isdigit():
            return int(value)
    return None


def _detach() -> None:
    os.setsid()
    # Signals the launcher ignored (nohup, a shell's background job) would be
    # ignored in every container too: back to default, except the two Python
    # ignores for its own sake (the runtime drivers reset those in the child).
    keep = {signals.SIGKILL, signals.SIGSTOP, signals.SIGPIPE, signals.SIGXFSZ}
    for sig in signals.valid_signals() - keep:
        try:
            if signals.is_ignored(sig):
                signals.set_default(sig)
        except (OSError, ValueError):
            pass
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    if null > 2:
        os.close(null)
    os.chdir("/")


def run_shim(opts: Options) -> int:
    """The long-lived shim. Returns its exit status (the caller ``_exit``s with it).

    After an error report the sync pipe is left open on purpose: the kernel
    closes it as the process exits, so the launcher's EOF means "the shim is
    gone", and ``spawn_shim`` returns only then (nothing left behind).
    """
    assert opts.sync_fd is not None
    sync = _Sync(opts.sync_fd)
    os.set_inheritable(opts.sync_fd, False)
    try:
        from runtime import sys as linux

        # first: the container's create begins early in _serve, and its init,
        # orphaned when the runtime's process exits, must come to us
        linux.prctl(linux.PR_SET_CHILD_SUBREAPER, 1)
        return _serve(opts, sync)
    except errors.RuntimeError_ as exc:
        sync.send({"event": "error", "category": type(exc).__name__, "message": str(exc)})
        return 1
    except BaseException as exc:
        message = f"shim for container {opts.container_id} failed: {type(exc).__name__}: {exc}"
        sync.send({"event": "error", "category": "Terminal", "message": message})
        return 1


def _lock(opts: Options) -> int:
    from runtime.shim import statedir

    pid_file = statedir.path(opts.bundle, statedir.SHIM_PID)
    fd = os.open(pid_file, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        other = statedir.read_pid(pid_file)
        raise errors.AlreadyExists(
            f"container {opts.container_id} already has a live shim (pid {other}): "
            f"talk to it on {statedir.path(opts.bundle, statedir.SOCKET)}"
        ) from None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd


def _log_ignored(events: EventLog, name: str) -> Callable[[], None]:
    return lambda: events.info("signal_ignored", signal=name)


def _serve(opts: Options, sync: _Sync) -> int:
    from runtime.shim import creates, logwriter, loop, runtimes, server, statedir, supervisor
    from runtime.shim import events as shim_events

    bundle = opts.bundle
    runtime = runtimes.make(opts.runtime_binary, opts.runtime_root, opts.container_id, bundle)
    pending: creates.Pending | None = None
    if runtime.gated:  # its helper reads the config meanwhile; makes nothing before the gate
        pending = creates.begin_create(runtime, bundle, gated=True)
    try:
        lock_fd = _lock(opts)  # refused: leave the live shim's files alone
    except BaseException:
        if pending is not None:
            creates.abandon_create(pending)
        raise
    events = shim_events.EventLog(None)
    ev_loop: loop.Loop | None = None
    srv: server.Server | None = None
    sup: supervisor.Supervisor | None = None
    try:
        statedir.remove(bundle, statedir.EXIT, statedir.INIT_PID)  # a previous run's
        statedir.write_json(  # before the create: what cleans up after a lost shim
            statedir.path(bundle, statedir.OPTIONS),
            {
                "id": opts.container_id,
                "runtime_binary": opts.runtime_binary,
                "runtime_root": opts.runtime_root,
                "log_path": opts.log_path,
                "log_max_files": opts.log_max_files,
                "restart": str(opts.restart),
            },
        )
        # the container is created (in a helper) while the shim sets itself up
        if pending is None:
            pending = creates.begin_create(runtime, bundle)
        else:  # the lock is ours and options.json is there: let the helper go on
            pending = creates.release_create(pending)
        if opts.title is not None:  # after the helper's fork: it keeps the server's
            from runtime.shim import forkserver

            forkserver.set_title(opts.title)
        _detach()
        try:
            with open("/proc/self/comm", "w") as f:
                f.write(f"shim-{opts.container_id}"[:15])
        except OSError:
            pass
        sync.send({"event": "started", "pid": os.getpid()})
        events = shim_events.EventLog(statedir.path(bundle, statedir.SHIM_LOG))
        ev_loop = loop.Loop()
        stop_loop = ev_loop.stop

        def on_final(record: dict[str, object]) -> None:
            assert srv is not None
            srv.end_follows()
            srv.finish(stop_loop)

        sup = supervisor.Supervisor(
            container_id=opts.container_id, bundle=bundle, runtime=runtime, loop=ev_loop,
            events=events, restart=opts.restart, stop_signal=opts.stop_signal,
            stop_timeout=opts.stop_timeout, log_path=opts.log_path,
            log_max_size=opts.log_max_size, log_max_files=opts.log_max_files,
            on_final=on_final, restart_count=opts.restart_count, pending=pending,
        )  # fmt: skip
        pending = None  # the supervisor's now
        ev_loop.on_signal(signals.SIGCHLD, sup.reap)
        for signum in (signals.SIGTERM, signals.SIGINT, signals.SIGHUP):
            ev_loop.on_signal(signum, _log_ignored(events, signals.name(signum)))
        srv = server.Server(ev_loop, sup, statedir.path(bundle, statedir.SOCKET), events)
        srv.listen()
        init_pid = sup.boot()
    except BaseException as exc:
        events.error("shim_boot_failed", error=str(exc))
        if srv is not None:
            srv.close()
        if pending is not None:
            creates.abandon_create(pending)
        if sup is not None:
            sup.abort()
        if runtime is not None:
            try:
                runtime.delete(force=True)
            except errors.RuntimeError_:
                pass  # most often: nothing was created
        if ev_loop is not None:
            ev_loop.close()
        events.close()
        logwriter.remove_files(opts.log_path, opts.log_max_files)
        statedir.remove(bundle, *statedir.SHIM_FILES)
        os.close(lock_fd)
        raise
    sync.send(
        {
            "event": "ready",
            "pid": os.getpid(),
            "init_pid": init_pid,
            "socket": srv.path,
            "state": sup.state(),  # what a "state" request would answer now
        }
    )
    sync.close()
    try:
        sup.after_ready()
        sup.reap()
        ev_loop.run()
    except BaseException as exc:
        import traceback

        events.error("shim_crashed", error=repr(exc), traceback=traceback.format_exc())
        return 1
    finally:
        srv.close()
        ev_loop.close()
    events.info("shim_exited")
    events.close()
    return 0
