"""``exec``: run another process in a running container (runc exec).

The process joins the container's namespaces and cgroup and gets the
identity, capabilities, rlimits and seccomp filter of ``process`` (a
config.json ``process`` object; :func:`process_from_config` builds one from
the container's own for ``exec ARGS``).

Security (CVE-2019-5736, CVE-2016-9962): the process that ``setns()``s into
the container is **not** a fork of the caller. The caller forks a child that
execs the *guarded interpreter* (:mod:`runtime.sys.exeguard`: the real
interpreter on a detached read-only mount) running :mod:`runtime.oci.exec_stage`.
So from the moment anything of ours is visible in the container,
``/proc/<pid>/exe`` is a file nobody can open for writing — also when the
container's program is a ``#!/proc/self/exe`` script that re-executes us. The
stage is ``PR_SET_DUMPABLE=0`` from its first instruction until the final
exec (no ptrace, no /proc/<pid>/fd from the container), imports everything
from the host before ``setns`` and then seals the import system.

The caller opens, from its own (host) view: the container's namespace files
(after checking through a pidfd that the init is still the one recorded),
its ``cgroup.procs`` files, the console socket; the stage only uses fds.
Messages come back on a close-on-exec pipe: the new pid, or an error; EOF
without an error means the exec succeeded. Costs one interpreter start
(~10 ms) on top of runc-like work — exec is not the hot path.
"""

from __future__ import annotations

import os
import sys

from runtime import errors
from runtime.oci import config_process, state
from runtime.shim import jsonio
from runtime.sys import caps, exeguard

__all__ = ["exec_process", "process_from_config"]

_NS_FILES = ("user", "ipc", "uts", "net", "pid", "cgroup", "time", "mnt")  # join order
_BOOT = (
    "import sys\n"
    "sys.path[:0] = {path!r}\n"
    "from runtime.oci import exec_stage\n"
    "exec_stage.main({fd})\n"
)


def process_from_config(
    bundle: str,
    args: list[str],
    *,
    env: list[str] | None = None,
    cwd: str | None = None,
    user: tuple[int, int] | None = None,
    additional_gids: list[int] | None = None,
    add_caps: list[str] | None = None,
    terminal: bool = False,
    no_new_privileges: bool | None = None,
) -> dict[str, object]:
    """The container's ``process`` object with ``args`` and the given changes
    (what ``runc exec ARGS`` runs)."""
    path = os.path.join(bundle, "config.json")
    with errors.map_os_errors(f"read {path}"), open(path, "rb") as f:
        doc = jsonio.loads(f.read())
    base = dict(doc.get("process") or {}) if isinstance(doc, dict) else {}
    proc: dict[str, object] = {k: v for k, v in base.items() if k != "consoleSize"}
    proc["args"] = args
    proc["terminal"] = terminal
    if env:
        proc["env"] = [*list(base.get("env") or []), *env]
    if cwd:
        proc["cwd"] = cwd
    if user is not None:
        u = dict(base.get("user") or {})
        u.update(uid=user[0], gid=user[1])
        u.pop("additionalGids", None)
        proc["user"] = u
    if additional_gids:
        u = dict(proc.get("user") or {})  # type: ignore[call-overload]
        u["additionalGids"] = additional_gids
        proc["user"] = u
    if add_caps:
        c = {k: list(v) for k, v in dict(base.get("capabilities") or {}).items()}
        for key in ("bounding", "effective", "permitted"):
            c[key] = [*c.get(key, []), *(x for x in add_caps if x not in c.get(key, []))]
        proc["capabilities"] = c
    if no_new_privileges is not None:
        proc["noNewPrivileges"] = no_new_privileges
    return proc


def exec_process(
    root: str,
    container_id: str,
    process: dict[str, object],
    *,
    stdin: int | None = None,
    stdout: int | None = None,
    stderr: int | None = None,
    console_socket: str | None = None,
    pid_file: str | None = None,
    preserve_fds: int = 0,
) -> int:
    """Start ``process`` in the container; return its pid (host view).

    Like the init, the process ends up a child of the caller's nearest child
    subreaper: set ``PR_SET_CHILD_SUBREAPER`` to ``waitpid`` it.
    """
    rec = state.load(root, container_id)
    status = state.observe_status(root, rec)
    if status not in ("running", "created"):
        raise errors.FailedPrecondition(f"cannot exec in container {container_id}: it is {status}")
    proc = config_process.parse(process)
    if proc.terminal and not console_socket:
        raise errors.InvalidSpec("exec: a terminal needs a console socket (--console-socket)")
    spec_seccomp = _container_seccomp(rec.bundle)
    opened: list[int] = []
    try:
        job: dict[str, object] = {
            "sys_path": [os.path.dirname(os.path.dirname(os.path.dirname(__file__)))],
            "process": process,
            "seccomp": spec_seccomp,
            "last_cap": caps.last_cap(),
            "preserve_fds": preserve_fds,
            "id": container_id,
        }
        job["ns"] = _open_namespaces(rec, opened)
        job["cgroup_procs"] = [
            _keep(os.open(os.path.join(d, "cgroup.procs"), os.O_WRONLY | os.O_CLOEXEC), opened)
            for d in rec.cgroup_dirs
            if os.path.exists(os.path.join(d, "cgroup.procs"))
        ]
        job["stdio"] = [
            None if fd is None else _keep(os.dup(fd), opened) for fd in (stdin, stdout, stderr)
        ]
        job["console"] = _connect(console_socket, opened) if proc.terminal else -1
        job["preserved"] = [_keep(os.dup(fd), opened) for fd in range(3, 3 + preserve_fds)]
        sync_r, sync_w = os.pipe2(os.O_CLOEXEC)
        opened += [sync_r, sync_w]
        job_r, job_w = os.pipe2(os.O_CLOEXEC)
        opened += [job_r, job_w]
        job["sync"] = sync_w
        guard, _ = exeguard.guarded_interpreter()
        argv = [
            os.path.realpath(sys.executable), "-I", "-S", "-c",
            _BOOT.format(path=job["sys_path"], fd=job_r),
        ]  # fmt: skip
        passed = [fd for fd in opened if fd not in (sync_r, job_w)]
        stage = os.fork()
        if stage == 0:
            try:
                for fd in passed:
                    os.set_inheritable(fd, True)
                os.execve(guard, argv, {"LANG": "C.UTF-8"})
            finally:
                os._exit(127)
        for fd in passed:
            os.close(fd)
            opened.remove(fd)
        try:
            os.write(job_w, jsonio.dumps(job).encode())
        finally:
            os.close(job_w)
            opened.remove(job_w)
        try:
            pid, error = _read_reply(sync_r, container_id)
        finally:
            _reap(stage)
        if error is not None:
            if pid > 0:  # it reported and is exiting: reap it if we are its reaper, or
                _reap(pid)  # it stays a zombie in the pid namespace and init cannot exit
            raise error
        if pid_file:
            state.write_file(os.path.abspath(pid_file), str(pid).encode(), 0o644)
        return pid
    finally:
        for fd in opened:
            os.close(fd)


def _keep(fd: int, opened: list[int]) -> int:
    opened.append(fd)
    return fd


def _container_seccomp(bundle: str) -> object:
    """The container's ``linux.seccomp`` (applied to exec'd processes too, as runc)."""
    path = os.path.join(bundle, "config.json")
    try:
        with open(path, "rb") as f:
            doc = jsonio.loads(f.read())
    except (OSError, ValueError):
        return None
    if not isinstance(doc, dict) or not isinstance(doc.get("linux"), dict):
        return None
    value = doc["linux"].get("seccomp")
    if value is not None:
        from runtime.oci import seccomp

        seccomp.parse(value)  # fail here, in the caller, on a bad profile
    return value


def _open_namespaces(rec: state.Record, opened: list[int]) -> list[list[object]]:
    """[kind, fd] of each namespace of the init that differs from ours, user first."""
    pidfd = os.pidfd_open(rec.pid)
    try:
        out: list[list[object]] = []
        for kind in _NS_FILES:
            mine = f"/proc/self/ns/{kind}"
            theirs = f"/proc/{rec.pid}/ns/{kind}"
            if not os.path.exists(mine):
                continue
            with errors.map_os_errors(f"open {theirs}"):
                if os.readlink(mine) == os.readlink(theirs):
                    continue
                out.append([kind, _keep(os.open(theirs, os.O_RDONLY | os.O_CLOEXEC), opened)])
        seen = state.proc_stat(rec.pid)
        if seen is None or seen[1] != rec.start_time:  # the pid was recycled meanwhile
            raise errors.FailedPrecondition(f"container {rec.id} stopped while exec started")
        return out
    finally:
        os.close(pidfd)


def _connect(path: str | None, opened: list[int]) -> int:
    import socket

    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        with errors.map_os_errors(f"connect to the console socket {path}"):
            sock.connect(path or "")
    except BaseException:
        sock.close()
        raise
    return _keep(sock.detach(), opened)


def _read_reply(sync_r: int, container_id: str) -> tuple[int, errors.RuntimeError_ | None]:
    buf = b""
    while chunk := os.read(sync_r, 4096):
        buf += chunk
    pid = 0
    for line in buf.splitlines():
        msg = jsonio.loads(line)
        assert isinstance(msg, dict)
        if msg.get("type") == "pid":
            pid = int(msg["pid"])
        elif msg.get("type") == "error":
            category = getattr(errors, str(msg.get("category")), errors.Terminal)
            if not (isinstance(category, type) and issubclass(category, errors.RuntimeError_)):
                category = errors.Terminal
            return pid, category(f"exec in container {container_id}: {msg.get('message')}")
    if pid <= 0 and buf:
        return 0, errors.Terminal(f"exec in container {container_id}: no pid reported")
    if pid <= 0:
        return 0, errors.Terminal(f"exec in container {container_id}: the stage exited early")
    return pid, None


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass
