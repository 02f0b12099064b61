"""``create``: validate the bundle, make the state dir and the cgroup, fork the
container's init (see :mod:`runtime.oci.init`) and wait until it is ready.

On any failure everything made so far is undone — the init is killed (and
reaped if the caller is its subreaper), the cgroup and the state dir are
removed — and the init's own message is raised in its category.
"""

from __future__ import annotations

import os

from runtime import errors
from runtime.oci import cgroups, config, init, state
from runtime.shim import jsonio
from runtime.sys import caps

__all__ = ["create"]


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
) -> int:
    """Create the container from ``bundle/config.json``; return the init's pid.

    The init is set up (namespaces, cgroup, rootfs, mounts, pivot_root,
    hostname …) and blocks until :func:`runtime.oci.start.start`. ``stdin``,
    ``stdout``, ``stderr`` become its 0/1/2 (None: the caller's own). It is
    double-forked, so it is reparented to the caller's nearest child subreaper:
    a caller that wants to ``waitpid`` it sets ``PR_SET_CHILD_SUBREAPER`` first.
    """
    state.check_id(container_id)
    if preserve_fds < 0:
        raise errors.InvalidSpec(f"preserve_fds must be 0 or more, not {preserve_fds}")
    bundle = os.path.abspath(bundle)
    spec = config.load(bundle)
    if not os.path.isdir(spec.root_path):
        raise errors.InvalidSpec(f"config.json: root.path {spec.root_path} is not a directory")
    cg = cgroups.plan(cgroups.discover(), spec.cgroups_path, container_id)
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
    ctx = init.Context(spec, cg)
    ctx.stdio = (stdin, stdout, stderr)
    ctx.preserve_fds = preserve_fds
    opened: list[int] = []
    try:
        fifo = os.path.join(cdir, state.FIFO)
        with errors.map_os_errors(f"create {fifo}"):
            os.mkfifo(fifo, 0o622)
            os.chmod(fifo, 0o622)  # whatever the umask: the init may write it as any uid
        state.save(root, rec)
        cgroups.ensure(cg, spec.resources, spec.devices)
        _open_fds(ctx, cdir, opened)
        sync_r, sync_w = os.pipe2(os.O_CLOEXEC)
        opened += [sync_r, sync_w]
        ctx.sync_w = sync_w = _above(sync_w, ctx.preserve_fds, opened)
        sync_r = _above(sync_r, ctx.preserve_fds, opened)
        ctx.last_cap = caps.last_cap()
        child = os.fork()
        if child == 0:
            init.intermediate(ctx)  # never returns
        os.close(sync_w)
        opened.remove(sync_w)
        try:
            error = _wait_ready(sync_r, root, rec)
        finally:
            _reap(child)
        if error is not None:
            raise error
        if pid_file:
            _write_pid_file(pid_file, rec.pid)
        return rec.pid
    except BaseException as exc:
        _undo(root, rec, exc)
        raise
    finally:
        for fd in opened:
            os.close(fd)


def _open_fds(ctx: init.Context, cdir: str, opened: list[int]) -> None:
    """Open, in the caller's namespaces, what the forked processes will use."""
    fd = os.open(cdir, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    opened.append(fd)
    ctx.state_fd = _above(fd, ctx.preserve_fds, opened)
    for fd in cgroups.procs_fds(ctx.cgroup):
        opened.append(fd)
        ctx.procs_fds.append(_above(fd, ctx.preserve_fds, opened))
    for kind, path in ctx.spec.namespaces.items():
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


def _wait_ready(sync_r: int, root: str, rec: state.Record) -> errors.RuntimeError_ | None:
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
                rec.pid = int(msg["pid"])
                seen = state.proc_stat(rec.pid)
                rec.start_time = seen[1] if seen else 0
                state.save(root, rec)
            elif msg["type"] == "ready":
                return None
            else:
                category = getattr(errors, str(msg.get("category")), errors.Terminal)
                if not (isinstance(category, type) and issubclass(category, errors.RuntimeError_)):
                    category = errors.Terminal
                return category(f"create container {rec.id}: {msg.get('message')}")


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
        state.remove_dir(os.path.join(root, rec.id))
    except Exception as cleanup:  # keep the original error; say what is left
        exc.add_note(f"cleanup after the failed create also failed: {cleanup}")
