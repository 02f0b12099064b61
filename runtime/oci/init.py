"""The two forked processes of ``create``: the intermediate and the container's init.

``create`` (in the caller, e.g. the shim) forks the **intermediate**, which
joins the namespaces given by path, ``unshare``s the new ones (a new pid
namespace only applies to its children), forks the **init** (pid 1 of that
namespace), tells the caller the pid, releases the init (``g`` on a pipe),
writes the init's pid into the container's ``cgroup.procs`` (through fds the
caller opened, so a joined mount namespace does not matter), says so (``j``)
and exits. The init is thereby reparented to the caller's nearest child
subreaper — the shim.

Joining a cgroup is the slow step of create when the host is idle: the
kernel's cgroup_threadgroup_rwsem waits for an RCU grace period (6-13 ms
measured here). So the init does its own setup meanwhile — session, stdio,
``lo``, hostname, sysctls, oom_score_adj, rlimits, the rootfs
(:mod:`runtime.oci.rootfs`) and the process (:mod:`runtime.oci.process`) —
and waits for ``j`` only before it reports ready, or before anything else
when it must create a cgroup namespace (which is rooted at the cgroup it is
in). Pages it touches meanwhile are charged to the caller's cgroup and freed
at exec. Then it marks every fd >= 3 close-on-exec except ``preserve_fds``;
reports ``ready``;
then blocks opening ``exec.fifo`` for writing until ``start`` opens it for
reading, and execs. Both processes are ``PR_SET_DUMPABLE=0`` throughout, so
no container process can ptrace them or open their ``/proc/<pid>`` entries.

Both processes first *seal the import system* (:func:`_seal_imports`): after
``setns`` or ``pivot_root`` a path-based import would search ``sys.path`` in
the container's filesystem, and a module planted in an image would then run
as the fully privileged init. Everything they need is imported before fork.

Neither process logs: failures travel as one JSON line on the sync pipe
(``{"type": "error", "category": "InvalidSpec", "message": …}``) and the
process ``_exit``\\ s. Only an ``execve`` failure after ``ready`` cannot be
reported that way (the caller has moved on); it goes to the container's stderr.
"""

from __future__ import annotations

import fcntl
import gc
import os
import sys

import runtime.sys as rsys
from runtime import errors
from runtime.oci import cgroups, config, process, rootfs, state
from runtime.shim import jsonio
from runtime.sys import netdev

__all__ = ["Context", "intermediate", "move_above", "send"]

_CLONE_FLAGS = {
    "pid": rsys.CLONE_NEWPID,
    "network": rsys.CLONE_NEWNET,
    "mount": rsys.CLONE_NEWNS,
    "ipc": rsys.CLONE_NEWIPC,
    "uts": rsys.CLONE_NEWUTS,
    "cgroup": rsys.CLONE_NEWCGROUP,
}


class Context:
    """What the forked processes need; every fd is O_CLOEXEC and above the
    ``preserve_fds`` range."""

    def __init__(self, spec: config.Spec, cg: cgroups.Cgroup) -> None:
        self.spec = spec
        self.cgroup = cg
        self.sync_w = -1  # messages to the caller
        self.state_fd = -1  # O_PATH of the container's state dir (exec.fifo)
        self.procs_fds: list[int] = []  # cgroup.procs of each hierarchy
        self.ns_fds: list[tuple[str, int]] = []  # namespaces to join
        self.stdio: tuple[int | None, int | None, int | None] = (None, None, None)
        self.preserve_fds = 0
        self.last_cap = 40


def send(fd: int, message: dict[str, object]) -> None:
    os.write(fd, jsonio.dumps(message).encode() + b"\n")


def _report(fd: int, exc: BaseException) -> None:
    if isinstance(exc, errors.RuntimeError_):
        category, text = type(exc).__name__, str(exc)
    elif isinstance(exc, OSError):
        category = errors.category_for_errno(exc.errno).__name__
        text = (exc.strerror or str(exc)).lower()
        if exc.filename:
            text = f"{exc.filename}: {text}"
    else:
        category, text = "Terminal", f"{type(exc).__name__}: {exc}"
    try:
        send(fd, {"type": "error", "category": category, "message": text})
    except OSError:
        pass


def _seal_imports() -> None:
    """Leave only the builtin and frozen importers: no import can read a file."""
    sys.meta_path[:] = [
        finder
        for finder in sys.meta_path
        if getattr(finder, "__name__", "") in ("BuiltinImporter", "FrozenImporter")
    ]
    sys.path[:] = []
    sys.path_hooks[:] = []
    sys.path_importer_cache.clear()


def intermediate(ctx: Context) -> None:
    """Body of the first child; never returns."""
    code = 1
    try:
        gc.disable()  # a forked copy: do not touch (and copy) the caller's heap
        _seal_imports()
        rsys.prctl(rsys.PR_SET_DUMPABLE, 0)
        for kind, fd in ctx.ns_fds:
            with errors.map_os_errors(f"join the {kind} namespace {ctx.spec.namespaces[kind]}"):
                rsys.setns(fd, _CLONE_FLAGS[kind])
        flags = 0
        for kind, path in ctx.spec.namespaces.items():
            if path is None and kind != "cgroup":  # cgroup: by the init, once in its cgroup
                flags |= _CLONE_FLAGS[kind]
        if flags:
            with errors.map_os_errors("create the container's namespaces"):
                rsys.unshare(flags)
        floor = 3 + ctx.preserve_fds  # clear of the stdio dup2s and the preserved fds
        go_r, go_w = (move_above(fd, floor) for fd in os.pipe2(os.O_CLOEXEC))
        pid = os.fork()
        if pid == 0:
            os.close(go_w)
            _container_init(ctx, go_r)
        os.close(go_r)
        try:
            send(ctx.sync_w, {"type": "pid", "pid": pid})
            os.write(go_w, b"g")
            for fd in ctx.procs_fds:
                with errors.map_os_errors(f"move the container's init {pid} into its cgroup"):
                    os.write(fd, str(pid).encode())
            os.write(go_w, b"j")
        except BaseException:
            os.kill(pid, 9)
            raise
        code = 0
    except BaseException as exc:
        _report(ctx.sync_w, exc)
    finally:
        os._exit(code)


def _container_init(ctx: Context, go_r: int) -> None:
    """Body of the container's init; never returns."""
    ready = False
    try:
        rsys.prctl(rsys.PR_SET_DUMPABLE, 0)
        _wait_for(go_r, b"g")
        os.setsid()
        os.umask(0)
        spec = ctx.spec
        joined = False
        if "cgroup" in spec.namespaces and spec.namespaces["cgroup"] is None:
            _wait_for(go_r, b"j")
            joined = True
            with errors.map_os_errors("create the cgroup namespace"):
                rsys.unshare(rsys.CLONE_NEWCGROUP)
        _setup_stdio(ctx)
        _setup_kernel(spec)
        rootfs.prepare(spec, ctx.cgroup, "cgroup" in spec.namespaces)
        path, env = process.finalize(spec.process, ctx.last_cap)
        _cloexec_from(3 + ctx.preserve_fds)
        for fd in range(3, 3 + ctx.preserve_fds):
            try:
                os.set_inheritable(fd, True)
            except OSError:
                pass
        if not joined:
            _wait_for(go_r, b"j")
        os.close(go_r)
        send(ctx.sync_w, {"type": "ready"})
        ready = True
        fifo = os.open(state.FIFO, os.O_WRONLY | os.O_CLOEXEC, dir_fd=ctx.state_fd)
        os.write(fifo, b"0")
        os.close(fifo)
        rsys.reset_signals()
        os.execve(path, spec.process.args, env)
    except BaseException as exc:
        if not ready:
            _report(ctx.sync_w, exc)
        else:
            _stderr(f"pyreconcile-runc: container init: {exc}\n")
    os._exit(127 if ready else 1)


def move_above(fd: int, floor: int) -> int:
    """``fd`` if it is >= ``floor``, else a close-on-exec copy at or above it
    (the original is closed)."""
    if fd >= floor:
        return fd
    new = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, floor)
    os.close(fd)
    return new


def _wait_for(go_r: int, step: bytes) -> None:
    """Block until the intermediate reports ``step``; if it died instead, it has
    reported why to the caller, so just go."""
    if os.read(go_r, 1) != step:
        os._exit(1)


def _setup_stdio(ctx: Context) -> None:
    """Make the given fds the init's 0, 1, 2 (dup'ed high first: a given fd may
    itself be 0, 1 or 2)."""
    floor = 3 + ctx.preserve_fds
    high = [
        (target, fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, floor))
        for target, fd in enumerate(ctx.stdio)
        if fd is not None
    ]
    for target, fd in high:
        os.dup2(fd, target)
        os.close(fd)


def _setup_kernel(spec: config.Spec) -> None:
    """Per-namespace kernel settings, through the host's /proc (still ours
    before pivot_root; /proc/sys entries are those of the writer's namespaces)."""
    if "network" in spec.namespaces and spec.namespaces["network"] is None:
        with errors.map_os_errors("bring up lo in the container's network namespace"):
            netdev.set_link_up("lo")
    if spec.hostname is not None:
        with errors.map_os_errors(f"set hostname {spec.hostname!r}"):
            rsys.sethostname(spec.hostname)
    if spec.domainname is not None:
        with errors.map_os_errors(f"set domainname {spec.domainname!r}"):
            rsys.setdomainname(spec.domainname)
    for key, value in spec.sysctl.items():
        _write_proc(f"/proc/sys/{key.replace('.', '/')}", value, f"set sysctl {key}")
    if spec.process.oom_score_adj is not None:
        _write_proc("/proc/self/oom_score_adj", str(spec.process.oom_score_adj), "oomScoreAdj")
    for rl in spec.process.rlimits:
        with errors.map_os_errors(f"set {rl.name} to {rl.soft}/{rl.hard}"):
            rsys.setrlimit(rl.number, rl.soft, rl.hard)


def _write_proc(path: str, value: str, what: str) -> None:
    with errors.map_os_errors(f"{what} ({path})"):
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
        try:
            if rsys.fstatfs_type(fd) != rsys.PROC_SUPER_MAGIC:
                raise errors.FailedPrecondition(f"{path} is not on procfs")
            os.write(fd, value.encode())
        finally:
            os.close(fd)


def _cloexec_from(first: int) -> None:
    """Mark every fd >= ``first`` close-on-exec (CVE-2024-21626)."""
    try:
        rsys.close_range(first, 0xFFFFFFFF, rsys.CLOSE_RANGE_CLOEXEC)
        return
    except OSError:
        pass  # kernel < 5.11: walk the fd table instead
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd >= first:
            try:
                os.set_inheritable(fd, False)
            except OSError:
                pass


def _stderr(text: str) -> None:
    try:
        os.write(2, text.encode(errors="replace"))
    except OSError:
        pass
