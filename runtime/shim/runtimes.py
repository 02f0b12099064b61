"""How the shim drives an OCI runtime for one container: builtin library or external binary.

Two drivers with the same six verbs (create, start, kill, delete, state, exec):

- :class:`BuiltinRuntime` calls :mod:`runtime.oci.lifecycle` in-process: no
  interpreter start per verb (DESIGN.md §1). The library is imported only in
  this mode, so a shim for an external runtime does not pay for it.
- :class:`ExternalRuntime` runs a runc-compatible binary the way containerd's
  shim does: ``<binary> --root R --log runtime.log --log-format json <verb> …``.
  It is started with ``fork`` + ``execve`` from the single-threaded shim (not
  ``subprocess``: that module costs the shim ~8 ms of imports and a thread
  lock; not ``os.posix_spawn``: glibc 2.36's leaves the internal signals 32 and
  33 ignored in the child, and the container would inherit that) and waited
  for by pid, so the shim's own reaping of orphans never steals its status.
  Between fork and exec every signal Python or the shim set up is put back to
  its default (SIGPIPE and SIGXFSZ are ignored by Python), or the container's
  init would inherit them ignored. Error text is the
  runtime's own, read back from its ``--log`` file (runc and crun write their
  final error there as ``{"level": "error", "msg": …}``); since the exit code of
  runc is 1 for everything, a failed verb is :class:`runtime.errors.Terminal`
  (callers must not parse the text to learn more).

Both are usable from the engine too (:mod:`runtime.shim.restore` deletes the
container of a lost shim with them). Stdlib only.
"""

from __future__ import annotations

import contextlib
import errno
import os
import select

from runtime import errors
from runtime.shim import jsonio, signals

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

#: Put back to SIG_DFL in the runtime's process (and so in the container).
_RESET_SIGNALS = (
    signals.SIGPIPE, signals.SIGXFSZ, signals.SIGINT, signals.SIGHUP, signals.SIGTERM,
    signals.SIGQUIT, signals.SIGCHLD, signals.SIGUSR1, signals.SIGUSR2,
)  # fmt: skip


class OciRuntime:
    """The OCI verbs the shim uses, bound to one container id and runtime root."""

    name = "oci"

    def __init__(self, root: str, container_id: str) -> None:
        self.root = root
        self.container_id = container_id
        #: what the last create learned besides the pid (the builtin runtime's helper
        #: reads the config anyway): ``shares_host_pid`` (bool: no pid namespace of
        #: its own) and ``oom_counter`` (the file with its ``oom_kill`` count, or None)
        self.facts: dict[str, object] = {}

    def create(self, bundle: str, pid_file: str, stdin: int, stdout: int, stderr: int) -> int:
        """Create the container (init waits for ``start``); return the init's pid."""
        raise NotImplementedError

    #: whether :meth:`create_async` takes a ``gate`` (the builtin runtime's does)
    gated = False

    def create_async(
        self,
        bundle: str,
        pid_file: str,
        stdin: int,
        stdout: int,
        stderr: int,
        gate: tuple[int, int] | None = None,
    ) -> Callable[[], int]:
        """Begin :meth:`create`; calling the result finishes it (the pid, or the
        error raised). The caller may close its copies of the stdio fds as soon as
        this returns. Here it all happens at once; the builtin runtime overlaps.

        ``gate`` (only where :attr:`gated`): a pipe (read end, write end); the
        create reads the config, then makes nothing until a ``g`` comes through
        it (end of file instead: it gives up). So it can begin before the shim
        holds the container's lock."""
        try:
            pid = self.create(bundle, pid_file, stdin, stdout, stderr)
        except BaseException as exc:
            error = exc

            def failed() -> int:
                raise error

            return failed
        return lambda: pid

    def start(self) -> None:
        raise NotImplementedError

    def settle(self) -> None:
        """Wait for what the last create left running on the side (the builtin
        runtime's helper, after its answer): from then on the init's parent is
        the shim, and stays so."""

    def kill(self, sig: int, all_processes: bool = False) -> None:
        raise NotImplementedError

    def delete(self, force: bool = False) -> None:
        raise NotImplementedError

    def state(self) -> dict[str, object]:
        raise NotImplementedError

    def exec(
        self,
        process: dict[str, object],
        stdio: tuple[int, int, int],
        pid_file: str,
        console_socket: str | None,
    ) -> int:
        """Start ``process`` in the running container, detached; return its pid.

        The process becomes the caller's child (the shim is a subreaper). With
        ``process["terminal"]`` the pty master goes to ``console_socket``.
        """
        raise NotImplementedError


class BuiltinRuntime(OciRuntime):
    """The builtin runtime library, called in-process.

    ``create`` and ``exec`` run in a helper process forked for the call: the
    library parses the whole config (Docker's seccomp profile is hundreds of
    rules) and compiles the filter, and that garbage would stay as dirty pages
    in the long-lived shim (~0.8 MB of PSS each). The helper forks the
    container's process and exits; the process, orphaned, is reparented to the
    shim (a child subreaper) — the same parent as when the shim forks it
    itself. The helper reports the pid or the error through a pipe, framed by
    a newline: the new process holds a copy of the pipe until it execs, so
    the shim reads after reaping the helper, never to EOF. ``create_async``
    returns once the helper is forked, so the shim sets itself up (socket,
    signal handlers …) while the container is being created; the helper
    reports what it read in the config that the shim needs too (:attr:`facts`),
    so the shim never parses config.json itself.
    """

    name = "builtin"

    def __init__(self, root: str, container_id: str) -> None:
        super().__init__(root, container_id)
        from runtime.oci import lifecycle

        self._lifecycle = lifecycle
        self._unreaped: list[int] = []  # helpers that answered and are exiting

    @contextlib.contextmanager
    def _mapped(self, verb: str) -> Iterator[None]:
        """The library raises runtime.errors; anything else becomes one here."""
        try:
            with errors.map_os_errors(f"builtin runtime {verb} {self.container_id}"):
                yield
        except errors.RuntimeError_:
            raise
        except Exception as exc:  # a bug in the library must not take the shim down
            raise errors.Terminal(
                f"builtin runtime {verb} {self.container_id}: {type(exc).__name__}: {exc}"
            ) from exc

    def _in_helper(self, verb: str, call: Callable[[], dict[str, object]]) -> Callable[[], int]:
        """Run ``call()`` in a forked helper, now; the result waits for it and
        returns the ``pid`` of its reply (its other keys go to :attr:`facts`) or
        raises its error. Between the two the caller may go on with its own work."""
        read_fd, write_fd = os.pipe2(os.O_CLOEXEC)
        helper = os.fork()
        if helper == 0:  # the helper: no logging, report through the pipe and _exit
            message: dict[str, object]
            try:
                os.close(read_fd)
                with self._mapped(verb):
                    message = call()
            except errors.RuntimeError_ as exc:
                message = {"category": type(exc).__name__, "message": str(exc)}
            except BaseException as exc:
                message = {"category": "Terminal", "message": f"{verb}: {exc!r}"}
            try:
                os.write(write_fd, jsonio.dumps(message).encode() + b"\n")
            finally:
                os._exit(0)
        os.close(write_fd)

        def finish() -> int:
            try:
                data = _read_reply(read_fd, helper)
            finally:
                os.close(read_fd)
            try:
                reply = jsonio.loads(data.split(b"\n", 1)[0])
            except ValueError:
                reply = None
            pid = reply.pop("pid", None) if isinstance(reply, dict) else None
            if isinstance(pid, int):
                assert isinstance(reply, dict)
                self.facts = reply
                self._unreaped.append(helper)  # exiting: reaped by settle(), after start
                return pid
            os.waitpid(helper, 0)
            if not isinstance(reply, dict):
                raise errors.Terminal(
                    f"builtin runtime {verb} {self.container_id}: its helper died without a word"
                )
            category = getattr(errors, str(reply.get("category")), None)
            if not (isinstance(category, type) and issubclass(category, errors.RuntimeError_)):
                category = errors.Terminal
            raise category(str(reply.get("message")))

        return finish

    def settle(self) -> None:
        for helper in self._unreaped:
            try:
                os.waitpid(helper, 0)
            except ChildProcessError:
                pass  # the shim's own reaping got it first
        self._unreaped.clear()

    def create(self, bundle: str, pid_file: str, stdin: int, stdout: int, stderr: int) -> int:
        return self.create_async(bundle, pid_file, stdin, stdout, stderr)()

    gated = True

    def create_async(
        self,
        bundle: str,
        pid_file: str,
        stdin: int,
        stdout: int,
        stderr: int,
        gate: tuple[int, int] | None = None,
    ) -> Callable[[], int]:
        def wait_gate() -> None:
            assert gate is not None
            os.close(gate[1])  # the shim's end: its close must be our end of file
            if os.read(gate[0], 1) != b"g":
                raise errors.FailedPrecondition(
                    f"builtin runtime create {self.container_id}: the shim called it off"
                )

        def call() -> dict[str, object]:
            from runtime.oci import cgroups
            from runtime.oci import create as oci_create

            made = oci_create.create_container(  # no pid file: the pid comes back here
                self.root, self.container_id, bundle, stdin=stdin, stdout=stdout, stderr=stderr,
                direct=True,  # the helper exits next: its init goes to the shim
                gate=wait_gate if gate is not None else None,
            )  # fmt: skip
            namespaces = made.spec.namespaces
            return {
                "pid": made.pid,
                "shares_host_pid": "pid" not in namespaces or namespaces["pid"] is not None,
                "oom_counter": cgroups.oom_counter(made.cgroup),
            }

        return self._in_helper("create", call)

    def start(self) -> None:
        with self._mapped("start"):
            self._lifecycle.start(self.root, self.container_id)

    def kill(self, sig: int, all_processes: bool = False) -> None:
        with self._mapped("kill"):
            self._lifecycle.kill(self.root, self.container_id, sig, all=all_processes)

    def delete(self, force: bool = False) -> None:
        with self._mapped("delete"):
            self._lifecycle.delete(self.root, self.container_id, force=force)

    def state(self) -> dict[str, object]:
        with self._mapped("state"):
            return dict(self._lifecycle.state(self.root, self.container_id))

    def exec(
        self,
        process: dict[str, object],
        stdio: tuple[int, int, int],
        pid_file: str,
        console_socket: str | None,
    ) -> int:
        exec_process = getattr(self._lifecycle, "exec_process", None)
        if exec_process is None:
            raise errors.Unavailable(
                f"builtin runtime exec {self.container_id}: this version of the builtin runtime "
                "cannot exec yet; run the container with an external runtime (runc, crun)"
            )
        finish = self._in_helper(
            "exec",
            lambda: {
                "pid": exec_process(
                    self.root, self.container_id, process,
                    stdin=stdio[0], stdout=stdio[1], stderr=stdio[2],
                    console_socket=console_socket, pid_file=pid_file,
                )
            },
        )  # fmt: skip
        try:
            return finish()
        finally:
            self.settle()  # before the shim's loop can reap (and reuse) its pid


class ExternalRuntime(OciRuntime):
    """A runc-compatible binary (runc, crun, ``pyreconcile-runc``)."""

    def __init__(self, binary: str, root: str, container_id: str, log_file: str) -> None:
        super().__init__(root, container_id)
        self.binary = binary
        self.name = os.path.basename(binary)
        self.log_file = log_file

    def _argv(self, verb: str, *args: str) -> list[str]:
        return [
            self.binary, "--root", self.root, "--log", self.log_file, "--log-format", "json",
            verb, *args,
        ]  # fmt: skip

    def _run(self, verb: str, args: list[str], stdio: tuple[int, int, int] | None = None) -> bytes:
        """Run one verb; return its stdout when ``stdio`` is None. Raise with its error text."""
        log_start = _size(self.log_file)
        out_r = out_w = -1
        null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
        try:
            if stdio is None:
                out_r, out_w = os.pipe2(os.O_CLOEXEC)
                stdio = (null, out_w, null)
            pid = _spawn(self.binary, self._argv(verb, *args), stdio)
            output = b""
            if out_w >= 0:
                os.close(out_w)
                out_w = -1
                chunks = []
                while chunk := os.read(out_r, 65536):
                    chunks.append(chunk)
                output = b"".join(chunks)
            _, status = os.waitpid(pid, 0)
        finally:
            for fd in (null, out_r, out_w):
                if fd >= 0:
                    os.close(fd)
        code = os.waitstatus_to_exitcode(status)
        if code != 0:
            text = _log_errors(self.log_file, log_start) or f"exited with status {code}"
            raise errors.Terminal(f"{self.name} {verb} {self.container_id}: {text}")
        return output

    def create(self, bundle: str, pid_file: str, stdin: int, stdout: int, stderr: int) -> int:
        self._run(
            "create",
            ["--bundle", bundle, "--pid-file", pid_file, self.container_id],
            (stdin, stdout, stderr),
        )
        pid = _read_pid(pid_file)
        if pid is None:
            raise errors.Terminal(
                f"{self.name} create {self.container_id}: no pid in {pid_file} after create"
            )
        return pid

    def start(self) -> None:
        self._run("start", [self.container_id])

    def kill(self, sig: int, all_processes: bool = False) -> None:
        args = ["--all"] if all_processes else []
        self._run("kill", [*args, self.container_id, str(sig)])

    def delete(self, force: bool = False) -> None:
        args = ["--force"] if force else []
        self._run("delete", [*args, self.container_id])

    def exec(
        self,
        process: dict[str, object],
        stdio: tuple[int, int, int],
        pid_file: str,
        console_socket: str | None,
    ) -> int:
        spec_file = (
            pid_file[: -len(".pid")] + ".json" if pid_file.endswith(".pid") else pid_file + ".json"
        )
        with open(spec_file, "wb") as f:
            f.write(jsonio.dumps(process).encode())
        args = ["--detach", "--pid-file", pid_file, "--process", spec_file]
        if console_socket is not None:
            args += ["--console-socket", console_socket]
        try:
            self._run("exec", [*args, self.container_id], stdio)
        finally:
            try:
                os.unlink(spec_file)
            except FileNotFoundError:
                pass
        pid = _read_pid(pid_file)
        if pid is None:
            raise errors.Terminal(
                f"{self.name} exec {self.container_id}: no pid in {pid_file} after exec"
            )
        return pid

    def state(self) -> dict[str, object]:
        out = self._run("state", [self.container_id])
        try:
            value = jsonio.loads(out)
        except ValueError:
            raise errors.Terminal(
                f"{self.name} state {self.container_id}: output is not JSON: {out[:200]!r}"
            ) from None
        if not isinstance(value, dict):
            raise errors.Terminal(f"{self.name} state {self.container_id}: not a JSON object")
        return value


def _spawn(binary: str, argv: list[str], stdio: tuple[int, int, int]) -> int:
    """fork + execve with ``stdio`` as fds 0-2 and default signal dispositions.

    An exec failure is reported through a close-on-exec pipe, as ``subprocess``
    does, and raised here as :class:`runtime.errors.Unavailable`.
    """
    err_r, err_w = os.pipe2(os.O_CLOEXEC)
    env = dict(os.environ)
    pid = os.fork()
    if pid == 0:  # the child: no Python-level work beyond this, no logging
        try:
            os.close(err_r)
            for target, fd in enumerate(stdio):
                os.dup2(fd, target)  # dup2 clears FD_CLOEXEC on the target
            for sig in _RESET_SIGNALS:
                signals.set_default(sig)
            os.execve(binary, argv, env)
        except OSError as exc:
            os.write(err_w, f"{exc.errno}:{exc.strerror}".encode())
        finally:
            os._exit(127)
    os.close(err_w)
    try:
        report = os.read(err_r, 4096)
    finally:
        os.close(err_r)
    if report:
        os.waitpid(pid, 0)
        code, _, text = report.decode(errors="replace").partition(":")
        if code == str(errno.ENOENT):
            raise errors.Unavailable(
                f"oci runtime {binary} not found: install it or choose another runtime"
            )
        raise errors.Unavailable(f"oci runtime {binary} cannot be run: {text.lower()}")
    return pid


def _read_reply(read_fd: int, helper: int) -> bytes:
    """The helper's answer: one line, read as soon as it is written, not once the
    helper is gone (its exit, the unmapping of a copy of the shim, takes a
    while). The helper's pidfd ends the wait if it dies without a word (the
    pipe gives no EOF then: the container's process holds a copy until it
    execs). Without pidfds (Linux < 5.3), after the helper has been reaped."""
    try:
        pidfd = os.pidfd_open(helper)
    except (OSError, AttributeError):
        os.waitpid(helper, 0)
        pidfd = -1
    os.set_blocking(read_fd, False)
    data = b""
    try:
        while not data.endswith(b"\n"):
            watch = [read_fd] if pidfd < 0 else [read_fd, pidfd]
            ready, _, _ = select.select(watch, [], [])
            try:
                chunk = os.read(read_fd, 65536)
            except BlockingIOError:
                chunk = None
            if chunk:
                data += chunk
                continue
            if chunk == b"" or pidfd < 0 or pidfd in ready:
                break  # gone (or nothing more to come): what was said is all there is
    finally:
        if pidfd >= 0:
            os.close(pidfd)
    return data


def make(binary: str | None, root: str, container_id: str, bundle: str) -> OciRuntime:
    """The driver for ``binary`` (an external runtime), or the builtin one when None."""
    if binary:
        return ExternalRuntime(binary, root, container_id, os.path.join(bundle, "runtime.log"))
    return BuiltinRuntime(root, container_id)


def _size(name: str) -> int:
    try:
        return os.stat(name).st_size
    except FileNotFoundError:
        return 0


def _read_pid(name: str) -> int | None:
    try:
        with open(name, "rb") as f:
            text = f.read().strip()
    except FileNotFoundError:
        return None
    return int(text) if text.isdigit() else None


def _log_errors(log_file: str, start: int) -> str:
    """The error messages an external runtime logged after offset ``start``."""
    try:
        with open(log_file, "rb") as f:
            f.seek(start)
            data = f.read(256 * 1024)
    except FileNotFoundError:
        return ""
    messages = []
    for line in data.splitlines():
        try:
            entry = jsonio.loads(line)
        except ValueError:
            text = line.decode(errors="replace").strip()
            if text:
                messages.append(text)
            continue
        if isinstance(entry, dict) and entry.get("level") in ("error", "fatal"):
            messages.append(str(entry.get("msg", "")).strip())
    return "; ".join(m for m in messages if m)
