"""A fork server for shims: one warm interpreter that forks every new shim of a run root.

Why (DESIGN.md §1, runtime-security-and-shims.md §3.4): a shim started as a
fresh interpreter owns its whole heap — builtins, the shim's modules, the
builtin OCI runtime — about 4.5-5 MB of PSS per container, above
containerd-shim-runc-v2's ~3 MB. Shims forked from one process that has
imported all of it and frozen it out of the garbage collector
(``gc.freeze()``) share those pages copy-on-write, and a fork costs a
millisecond where an interpreter start costs tens.

The server: started on demand by :func:`runtime.shim.launch.spawn_shim` (the
same bootstrap, ``--fork-server``), detached like a shim (double fork,
``setsid``, PPID 1, stdio on /dev/null, ``/`` as cwd) but *not* a child
subreaper, so that the shims it forks are orphaned to PID 1 exactly as
exec'd ones are. Single-threaded; it forks only between requests. It listens
on ``<run_root>/shim-forkserver-<code>.sock`` (0600; its pid beside it in
``….sock.pid``; ``<code>`` fingerprints
the interpreter and the code it loaded, so an upgraded pyreconcile never
gets a shim forked from old code: it starts a server of its own, and the old
one, asked no more, exits when idle). It exits after :data:`IDLE_TIMEOUT`
seconds without a request, or when its socket is removed or replaced (its
run root deleted, another server started): shims never need it after their
start.

A request is one JSON line ``{"argv": [shim options]}`` carrying the end of
the launcher's sync pipe as an fd (``SCM_RIGHTS``). The server checks the
options, hands them to its standby shim (:class:`_Standby`, forked ahead)
or else clones the shim as its own sibling (``CLONE_PARENT``: orphaned to
PID 1 like a double-forked one, with one fork; the double fork where
clone3 is missing), and answers ``{"ok": true}`` (or the options' error). The
shim then runs :func:`runtime.shim.main.run_shim` and reports through the sync
pipe, as an exec'd shim does, so the launcher waits for it the same way.

The server does as little as it can per request: every page it writes
between two forks stays behind as a private copy in each shim forked before
(copy-on-write keeps the old content for them), so work done here for a
shim's sake — parsing its config.json was tried: ~1 ms off each start —
costs every running shim that much memory (+0.35 MiB of PSS each, measured
with 20), and the parsing is left to the shim's throwaway helper.

The shim rewrites its command line (``/proc/self/cmdline``) to its own options
(the server was started with room for them), so ``ps`` and every tool that
looks for a container's shim by ``--bundle`` see it as before. The server's own
command line names no run root (its socket path comes in the environment).

Stdlib only (it is the shim's interpreter).
"""

from __future__ import annotations

import _socket
import gc
import os
import sys
import time

from runtime import errors
from runtime.shim import jsonio, protocol, statedir
from runtime.sys import clone

ENV_SOCKET = "PYRECONCILE_SHIM_FORKSERVER_SOCKET"
IDLE_TIMEOUT = 300.0
ACCEPT_TICK = 1.0
REQUEST_TIMEOUT = 10.0
#: Bytes of room in the server's command line for a shim's options.
TITLE_ROOM = 2048

_CODE_DIRS = ("shim", "oci", "sys")


#: runtime dir -> (fingerprint, when it was taken (monotonic))
_FINGERPRINTS: dict[str, tuple[str, float]] = {}
FINGERPRINT_TTL = 1.0


def fingerprint(runtime_dir: str) -> str:
    """A short digest of the interpreter and the code a server would load.

    mtimes and sizes of the runtime's ``shim``, ``oci`` and ``sys`` modules:
    changed by any upgrade or edit. A few dozen ``stat`` calls (~0.3 ms), so a
    process reuses its last answer for :data:`FINGERPRINT_TTL` seconds — a
    burst of starts asks once; an upgrade is seen within a second.
    """
    now = time.monotonic()
    known = _FINGERPRINTS.get(runtime_dir)
    if known is not None and now - known[1] < FINGERPRINT_TTL:
        return known[0]
    digest = _fingerprint(runtime_dir)
    _FINGERPRINTS[runtime_dir] = (digest, now)
    return digest


def _fingerprint(runtime_dir: str) -> str:
    import zlib

    parts = [sys.executable, sys.version]
    for sub in _CODE_DIRS:
        directory = os.path.join(runtime_dir, sub)
        try:
            names = sorted(n for n in os.listdir(directory) if n.endswith(".py"))
        except FileNotFoundError:
            continue
        for name in names:
            st = os.stat(os.path.join(directory, name))
            parts.append(f"{sub}/{name}:{st.st_mtime_ns}:{st.st_size}")
    for name in ("errors.py", "__init__.py"):
        try:
            st = os.stat(os.path.join(runtime_dir, name))
        except FileNotFoundError:
            continue
        parts.append(f"{name}:{st.st_mtime_ns}:{st.st_size}")
    return f"{zlib.crc32('|'.join(parts).encode()):08x}"


def socket_path(run_root: str, runtime_dir: str) -> str:
    return os.path.join(run_root, f"shim-forkserver-{fingerprint(runtime_dir)}.sock")


# -- the client side (spawn_shim) ----------------------------------------------


def request(path: str, argv: list[str], sync_fd: int, timeout: float = REQUEST_TIMEOUT) -> None:
    """Ask the server at ``path`` for a shim; raise Unavailable when there is none.

    Returns once the shim is forked; it reports on ``sync_fd`` (ours to close).
    """
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM | _socket.SOCK_CLOEXEC)
    try:
        sock.settimeout(timeout)
        try:
            _connect(sock, path)
        except OSError as exc:
            raise errors.Unavailable(f"shim fork server {path}: {exc.strerror or exc}") from None
        line = jsonio.dumps({"argv": argv}).encode() + b"\n"
        try:
            sock.sendmsg([line], protocol.pack_fds([sync_fd]))
            reply = _read_line(sock)
        except OSError as exc:
            raise errors.Unavailable(f"shim fork server {path}: {exc}") from None
    finally:
        sock.close()
    try:
        answer = jsonio.loads(reply)
    except ValueError:
        raise errors.Unavailable(f"shim fork server {path}: bad reply {reply[:200]!r}") from None
    if not isinstance(answer, dict) or answer.get("ok") is not True:
        error = answer.get("error") if isinstance(answer, dict) else None
        message = error.get("message") if isinstance(error, dict) else None
        raise errors.InvalidSpec(str(message or f"shim fork server {path} refused: {reply!r}"))


def _connect(sock: _socket.socket, path: str) -> None:
    if len(os.fsencode(path)) < 100:
        sock.connect(path)
        return
    directory, name = os.path.split(path)
    dfd = os.open(directory, os.O_PATH | os.O_CLOEXEC)
    try:
        sock.connect(f"/proc/self/fd/{dfd}/{name}")
    finally:
        os.close(dfd)


def _read_line(sock: _socket.socket) -> bytes:
    data = b""
    while b"\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionResetError("the fork server closed the connection")
        data += chunk
        if len(data) > protocol.MAX_REQUEST:
            raise ConnectionResetError("the fork server's reply is too long")
    return data[: data.index(b"\n")]


# -- the server ---------------------------------------------------------------


def serve_main(ready_fd: int) -> int:
    """The launched process: detach, then serve in the grandchild. Returns at once."""
    child = os.fork()
    if child == 0:
        try:
            if os.fork() == 0:
                code = 1
                try:
                    code = _serve(ready_fd)
                finally:
                    os._exit(code)
        finally:
            os._exit(0)
    os.close(ready_fd)
    os.waitpid(child, 0)
    return 0


def _warm() -> None:
    """Import everything a shim runs, so that forked shims share it."""
    from runtime.shim import (  # noqa: F401
        cgroups,
        events,
        execs,
        logs,
        logwriter,
        loop,
        main,
        policy,
        runtimes,
        server,
        signals,
        statedir,
        supervisor,
    )

    try:
        from runtime.oci import create, delete, kill, lifecycle, seccomp, start, state  # noqa: F401
        from runtime.sys import seccomp as libseccomp
    except ImportError:  # pragma: no cover - an external-runtime-only install
        return
    # Containers get Docker's default profile: the library, the ctypes
    # prototypes and the profile's BPF program are made once here, and every
    # shim's create finds the program in memory (runtime.oci.seccomp.warm).
    try:
        if libseccomp.available():
            seccomp.warm()
    except Exception:  # pragma: no cover - warming up is best effort
        pass


def _serve(ready_fd: int) -> int:
    path = os.environ.pop(ENV_SOCKET, "")
    os.setsid()
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.close(null)
    os.chdir("/")
    try:
        with open("/proc/self/comm", "w") as f:
            f.write("shim-forkserver")
    except OSError:
        pass
    _warm()
    try:
        _args_range()
    except (OSError, ValueError, IndexError):
        pass
    listener = _listen(path)
    identity = _identity(path)
    statedir.write_atomic(path + ".pid", f"{os.getpid()}\n".encode())
    gc.collect()
    gc.freeze()  # what is here now is shared with every shim: keep the GC off it
    standby = _Standby.make(listener)
    os.write(ready_fd, b"ready\n")
    os.close(ready_fd)
    listener.settimeout(ACCEPT_TICK)
    last = time.monotonic()
    try:
        while True:
            try:
                fd, _ = listener._accept()  # type: ignore[attr-defined]
            except TimeoutError:
                if _identity(path) != identity or time.monotonic() - last > IDLE_TIMEOUT:
                    return 0
                continue
            except InterruptedError:  # pragma: no cover - PEP 475 retries
                continue
            last = time.monotonic()
            conn = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM, 0, fd)
            try:
                if _handle(listener, conn, standby):
                    standby = None  # taken: the next one is made below, after the answer
            except Exception:  # a bad request must not end the server
                pass
            finally:
                conn.close()
            if standby is None:
                standby = _Standby.make(listener)
    finally:
        listener.close()
        if standby is not None:
            standby.sock.close()  # its end of file: it exits
        if _identity(path) == identity:
            for name in (path, path + ".pid"):
                try:
                    os.unlink(name)
                except FileNotFoundError:
                    pass


def _listen(path: str) -> _socket.socket:
    """Bind at a temporary name, then rename over ``path``: a racing server just loses."""
    directory, name = os.path.split(path)
    temp = f".{name}.{os.getpid()}"
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM | _socket.SOCK_CLOEXEC)
    cwd = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.chdir(directory)
        try:
            os.unlink(temp)
        except FileNotFoundError:
            pass
        sock.bind(temp)
        os.chmod(temp, 0o600)
        sock.listen(64)
        os.rename(temp, name)
    except BaseException:
        sock.close()
        raise
    finally:
        os.fchdir(cwd)
        os.close(cwd)
    return sock


def _identity(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


class _Standby:
    """A shim forked ahead of its request (as Android's zygote keeps unspecialized
    app processes): detached already (``CLONE_PARENT``), out of the GC, blocked
    on its end of a socketpair until the server hands it a request — then it
    runs like any forked shim. A start so saves the clone and the first steps
    of a new process (~1.2 ms here) on its critical path; the server makes the
    next standby after answering. The standby forks before the request is
    read, so it holds none of the server's per-request pages (see the module
    docstring). If the server goes, the socketpair's end of file ends it."""

    __slots__ = ("pid", "sock")

    def __init__(self, pid: int, sock: _socket.socket) -> None:
        self.pid = pid
        self.sock = sock

    @classmethod
    def make(cls, listener: _socket.socket) -> _Standby | None:
        ours, theirs = _socket.socketpair(
            _socket.AF_UNIX, _socket.SOCK_SEQPACKET | _socket.SOCK_CLOEXEC
        )
        try:
            pid = clone.fork(clone.CLONE_PARENT)
        except OSError:  # a kernel without clone3: shims are forked on request
            ours.close()
            theirs.close()
            return None
        if pid == 0:
            code = 1
            try:
                listener.close()
                ours.close()
                gc.freeze()  # what came from the server stays shared: keep the GC off it
                code = _standby(theirs)
            finally:
                os._exit(code)
        theirs.close()
        return cls(pid, ours)

    def hand(self, line: bytes, sync_fd: int) -> bool:
        """Give it a request (a checked one); False when it is not there to take it."""
        try:
            self.sock.sendmsg([line], protocol.pack_fds([sync_fd]))
            return True
        except OSError:
            return False
        finally:
            self.sock.close()


def _standby(sock: _socket.socket) -> int:
    """The standby's life: wait for a request, then be its shim."""
    from runtime.shim import main

    try:
        data, ancdata, _, _ = sock.recvmsg(
            protocol.MAX_REQUEST, _socket.CMSG_SPACE(4), _socket.MSG_CMSG_CLOEXEC
        )
    except OSError:
        return 0
    finally:
        sock.close()
    fds = protocol.unpack_fds(ancdata)
    if not data or len(fds) != 1:  # the server went, or sent nothing usable
        for fd in fds:
            os.close(fd)
        return 0
    argv = jsonio.loads(data)
    try:
        if not isinstance(argv, list) or not all(isinstance(a, str) for a in argv):
            raise ValueError("the server handed over no options")  # never: it checked them
        opts = main.parse_args(argv)
    except ValueError as exc:  # the server checked them: a changed bundle, at most
        main.report_error(fds[0], "InvalidSpec", str(exc))
        return 2
    opts.sync_fd = fds[0]
    opts.title = ["pyreconcile-shim", *argv]  # set once its create is under way
    return main.run_shim(opts)


def _handle(listener: _socket.socket, conn: _socket.socket, standby: _Standby | None) -> bool:
    """Serve one request; True when it took ``standby`` (used, or found gone)."""
    from runtime.shim import main

    conn.settimeout(REQUEST_TIMEOUT)
    data, ancdata, _, _ = conn.recvmsg(
        protocol.MAX_REQUEST, _socket.CMSG_SPACE(4), _socket.MSG_CMSG_CLOEXEC
    )
    fds = protocol.unpack_fds(ancdata)
    try:
        while b"\n" not in data and len(data) < protocol.MAX_REQUEST:
            chunk = conn.recv(65536)
            if not chunk:
                break
            data += chunk
        request = jsonio.loads(data.split(b"\n", 1)[0])
        argv = request.get("argv") if isinstance(request, dict) else None
        if not isinstance(argv, list) or not all(isinstance(a, str) for a in argv):
            raise ValueError("the request needs 'argv', a list of strings")
        if len(fds) != 1:
            raise ValueError(f"the request needs the sync pipe as one fd, not {len(fds)}")
        opts = main.parse_args(argv)
    except ValueError as exc:
        conn.sendall(protocol.encode(protocol.error("InvalidSpec", str(exc))))
        for fd in fds:
            os.close(fd)
        return False
    if standby is not None and standby.hand(jsonio.dumps(argv).encode(), fds[0]):
        os.close(fds[0])
        conn.sendall(protocol.encode(protocol.ok({"forked": True})))
        return True
    opts.sync_fd = fds[0]
    try:  # the shim itself, a sibling of this server: its parent is ours (PID 1 or a subreaper)
        child, intermediate = clone.fork(clone.CLONE_PARENT), False
    except OSError:  # a kernel without clone3: the double fork
        child, intermediate = os.fork(), True
    if child == 0:
        try:
            listener.close()
            conn.close()
            if not intermediate or os.fork() == 0:  # the intermediate forks and goes
                code = 1
                try:
                    gc.freeze()  # what came from the server stays shared: keep the GC off it
                    opts.title = ["pyreconcile-shim", *argv]  # set once its create is under way
                    code = main.run_shim(opts)
                finally:
                    os._exit(code)
        finally:
            os._exit(0)
    os.close(fds[0])
    # answer first: the launcher waits on the sync pipe next, not for this reaping
    try:
        conn.sendall(protocol.encode(protocol.ok({"forked": True})))
    finally:
        if intermediate:
            os.waitpid(child, 0)
    return standby is not None  # it was there but could not take the request: gone


_ARGS: list[int] = []  # this process's (arg_start, arg_end): the same in its forks


def _args_range() -> tuple[int, int]:
    if not _ARGS:
        with open("/proc/self/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        _ARGS[:] = int(fields[45]), int(fields[46])
    return _ARGS[0], _ARGS[1]


def set_title(argv: list[str]) -> None:
    """Show ``argv`` as this process's command line (``/proc/self/cmdline``).

    The kernel reads the command line from the process's memory between
    ``arg_start`` and ``arg_end`` (``/proc/self/stat``, read once by the
    server: a fork has the same addresses); writing there through
    ``/proc/self/mem`` is what ``setproctitle`` does. It fits in the room the
    original command line had; longer titles are cut. Best effort.
    """
    try:
        start, end = _args_range()
        title = b"\0".join(a.encode() for a in argv)[: end - start - 1]
        fd = os.open("/proc/self/mem", os.O_RDWR | os.O_CLOEXEC)
        try:
            os.pwrite(fd, title + b"\0" * (end - start - len(title)), start)
        finally:
            os.close(fd)
    except (OSError, ValueError, IndexError):
        pass
