"""The process that joins a container for ``exec`` (see :mod:`runtime.oci.execproc`).

Runs as ``python -I -S -c …`` from the guarded interpreter, with the job (a
JSON object) on an inherited pipe and every fd it needs already open. It
must not log and must not import anything after ``setns`` (the import
system is sealed: the container's filesystem could offer modules).

Order: non-dumpable; rlimits (inherited by the child; still privileged in
the host's user namespace); join the cgroup (write our pid to each
``cgroup.procs``, so the child starts in it); ``setns`` every namespace,
user first and mount last; become root of a joined user namespace; fork —
the child is the only process that enters the container's pid namespace —
report its pid and exit. The child: new session, stdio or a pty of the
container's devpts (master to the console socket), the preserved fds at 3…,
then :func:`runtime.oci.process.finalize` (cwd checked inside the root,
no_new_privs, capabilities, uid/gid, seccomp last) and ``execve``. Its error,
if any, goes to the caller on the close-on-exec sync pipe.
"""

from __future__ import annotations

import os

import runtime.sys as rsys
from runtime import errors
from runtime.oci import config_process, init, process
from runtime.shim import jsonio
from runtime.sys import tty

__all__ = ["main"]

_FLAGS = {
    "user": rsys.CLONE_NEWUSER,
    "ipc": rsys.CLONE_NEWIPC,
    "uts": rsys.CLONE_NEWUTS,
    "net": rsys.CLONE_NEWNET,
    "pid": rsys.CLONE_NEWPID,
    "cgroup": rsys.CLONE_NEWCGROUP,
    "time": rsys.CLONE_NEWTIME,
    "mnt": rsys.CLONE_NEWNS,
}


def main(job_fd: int) -> None:
    rsys.prctl(rsys.PR_SET_DUMPABLE, 0)
    sync_w = -1
    code = 1
    try:
        raw = b""
        while chunk := os.read(job_fd, 65536):
            raw += chunk
        os.close(job_fd)
        job = jsonio.loads(raw)
        assert isinstance(job, dict)
        sync_w = int(job["sync"])
        os.set_inheritable(sync_w, False)
        _run(job, sync_w)
        code = 0
    except BaseException as exc:
        if sync_w >= 0:
            init._report(sync_w, exc)
    finally:
        os._exit(code)


def _run(job: dict[str, object], sync_w: int) -> None:
    proc = config_process.parse(job["process"])
    filt = None
    if job.get("seccomp") is not None:
        from runtime.oci import seccomp

        filt = seccomp.compile_filter(seccomp.parse(job["seccomp"]))
    if proc.terminal:
        import socket  # noqa: F401  (runtime.sys.tty needs it after the seal)
    init._seal_imports()
    for rl in proc.rlimits:
        with errors.map_os_errors(f"set {rl.name} to {rl.soft}/{rl.hard}"):
            rsys.setrlimit(rl.number, rl.soft, rl.hard)
    me = str(os.getpid()).encode()
    for fd in _ints(job["cgroup_procs"]):
        with errors.map_os_errors("join the container's cgroup"):
            os.write(fd, me)
        os.close(fd)
    namespaces = job["ns"]
    assert isinstance(namespaces, list)
    kinds = set()
    for kind, fd in namespaces:
        with errors.map_os_errors(f"join the container's {kind} namespace"):
            rsys.setns(fd, _FLAGS[kind])
        os.close(fd)
        kinds.add(kind)
    if "user" in kinds:
        with errors.map_os_errors("become root in the container's user namespace"):
            os.setresgid(0, 0, 0)
            os.setresuid(0, 0, 0)
    pid = os.fork()
    if pid == 0:
        _child(job, proc, filt, sync_w)
    init.send(sync_w, {"type": "pid", "pid": pid})


def _ints(value: object) -> list[int]:
    assert isinstance(value, list)
    return [int(v) for v in value]


def _child(job: dict[str, object], proc: config_process.Process, filt: object, sync_w: int) -> None:
    try:
        os.setsid()
        preserved = _ints(job["preserved"])
        floor = 3 + len(preserved)
        stdio = job["stdio"]
        assert isinstance(stdio, list)
        high = [
            (i, init.move_above(int(fd), floor)) for i, fd in enumerate(stdio) if fd is not None
        ]
        moved = [init.move_above(fd, floor) for fd in preserved]
        sync_w = init.move_above(sync_w, floor)
        console = int(job["console"])  # type: ignore[call-overload]
        if console >= 0:
            console = init.move_above(console, floor)
        for target, fd in high:
            os.dup2(fd, target)
            os.close(fd)
        for i, fd in enumerate(moved):
            os.dup2(fd, 3 + i)  # dup2 leaves the target inheritable
            os.close(fd)
        if proc.terminal:
            _terminal(proc, console)
        if console >= 0:
            os.close(console)
        rsys.reset_signals()
        load = None
        if filt is not None:

            def load() -> None:
                with errors.map_os_errors("load the seccomp filter"):
                    filt.load()  # type: ignore[attr-defined]

        path, env = process.finalize(proc, int(job["last_cap"]), load)  # type: ignore[call-overload]
        init._cloexec_from(floor)
        os.execve(path, proc.args, env)
    except BaseException as exc:
        init._report(sync_w, exc)
    os._exit(127)


def _terminal(proc: config_process.Process, console: int) -> None:
    with errors.map_os_errors("open a pty in the container"):
        master, slave = tty.open_pty("/dev/ptmx")
    try:
        if os.major(os.fstat(master).st_rdev) != 5:  # /dev/ptmx or devpts' ptmx
            raise errors.FailedPrecondition("/dev/ptmx in the container is not a pty multiplexer")
        if proc.console_size is not None:
            tty.set_size(slave, *proc.console_size)
        with errors.map_os_errors("send the pty master to the console socket"):
            tty.send_fd(console, master, "/dev/ptmx")
        for target in (0, 1, 2):
            os.dup2(slave, target)
        with errors.map_os_errors("make the pty the controlling terminal"):
            tty.set_controlling(0)
    finally:
        os.close(master)
        os.close(slave)
