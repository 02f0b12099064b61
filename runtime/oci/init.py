"""The two forked processes of ``create``: the intermediate and the container's init.

``create`` (in the caller, e.g. the shim) forks the **intermediate**, which
sets the rlimits and ``oom_score_adj`` (inherited by the init; done here,
while still privileged in the host's user namespace), joins the namespaces
given by path (the user namespace first), creates a new user namespace if
asked — the caller, root on the host, then writes its ``uid_map`` and
``gid_map`` (message ``userns``, answered with a byte on the command pipe) and
the intermediate becomes root in it — creates the other new ones (as clone
flags of the init, or ``unshare``d before a fork: a new pid or time namespace
only applies to its children; time offsets are written before the fork, see
:func:`_fork_init`), forks the **init** (pid 1 of that namespace), tells the
caller the pid, releases the init (``g`` on a pipe), says when it is in its
cgroup (``j``) and exits. The init is thereby reparented to the caller's
nearest child subreaper — the shim.

Joining a cgroup by pid (``cgroup.procs``) is slow: the kernel's global
``cgroup_threadgroup_rwsem`` waits for an RCU grace period (8 ms median,
up to 15 ms, measured here). So nothing is joined that way when it can be
helped (:mod:`runtime.sys.clone`): the init is forked straight into its
cgroup v2 directory (``CLONE_INTO_CGROUP``; the hybrid ``unified`` tree or
pure v2), and on v1 the init writes ``0`` to each hierarchy's ``tasks`` file
itself, first thing after ``g`` (a thread moving itself takes no global
lock). All through fds the caller opened, so a joined mount namespace does
not matter. Where the kernel refuses the clone (before 5.7; a new user
namespace may not enter a host cgroup that way) the intermediate writes the
init's pid into ``cgroup.procs`` after ``g`` while the init sets itself up —
session, stdio, ``lo``, hostname, sysctls, oom_score_adj, rlimits, the rootfs
(:mod:`runtime.oci.rootfs`) and the process (:mod:`runtime.oci.process`) —
which waits for ``j`` only before it reports ready, or before anything else
when it must create a cgroup namespace (which is rooted at the cgroup it is
in). Pages it touches meanwhile are charged to the caller's cgroup and freed
at exec. Hooks: just before ``pivot_root`` the init asks the caller to run
``prestart``/``createRuntime`` (message ``hooks``, answered on the command
pipe) and runs ``createContainer`` itself; with ``process.terminal`` it makes
a pty in the container's devpts, binds the slave on ``/dev/console`` and sends
the master to the console socket. After the process's identity is set (and
the seccomp filter loaded, last, see :mod:`runtime.oci.process`) it marks
every fd >= 3 close-on-exec except ``preserve_fds``; reports ``ready``;
then blocks opening ``exec.fifo`` for writing until ``start`` opens it for
reading, writes a byte, runs ``startContainer`` hooks, and execs — holding the
fifo open until then (close-on-exec), so that ``start`` returns once the
container's process is its program, as runc's does. Both processes are
``PR_SET_DUMPABLE=0`` throughout, so no container process can ptrace them or
open their ``/proc/<pid>`` entries.

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
from runtime.oci import cgroups, config, hooks, paths, process, rootfs, state
from runtime.shim import jsonio
from runtime.sys import clone, netdev, tty
from runtime.sys import seccomp as scmp

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = [
    "Context",
    "can_fork_direct",
    "fork_direct",
    "intermediate",
    "move_above",
    "send",
    "wait_for",
]

_CLONE_FLAGS = {
    "user": rsys.CLONE_NEWUSER,
    "time": rsys.CLONE_NEWTIME,
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
        self.cgroup_fd = -1  # O_PATH of the v2 directory: the init is born there
        self.procs_fds: list[int] = []  # its cgroup.procs: joined by pid if it cannot be
        self.tasks_fds: list[int] = []  # v1 hierarchies' tasks: the init joins them itself
        self.ns_fds: list[tuple[str, int]] = []  # namespaces to join
        self.stdio: tuple[int | None, int | None, int | None] = (None, None, None)
        self.preserve_fds = 0
        self.last_cap = 40
        self.container_id = ""
        self.host_pid = 0  # the init's pid as the caller sees it
        self.no_pivot = False
        self.cmd_r = -1  # answers from the caller (userns maps written, hooks run)
        self.console_fd = -1  # connected --console-socket
        self.listener_fd = -1  # connected seccomp listenerPath
        self.seccomp: tuple[bytes, int] | None = None  # BPF program and flags, by the caller


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
        spec = ctx.spec
        _set_limits(spec)
        for kind, fd in ctx.ns_fds:
            with errors.map_os_errors(f"join the {kind} namespace {spec.namespaces[kind]}"):
                rsys.setns(fd, _CLONE_FLAGS[kind])
        if spec.new_userns:
            with errors.map_os_errors("create the user namespace"):
                rsys.unshare(rsys.CLONE_NEWUSER)
            send(ctx.sync_w, {"type": "userns"})
            wait_for(ctx.cmd_r, b"u")
        if "user" in spec.namespaces:
            with errors.map_os_errors("become root in the user namespace (is 0 mapped?)"):
                os.setresgid(0, 0, 0)
                os.setresuid(0, 0, 0)
            try:
                os.setgroups([])
            except PermissionError:
                pass  # a joined namespace whose setgroups is "deny"
        flags = _new_namespace_flags(spec)
        floor = 3 + ctx.preserve_fds  # clear of the stdio dup2s and the preserved fds
        go_r, go_w = (move_above(fd, floor) for fd in os.pipe2(os.O_CLOEXEC))
        pid, born_in_cgroup = _fork_init(ctx, flags)
        if pid == 0:
            os.close(go_w)
            _container_init(ctx, go_r)
        os.close(go_r)
        try:
            send(ctx.sync_w, {"type": "pid", "pid": pid})
            os.write(go_w, b"g")
            if not born_in_cgroup:  # the slow way: the kernel's global lock, see sys.clone
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


def _new_namespace_flags(spec: config.Spec) -> int:
    """Clone flags of the namespaces the init gets new (the cgroup one it makes
    itself, once in its cgroup; a user namespace comes first, by unshare)."""
    flags = 0
    for kind, path in spec.namespaces.items():
        if path is None and kind not in ("cgroup", "user"):
            flags |= _CLONE_FLAGS[kind]
    return flags


def can_fork_direct(spec: config.Spec) -> bool:
    """Whether :func:`fork_direct` may make this container's init: no user
    namespace (its maps are written between unshare and fork), no time
    namespace (its offsets too), no pid namespace joined by path (``setns``
    of a pid namespace only applies to the caller's children)."""
    ns = spec.namespaces
    return "user" not in ns and "time" not in ns and ns.get("pid") is None


def fork_direct(ctx: Context) -> int:
    """Clone the init straight from the caller, without the intermediate: into its
    v2 cgroup, in its new namespaces (one ``clone3``, see :func:`_fork_init`);
    the init then sets its rlimits and ``oom_score_adj`` and joins the
    namespaces given by path itself (it is privileged in the host's user
    namespace until it drops its capabilities, and a process may ``setns``
    itself into every other kind). A fork and a process less per create.

    For callers that exit right after ``create`` (the shim's helper): the init
    is their child, and reaches the nearest subreaper only when they exit.
    Returns its pid, or -1 when the kernel refuses the clone (then nothing was
    made: the caller goes the intermediate's way).
    """
    flags = _new_namespace_flags(ctx.spec)
    if ctx.cgroup_fd >= 0:
        flags |= clone.CLONE_INTO_CGROUP
    try:
        pid = clone.fork(flags, ctx.cgroup_fd)
    except OSError:
        return -1
    if pid == 0:
        try:
            gc.disable()  # a forked copy: do not touch (and copy) the caller's heap
            _seal_imports()
            rsys.prctl(rsys.PR_SET_DUMPABLE, 0)
            _set_limits(ctx.spec)
            for kind, fd in ctx.ns_fds:
                with errors.map_os_errors(f"join the {kind} namespace {ctx.spec.namespaces[kind]}"):
                    rsys.setns(fd, _CLONE_FLAGS[kind])
        except BaseException as exc:
            _report(ctx.sync_w, exc)
            os._exit(1)
        _container_init(ctx, -1)
    return pid


def _fork_init(ctx: Context, flags: int) -> tuple[int, bool]:
    """Fork the init in new namespaces (``flags``); returns its pid (0 in the
    child) and whether it was born in its v2 cgroup.

    Where it can, one ``clone3`` does it all: ``CLONE_INTO_CGROUP`` (no global
    lock to wait for, see :mod:`runtime.sys.clone`) with the namespaces as clone
    flags, which the kernel drops again if the clone fails — whereas after
    ``unshare(CLONE_NEWPID)`` a first fork that fails late (a cgroup refused)
    leaves the namespace unable to take any process (ENOMEM). Not with a user
    namespace (a host cgroup refuses a process of a new one; it goes through
    the caller's fds instead) nor a new time namespace (its offsets are written
    between the unshare and the fork). Otherwise, or when the kernel refuses
    (before Linux 5.7), ``unshare`` then :func:`os.fork`, and the caller moves
    the init into its v2 cgroup by pid.
    """
    spec = ctx.spec
    if ctx.cgroup_fd >= 0 and "user" not in spec.namespaces and not flags & rsys.CLONE_NEWTIME:
        try:
            return clone.fork(clone.CLONE_INTO_CGROUP | flags, ctx.cgroup_fd), True
        except OSError:
            pass  # before Linux 5.7, or a cgroup this process may not enter that way
    if flags:
        with errors.map_os_errors("create the container's namespaces"):
            rsys.unshare(flags)
    if spec.time_offsets:
        text = "".join(f"{clock} {s} {n}\n" for clock, (s, n) in spec.time_offsets.items())
        _write_proc("/proc/self/timens_offsets", text, "linux.timeOffsets")
    return os.fork(), False


def _join_v1(ctx: Context) -> None:
    """Move this (single-threaded) init into each v1 hierarchy's cgroup: ``0``
    written to ``tasks`` by the thread itself takes no global lock (by pid, the
    kernel waits for an RCU grace period, ~8 ms here)."""
    for fd in ctx.tasks_fds:
        with errors.map_os_errors("move the container's init into its v1 cgroups"):
            os.write(fd, b"0")
        os.close(fd)
    ctx.tasks_fds = []


def _set_limits(spec: config.Spec) -> None:
    """rlimits and oom_score_adj, inherited by the init through fork. Set here,
    in the host's user namespace: raising a hard limit or lowering the score
    needs CAP_SYS_RESOURCE there, which a new user namespace does not give."""
    if spec.process.oom_score_adj is not None:
        _write_proc("/proc/self/oom_score_adj", str(spec.process.oom_score_adj), "oomScoreAdj")
    for rl in spec.process.rlimits:
        with errors.map_os_errors(f"set {rl.name} to {rl.soft}/{rl.hard}"):
            rsys.setrlimit(rl.number, rl.soft, rl.hard)


def _container_init(ctx: Context, go_r: int) -> None:
    """Body of the container's init; never returns. ``go_r``: the intermediate's
    ``g``/``j`` pipe, or -1 when forked directly (:func:`fork_direct`: in its
    cgroup from birth, nobody to wait for)."""
    ready = False
    try:
        rsys.prctl(rsys.PR_SET_DUMPABLE, 0)
        if go_r >= 0:
            wait_for(go_r, b"g")
        _join_v1(ctx)
        host_pid = ctx.host_pid = int(os.readlink("/proc/self"))  # the host's /proc, until pivot
        os.setsid()
        os.umask(0)
        spec = ctx.spec
        joined = False
        if "cgroup" in spec.namespaces and spec.namespaces["cgroup"] is None:
            if go_r >= 0:
                wait_for(go_r, b"j")
            joined = True
            with errors.map_os_errors("create the cgroup namespace"):
                rsys.unshare(rsys.CLONE_NEWCGROUP)
        if not spec.process.terminal:
            _setup_stdio(ctx)
        _setup_kernel(spec)

        def before_pivot(root_fd: int) -> None:
            if ctx.cmd_r >= 0 and ("prestart" in spec.hooks or "createRuntime" in spec.hooks):
                send(ctx.sync_w, {"type": "hooks"})
                wait_for(ctx.cmd_r, b"h")
            if "createContainer" in spec.hooks:
                hooks.run_all(
                    "createContainer", spec.hooks["createContainer"], _state(ctx, host_pid)
                )
            if spec.process.terminal:
                _setup_terminal(ctx, root_fd)

        rootfs.prepare(spec, ctx.cgroup, "cgroup" in spec.namespaces, before_pivot, ctx.no_pivot)
        rsys.reset_signals()
        path, env = "", dict[str, str]()
        if spec.has_process:
            path, env = process.finalize(spec.process, ctx.last_cap, _seccomp_loader(ctx))
        _cloexec_from(3 + ctx.preserve_fds)
        for fd in range(3, 3 + ctx.preserve_fds):
            try:
                os.set_inheritable(fd, True)
            except OSError:
                pass
        if go_r >= 0:
            if not joined:
                wait_for(go_r, b"j")
            os.close(go_r)
        send(ctx.sync_w, {"type": "ready"})
        ready = True
        fifo = os.open(state.FIFO, os.O_WRONLY | os.O_CLOEXEC, dir_fd=ctx.state_fd)
        if not spec.has_process:  # start refuses and kills us; never run anything
            os._exit(1)
        os.write(fifo, b"0")  # kept open (close-on-exec): start reads to EOF = exec'd
        if "startContainer" in spec.hooks:
            st = _state(ctx, host_pid)
            st["status"] = "created"
            hooks.run_all("startContainer", spec.hooks["startContainer"], st)
        os.execve(path, spec.process.args, env)
    except BaseException as exc:
        if not ready:
            _report(ctx.sync_w, exc)
        else:
            _stderr(f"pyreconcile-runc: container init: {exc}\n")
    os._exit(127 if ready else 1)


def _state(ctx: Context, pid: int) -> dict[str, object]:
    return {
        "ociVersion": state.OCI_VERSION,
        "id": ctx.container_id,
        "status": "creating",
        "pid": pid,
        "bundle": ctx.spec.bundle,
        "annotations": dict(ctx.spec.annotations),
    }


def _seccomp_loader(ctx: Context) -> Callable[[], None] | None:
    """What loads the filter (and sends a notify fd to the listener), or None."""
    if ctx.seccomp is None:
        return None
    program, flags = ctx.seccomp

    def load() -> None:
        with errors.map_os_errors("load the seccomp filter"):
            notify = scmp.load_program(program, flags)
        if ctx.listener_fd >= 0:
            prof = ctx.spec.seccomp
            assert prof is not None
            with errors.map_os_errors(f"send the seccomp fd to {prof.listener_path}"):
                st = _state(ctx, 0)
                st.update(fds=["seccompFd"], pid=ctx.host_pid)
                st["metadata"] = prof.listener_metadata
                tty.send_fd(ctx.listener_fd, notify, jsonio.dumps(st))
                os.close(notify)

    return load


def _setup_terminal(ctx: Context, root_fd: int) -> None:
    """A pty of the container's own devpts: slave on /dev/console and as stdio,
    the master to the console socket (see :mod:`runtime.sys.tty`)."""
    with errors.map_os_errors("open the container's /dev/ptmx"):
        ptmx = paths.open_in_root(root_fd, "/dev/ptmx")
        try:
            master, slave = tty.open_pty(paths.fd_path(ptmx))
        finally:
            os.close(ptmx)
    try:
        size = ctx.spec.process.console_size
        if size is not None:
            tty.set_size(slave, *size)
        with errors.map_os_errors("bind the pty on /dev/console"):
            console = paths.open_in_root(root_fd, "/dev/console", create="file")
            try:
                rsys.mount(paths.fd_path(slave), paths.fd_path(console), None, rsys.MS_BIND)
            finally:
                os.close(console)
        with errors.map_os_errors("send the pty master to the console socket"):
            tty.send_fd(ctx.console_fd, master, "/dev/ptmx")
        for target in (0, 1, 2):
            os.dup2(slave, target)
        with errors.map_os_errors("make the pty the controlling terminal"):
            tty.set_controlling(0)
    finally:
        os.close(master)
        os.close(slave)


def move_above(fd: int, floor: int) -> int:
    """``fd`` if it is >= ``floor``, else a close-on-exec copy at or above it
    (the original is closed)."""
    if fd >= floor:
        return fd
    new = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, floor)
    os.close(fd)
    return new


def wait_for(fd: int, step: bytes) -> None:
    """Block until the other side sends ``step``; if it died or gave up instead,
    it has reported why to the caller, so just go."""
    if os.read(fd, 1) != step:
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
    if spec.personality is not None:
        with errors.map_os_errors("linux.personality"):
            rsys.personality(spec.personality)


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
