"""``create``: validate the bundle, make the state dir and the cgroup, fork the
container's init (see :mod:`runtime.oci.init`) and wait until it is ready.

On any failure everything made so far is undone — the init is killed (and
reaped if the caller is its subreaper), the cgroup and the state dir are
removed, ``poststop`` hooks run when a create-time hook failed — and the
init's own message is raised in its category.

What needs the caller's (host) view is prepared here, before the fork: the
seccomp filter is compiled (a bad profile fails before anything runs), the
console socket and the seccomp listener are connected, and the caller
answers the children's requests on a command pipe: ``userns`` (write the
intermediate's uid_map/gid_map — as root on the host, so no newuidmap is
needed) and ``hooks`` (run ``prestart``/``createRuntime`` in the runtime's
namespaces with the state on stdin).
"""

from __future__ import annotations

import os

from runtime import errors
from runtime.oci import cgroups, config, hooks, init, state
from runtime.shim import jsonio
from runtime.sys import caps

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["Created", "create", "create_container"]


class Created:
    """What :func:`create_container` made: the init's pid, the config it read
    and the cgroup it made (for a caller that wants more than the pid)."""

    __slots__ = ("cgroup", "pid", "spec")

    def __init__(self, pid: int, spec: config.Spec, cgroup: cgroups.Cgroup) -> None:
        self.pid = pid
        self.spec = spec
        self.cgroup = cgroup


def create(
    root: str,
    container_id: str,
    bundle: str,
    *,
    stdin: int | None = None,
    stdout: int | None = None,
    stderr: int | None = None,
    pid_file: str | None = None,
    preserve_fds: int = 0,
    console_socket: str | None = None,
    no_pivot: bool = False,
    direct: bool = False,
) -> int:
    """Create the container from ``bundle/config.json``; return the init's pid
    (see :func:`create_container`)."""
    return create_container(
        root, container_id, bundle, stdin=stdin, stdout=stdout, stderr=stderr,
        pid_file=pid_file, preserve_fds=preserve_fds, console_socket=console_socket,
        no_pivot=no_pivot, direct=direct,
    ).pid  # fmt: skip


def create_container(
    root: str,
    container_id: str,
    bundle: str,
    *,
    stdin: int | None = None,
    stdout: int | None = None,
    stderr: int | None = None,
    pid_file: str | None = None,
    preserve_fds: int = 0,
    console_socket: str | None = None,
    no_pivot: bool = False,
    direct: bool = False,
    gate: Callable[[], None] | None = None,
) -> Created:
    """Create the container from ``bundle/config.json``.

    The init is set up (namespaces, cgroup, rootfs, mounts, pivot_root,
    hostname …) and blocks until :func:`runtime.oci.start.start`. ``stdin``,
    ``stdout``, ``stderr`` become its 0/1/2 (None: the caller's own). It is
    double-forked, so it is reparented to the caller's nearest child subreaper:
    a caller that wants to ``waitpid`` it sets ``PR_SET_CHILD_SUBREAPER`` first.
    With ``process.terminal`` the pty master is sent to the unix socket
    ``console_socket`` (runc's ``--console-socket``), which is then required.
    ``no_pivot`` uses ``MS_MOVE`` + ``chroot`` instead of ``pivot_root``.
    ``direct``: for a caller that exits right after (the shim's helper), the
    init is cloned from the caller itself when the config allows
    (:func:`runtime.oci.init.fork_direct`): it is the caller's child until then.
    ``gate`` is called once the config is read and checked, before anything is
    made: it returns to go on, or raises to make nothing (the shim's helper
    reads the config while the shim takes the container's lock).
    """
    state.check_id(container_id)
    if preserve_fds < 0:
        raise errors.InvalidSpec(f"preserve_fds must be 0 or more, not {preserve_fds}")
    bundle = os.path.abspath(bundle)
    spec = config.load(bundle)
    if not os.path.isdir(spec.root_path):
        raise errors.InvalidSpec(f"config.json: root.path {spec.root_path} is not a directory")
    if spec.has_process and spec.process.terminal and not console_socket:
        raise errors.InvalidSpec(
            "config.json: process.terminal needs a console socket (--console-socket): "
            "or set terminal to false"
        )
    if "time" in spec.namespaces and not os.path.exists("/proc/self/ns/time"):
        raise errors.Unavailable("this kernel has no time namespaces: remove {type: time}")
    res = spec.resources
    cpuset = res.cpu_cpus is not None or res.cpu_mems is not None
    cg = cgroups.plan(cgroups.discover(), spec.cgroups_path, container_id, cpuset)
    if gate is not None:
        gate()
    with errors.map_os_errors(f"create the runtime root {root}"):
        os.makedirs(root, mode=0o700, exist_ok=True)
    cdir = os.path.join(root, container_id)
    with errors.map_os_errors(f"create the state dir {cdir}"):
        try:
            os.mkdir(cdir, 0o711)
        except FileExistsError:
            raise errors.AlreadyExists(
                f"container {container_id} already exists in {root}"
            ) from None
    rec = state.Record(container_id, bundle, spec.root_path)
    rec.annotations = spec.annotations
    rec.cgroup_dirs = cg.dirs
    rec.freezer = cgroups.freezer_of(cg)
    rec.hooks = hooks.to_json(spec.hooks)
    rec.host_mounts = "mount" not in spec.namespaces
    rec.has_process = spec.has_process
    ctx = init.Context(spec, cg)
    ctx.container_id = container_id
    ctx.stdio = (stdin, stdout, stderr)
    ctx.preserve_fds = preserve_fds
    ctx.no_pivot = no_pivot
    opened: list[int] = []
    hook_failed = False
    try:
        fifo = os.path.join(cdir, state.FIFO)
        with errors.map_os_errors(f"create {fifo}"):
            os.mkfifo(fifo, 0o622)
            os.chmod(fifo, 0o622)  # whatever the umask: the init may write it as any uid
        state.save(root, rec)
        cgroups.ensure(cg, spec.resources, spec.devices)
        if cg.is_v2:
            from runtime.oci import devicefilter

            rules = cgroups.device_rules(spec.resources.devices, spec.devices)
            devicefilter.attach(cg.dirs[0], rules)
        _open_fds(ctx, cdir, opened)
        _connect_sockets(ctx, console_socket, opened)
        if spec.seccomp is not None:
            from runtime.oci import seccomp

            cache = os.path.join(root, "@seccomp")  # "@": never a container id
            ctx.seccomp = seccomp.program_for(spec.seccomp, cache)
        sync_r, sync_w = os.pipe2(os.O_CLOEXEC)
        opened += [sync_r, sync_w]
        ctx.sync_w = sync_w = _above(sync_w, ctx.preserve_fds, opened)
        sync_r = _above(sync_r, ctx.preserve_fds, opened)
        cmd_w = -1
        if spec.new_userns or "prestart" in spec.hooks or "createRuntime" in spec.hooks:
            cmd_r, cmd_w = os.pipe2(os.O_CLOEXEC)
            opened += [cmd_r, cmd_w]
            ctx.cmd_r = _above(cmd_r, ctx.preserve_fds, opened)
            cmd_w = _above(cmd_w, ctx.preserve_fds, opened)
        ctx.last_cap = caps.last_cap()
        child = init.fork_direct(ctx) if direct and init.can_fork_direct(spec) else -1
        direct = child > 0  # the init itself, or the intermediate (which says its pid)
        if not direct:
            child = os.fork()
            if child == 0:
                init.intermediate(ctx)  # never returns
        for fd in (sync_w, ctx.cmd_r):
            if fd >= 0:
                os.close(fd)
                opened.remove(fd)
        if direct:
            _record_pid(root, rec, child)
        try:
            error = _wait_ready(sync_r, root, rec, _Answers(spec, rec, child, cmd_w))
        except hooks.HookFailed:
            hook_failed = True
            raise
        finally:
            if not direct:
                _reap(child)
        if error is not None:
            hook_failed = isinstance(error, hooks.HookFailed)
            raise error
        if pid_file:
            _write_pid_file(pid_file, rec.pid)
        return Created(rec.pid, spec, cg)
    except BaseException as exc:
        _undo(root, rec, exc)
        if hook_failed and "poststop" in spec.hooks:
            try:
                hooks.run_all("poststop", spec.hooks["poststop"], state.oci_state(rec, "stopped"))
            except errors.RuntimeError_ as also:
                exc.add_note(f"poststop hook after the failed create: {also}")
        raise
    finally:
        for fd in opened:
            os.close(fd)


class _Answers:
    """The caller's side of the command pipe (see the module docstring)."""

    def __init__(self, spec: config.Spec, rec: state.Record, child: int, cmd_w: int) -> None:
        self.spec = spec
        self.rec = rec
        self.child = child
        self.cmd_w = cmd_w

    def userns(self) -> None:
        for name, maps in (
            ("uid_map", self.spec.uid_mappings),
            ("gid_map", self.spec.gid_mappings),
        ):
            text = "".join(f"{m.container_id} {m.host_id} {m.size}\n" for m in maps)
            path = f"/proc/{self.child}/{name}"
            with errors.map_os_errors(f"write {path} (linux.{name[:3]}Mappings)"):
                fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
                try:
                    os.write(fd, text.encode())
                finally:
                    os.close(fd)
        os.write(self.cmd_w, b"u")

    def hooks(self) -> None:
        st = state.oci_state(self.rec, "creating")
        for kind in ("prestart", "createRuntime"):
            if kind in self.spec.hooks:
                hooks.run_all(kind, self.spec.hooks[kind], st)
        os.write(self.cmd_w, b"h")


def _connect_sockets(ctx: init.Context, console_socket: str | None, opened: list[int]) -> None:
    """Connect the console socket and the seccomp listener from the host's view."""
    prof = ctx.spec.seccomp
    listener = prof.listener_path if prof is not None and prof.needs_listener else ""
    if not (ctx.spec.process.terminal and console_socket) and not listener:
        return
    import socket  # before the fork: the init cannot import

    for path, attr in ((console_socket, "console_fd"), (listener, "listener_fd")):
        if not path or (attr == "console_fd" and not ctx.spec.process.terminal):
            continue
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        try:
            with errors.map_os_errors(f"connect to {path}"):
                sock.connect(path)
        except BaseException:
            sock.close()
            raise
        fd = sock.detach()
        opened.append(fd)
        setattr(ctx, attr, _above(fd, ctx.preserve_fds, opened))


def _open_fds(ctx: init.Context, cdir: str, opened: list[int]) -> None:
    """Open, in the caller's namespaces, what the forked processes will use."""
    fd = os.open(cdir, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    opened.append(fd)
    ctx.state_fd = _above(fd, ctx.preserve_fds, opened)
    for kind, fd in cgroups.join_fds(ctx.cgroup):
        opened.append(fd)
        fd = _above(fd, ctx.preserve_fds, opened)
        if kind == "dir":
            ctx.cgroup_fd = fd
        elif kind == "procs":
            ctx.procs_fds.append(fd)
        else:
            ctx.tasks_fds.append(fd)
    ordered = sorted(ctx.spec.namespaces.items(), key=lambda item: item[0] != "user")
    for kind, path in ordered:  # the user namespace first: it owns the others
        if path is None:
            continue
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            raise errors.InvalidSpec(
                f"config.json: linux.namespaces: cannot open the {kind} namespace {path}: "
                f"{(exc.strerror or str(exc)).lower()}"
            ) from None
        opened.append(fd)
        ctx.ns_fds.append((kind, _above(fd, ctx.preserve_fds, opened)))


def _above(fd: int, preserve_fds: int, opened: list[int]) -> int:
    """Move ``fd`` (listed in ``opened``) above 0..2 and the preserved range, so
    that neither the stdio dup2s nor ``preserve_fds`` can clash with it."""
    new = init.move_above(fd, 3 + preserve_fds)
    opened[opened.index(fd)] = new
    return new


def _wait_ready(
    sync_r: int, root: str, rec: state.Record, answers: _Answers
) -> errors.RuntimeError_ | None:
    """Read the children's messages until the init is ready or something failed."""
    buf = b""
    while True:
        chunk = os.read(sync_r, 4096)
        if not chunk:
            return errors.Terminal(
                f"create container {rec.id}: the init exited during setup without a reason"
            )
        buf += chunk
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            msg = jsonio.loads(line)
            assert isinstance(msg, dict)  # our own children wrote it
            if msg["type"] == "pid":
                _record_pid(root, rec, int(msg["pid"]))
            elif msg["type"] == "userns":
                answers.userns()
            elif msg["type"] == "hooks":
                answers.hooks()
            elif msg["type"] == "ready":
                return None
            elif msg.get("category") == "HookFailed":
                return hooks.HookFailed(f"create container {rec.id}: {msg.get('message')}")
            else:
                category = getattr(errors, str(msg.get("category")), errors.Terminal)
                if not (isinstance(category, type) and issubclass(category, errors.RuntimeError_)):
                    category = errors.Terminal
                return category(f"create container {rec.id}: {msg.get('message')}")


def _record_pid(root: str, rec: state.Record, pid: int) -> None:
    """The init's pid and start time into state.json (so it can be found and killed)."""
    rec.pid = pid
    seen = state.proc_stat(pid)
    rec.start_time = seen[1] if seen else 0
    state.save(root, rec)


def _reap(pid: int) -> None:
    while True:
        try:
            os.waitpid(pid, 0)
            return
        except ChildProcessError:
            return
        except InterruptedError:
            continue


def _write_pid_file(path: str, pid: int) -> None:
    with errors.map_os_errors(f"write the pid file {path}"):
        state.write_file(os.path.abspath(path), str(pid).encode(), 0o644)


def _undo(root: str, rec: state.Record, exc: BaseException) -> None:
    """Remove what create made; a failure here is added to ``exc`` as a note."""
    try:
        if rec.pid > 0:
            seen = state.proc_stat(rec.pid)
            if seen is not None and seen[1] == rec.start_time:
                try:
                    os.kill(rec.pid, 9)
                except ProcessLookupError:
                    pass
                _reap(rec.pid)  # ours only if we are its subreaper; else ECHILD at once
        cgroups.remove(rec.cgroup_dirs)
        if rec.host_mounts:
            state.detach_rootfs(rec.rootfs)
        state.remove_dir(os.path.join(root, rec.id))
    except Exception as cleanup:  # keep the original error; say what is left
        exc.add_note(f"cleanup after the failed create also failed: {cleanup}")
