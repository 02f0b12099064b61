"""The shim's state dir: the container's bundle dir, and what the shim keeps in it.

::

    config.json rootfs/     the bundle, written by the engine (never touched here)
    shim.pid                the shim's pid; the shim holds an exclusive flock on it
                            for its whole life, so "locked" means "a shim is alive"
                            (no pid-reuse guessing) and a second shim is refused
    shim.sock               the control socket (runtime.shim.protocol)
    init.pid                the container's init pid, written by an external OCI
                            runtime (its --pid-file; the builtin one returns the pid)
    options.json            how the shim runs the container: runtime binary and
                            root, log path (read back by runtime.shim.restore to
                            clean up after a lost shim, like containerd's options.json)
    run.json                the current run: restart_count, started_at, init_pid;
                            rewritten at every (re)start, so a shim killed later
                            still tells how often it had restarted
    exit                    the final exit record, JSON, written atomically after
                            the logs are drained; its presence means "ended"
    exec-N.json exec-N.pid  an external runtime's ``exec --process`` and pid file,
                            removed as soon as the process runs
    shim.log                the shim's own events, JSON lines
    runtime.log             an external runtime's ``--log`` (JSON), for error text

Stdlib only: imported by the shim under ``python -I -S``.
"""

from __future__ import annotations

import os

from runtime.shim import jsonio

SHIM_PID = "shim.pid"
SOCKET = "shim.sock"
INIT_PID = "init.pid"
OPTIONS = "options.json"
EXIT = "exit"
RUN = "run.json"
SHIM_LOG = "shim.log"
RUNTIME_LOG = "runtime.log"

#: Files the shim creates; removed again when spawning fails.
SHIM_FILES = (SOCKET, INIT_PID, OPTIONS, RUN, EXIT, SHIM_LOG, RUNTIME_LOG, SHIM_PID)

#: Keys of the exit record (JSON object in the ``exit`` file).
EXIT_KEYS = ("exit_code", "signal", "finished_at", "oom_killed", "started_at", "restart_count")


def path(bundle: str, name: str) -> str:
    return os.path.join(bundle, name)


def write_atomic(target: str, data: bytes, mode: int = 0o644) -> None:
    """Write ``target`` so that readers see the old content or the whole new one.

    A temp file in the same directory renamed over the target: atomic against a
    crash of any process (the page cache outlives them). No fsync: every file
    here lives in the run root (a tmpfs on most hosts), whose content means
    nothing after the machine itself goes down — the engine then finds the
    bundles without live shims and reports their containers lost. DESIGN.md §4's
    fsync is for state that must survive the machine (the persistent root:
    metadata, content, volumes, IPAM). On a host whose /run is on disk an fsync
    pair costs ~4-5 ms, and a container start writes three or four of these.
    """
    directory = os.path.dirname(target) or "."
    tmp = os.path.join(directory, f".{os.path.basename(target)}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    except BaseException:
        os.close(fd)
        _unlink(tmp)
        raise
    os.close(fd)
    try:
        os.replace(tmp, target)
    except BaseException:
        _unlink(tmp)
        raise


def write_json(target: str, obj: object) -> None:
    write_atomic(target, jsonio.dumps(obj, sort_keys=True).encode() + b"\n")


def read_json(source: str) -> dict[str, object] | None:
    """The JSON object in ``source``; None when the file is missing or not an object."""
    try:
        with open(source, "rb") as f:
            value = jsonio.loads(f.read())
    except FileNotFoundError:
        return None
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def read_exit(bundle: str) -> dict[str, object] | None:
    """The exit record of the container in ``bundle``, or None while it has not ended."""
    return read_json(path(bundle, EXIT))


def read_pid(source: str) -> int | None:
    """The pid in a pid file (runc writes it without a newline); None if absent/garbled."""
    try:
        with open(source, "rb") as f:
            text = f.read().strip()
    except FileNotFoundError:
        return None
    return int(text) if text.isdigit() else None


def remove(bundle: str, *names: str) -> None:
    for name in names:
        _unlink(path(bundle, name))


def _unlink(target: str) -> None:
    try:
        os.unlink(target)
    except FileNotFoundError:
        pass
