"""``pyreconcile-runc``: the builtin runtime behind runc's command line.

    pyreconcile-runc [--root DIR] [--log FILE] [--log-format text|json] COMMAND …

Commands and flags are runc's (``create``, ``start``, ``state``, ``kill``,
``delete``, ``run``, ``exec``, ``list``, ``ps``, ``pause``, ``resume``,
``events --stats``, ``features``, ``spec``), so containerd-style shims,
conformance suites and people can drive it the same way (the verbs beyond
the basic lifecycle live in :mod:`runtime.oci.cli_verbs`). Warnings (failed
poststart/poststop hooks) go to stderr as ``WARN[0000] …``. Errors go to stderr
as one line (``ERRO[0000] message``, logrus' terminal style) and, with
``--log``, to that file as ``{"level": "error", "msg": …, "time": …}`` (json)
or ``time=… level=error msg=…`` (text) — where shims read runc's errors — and
the exit code is 1. ``run`` in the foreground is the container's reaper: it
becomes a child subreaper, forwards the usual signals to the init, waits, deletes
the container and exits with its status (128+n when killed by signal n).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time

import runtime.sys as rsys
from runtime import errors
from runtime.oci import cli_verbs, lifecycle, spec, state

__all__ = ["main"]

DEFAULT_ROOT = "/run/pyreconcile-runc"
VERSION = "pyreconcile-runc 0.1.0\nspec: 1.0.2"
_FORWARDED = ("SIGHUP", "SIGINT", "SIGQUIT", "SIGTERM", "SIGUSR1", "SIGUSR2", "SIGWINCH")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pyreconcile-runc", description="builtin OCI runtime")
    p.add_argument("--root", default=DEFAULT_ROOT, help="state directory (default %(default)s)")
    p.add_argument("--log", default="", help="append errors to this file")
    p.add_argument("--log-format", choices=("text", "json"), default="text")
    p.add_argument("--debug", action="store_true", help="accepted for runc compatibility")
    p.add_argument("--systemd-cgroup", action="store_true", help="not supported")
    p.add_argument("-v", "--version", action="version", version=VERSION)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def bundle_args(cmd: argparse.ArgumentParser) -> None:
        cmd.add_argument("-b", "--bundle", default=".", help="the OCI bundle (default: .)")
        cmd.add_argument("--pid-file", default="", help="write the init's pid here")
        cmd.add_argument("--preserve-fds", type=int, default=0, help="pass fds 3..3+N-1 on")
        cmd.add_argument("--console-socket", default="", help="unix socket for the pty master")
        cmd.add_argument("--no-pivot", action="store_true", help="MS_MOVE + chroot, not pivot_root")
        cmd.add_argument("--no-new-keyring", action="store_true", help="accepted, no effect")
        cmd.add_argument("container_id")

    bundle_args(sub.add_parser("create", help="create a container (its process waits for start)"))
    run = sub.add_parser("run", help="create and start a container, wait for it, delete it")
    bundle_args(run)
    run.add_argument("-d", "--detach", action="store_true", help="return once it is started")
    sub.add_parser("start", help="run the process of a created container").add_argument(
        "container_id"
    )
    sub.add_parser("state", help="print the OCI state of a container").add_argument("container_id")
    kill = sub.add_parser("kill", help="send a signal to a container's init (default TERM)")
    kill.add_argument("-a", "--all", action="store_true", help="signal every process in it")
    kill.add_argument("container_id")
    kill.add_argument("signal", nargs="?", default="SIGTERM")
    delete = sub.add_parser("delete", help="delete a container's state, cgroup and processes")
    delete.add_argument("-f", "--force", action="store_true", help="kill it first if running")
    delete.add_argument("container_id")
    ls = sub.add_parser("list", aliases=["ps-all"], help="list the containers")
    ls.add_argument("-f", "--format", choices=("table", "json"), default="table")
    ls.add_argument("-q", "--quiet", action="store_true", help="ids only")
    cli_verbs.add_parsers(sub)
    spec = sub.add_parser("spec", help="write a default config.json")
    spec.add_argument("-b", "--bundle", default=".", help="where to write it (default: .)")
    spec.add_argument("--rootless", action="store_true", help="not supported")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if argv is None and args.command in ("create", "run"):
            ensure_guarded()
        return _dispatch(args)
    except errors.RuntimeError_ as exc:
        _fail(args, str(exc))
    except KeyboardInterrupt:
        _fail(args, "interrupted")
    return 1


def _dispatch(args: argparse.Namespace) -> int:
    root, cmd = os.path.abspath(args.root), args.command
    if args.systemd_cgroup:
        raise errors.InvalidSpec("--systemd-cgroup is not supported: cgroups are managed directly")
    if cmd in ("create", "run"):
        if cmd == "create":
            _create(root, args)
            return 0
        return _run(root, args)
    if cmd in cli_verbs.COMMANDS:
        return cli_verbs.dispatch(root, args)
    if cmd == "start":
        warn(lifecycle.start(root, args.container_id))
    elif cmd == "state":
        print(json.dumps(_full_state(root, args.container_id), indent=2))
    elif cmd == "kill":
        lifecycle.kill(root, args.container_id, parse_signal(args.signal), all=args.all)
    elif cmd == "delete":
        warn(lifecycle.delete(root, args.container_id, force=args.force))
    elif cmd in ("list", "ps-all"):
        _list(root, args.format, args.quiet)
    elif cmd == "spec":
        if args.rootless:
            raise errors.InvalidSpec("--rootless is not supported yet")
        spec.write_spec(args.bundle)
    return 0


def ensure_guarded() -> None:
    """Re-execute this process from the guarded interpreter unless it already
    runs from one (CVE-2019-5736; :mod:`runtime.sys.exeguard`).

    The container's init is a fork of this process; if the container's
    program is a ``#!/proc/self/exe`` script, the kernel runs *our* executable
    inside the container, and that file must not be writable from there. runc
    re-executes itself from a sealed copy for the same reason. Costs one more
    interpreter start on ``create``/``run``; the shim avoids it by being
    started from the guarded interpreter itself. ``PYRECONCILE_UNGUARDED=1``
    skips it (for measurements only).
    """
    from runtime.sys import exeguard

    if os.environ.get("PYRECONCILE_UNGUARDED") == "1":
        return
    fd = os.open("/proc/self/exe", os.O_PATH | os.O_CLOEXEC)
    try:
        if exeguard.is_guarded_fd(fd):
            return
    finally:
        os.close(fd)
    guard, _ = exeguard.guarded_interpreter()
    top = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    boot = (
        f"import sys; sys.path[:0] = [{top!r}]; sys.argv[0] = 'pyreconcile-runc'\n"
        "from runtime.oci.cli import main\nsys.exit(main())"
    )  # -I -S: no site, no user paths; the package's own directory only
    argv = [os.path.realpath(sys.executable), "-I", "-S", "-c", boot, *sys.argv[1:]]
    os.execve(guard, argv, os.environ)


def _run(root: str, args: argparse.Namespace) -> int:
    """Foreground ``run``: we are the init's reaper until it exits."""
    if args.detach:
        _create(root, args)
        _start_or_delete(root, args.container_id)
        return 0
    rsys.prctl(rsys.PR_SET_CHILD_SUBREAPER, 1)
    pid = _create(root, args)
    forward_signals(pid)
    _start_or_delete(root, args.container_id)
    code = wait_for(pid)
    warn(lifecycle.delete(root, args.container_id, force=True))
    return code


def wait_for(pid: int) -> int:
    """Wait for ``pid`` (reaping the orphans we inherit meanwhile); its exit code,
    128+n when killed by signal n."""
    while True:
        try:
            got, status = os.waitpid(-1, 0)  # also reaps orphans the container leaves us
        except ChildProcessError:  # cannot happen while it lives; be safe
            return 255
        if got == pid:
            code = os.waitstatus_to_exitcode(status)
            return 128 - code if code < 0 else code


def forward_signals(pid: int) -> None:
    """Pass the usual terminal signals on to ``pid``."""

    def forward(signum: int, _frame: object) -> None:
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass

    for name in _FORWARDED:
        signal.signal(getattr(signal, name), forward)


def warn(messages: list[str] | None) -> None:
    for message in messages or []:
        sys.stderr.write(f"WARN[0000] {message}\n")


def _create(root: str, args: argparse.Namespace) -> int:
    return lifecycle.create(
        root,
        args.container_id,
        args.bundle,
        pid_file=args.pid_file or None,
        preserve_fds=args.preserve_fds,
        console_socket=args.console_socket or None,
        no_pivot=args.no_pivot,
    )


def _start_or_delete(root: str, container_id: str) -> None:
    try:
        warn(lifecycle.start(root, container_id))
    except BaseException as exc:
        try:
            lifecycle.delete(root, container_id, force=True)
        except errors.RuntimeError_ as cleanup:
            exc.add_note(f"delete after the failed start also failed: {cleanup}")
        raise


def _full_state(root: str, container_id: str) -> dict[str, object]:
    """runc's ``state`` output: the OCI state plus rootfs, created and owner."""
    rec = state.load(root, container_id)
    out = state.oci_state(rec, state.observe_status(root, rec))
    out.update(rootfs=rec.rootfs, created=rec.created, owner="")
    return out


def _list(root: str, fmt: str, quiet: bool) -> None:
    items = []
    for st in lifecycle.list_containers(root):
        try:
            items.append(_full_state(root, str(st["id"])))
        except errors.RuntimeError_:
            continue  # deleted meanwhile
    if quiet:
        for item in items:
            print(item["id"])
    elif fmt == "json":
        print(json.dumps(items))
    else:
        row = "{:<20}{:<10}{:<10}{:<40}{:<32}{}"
        print(row.format("ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"))
        for i in items:
            print(row.format(i["id"], i["pid"], i["status"], i["bundle"], i["created"], "root"))


def parse_signal(text: str) -> int:
    """``9``, ``KILL`` or ``SIGKILL`` → 9; InvalidSpec otherwise."""
    if text.isdigit():
        return int(text)
    name = text.upper()
    if not name.startswith("SIG"):
        name = "SIG" + name
    value = getattr(signal.Signals, name, None) if name.isidentifier() else None
    if value is None:
        raise errors.InvalidSpec(f"unknown signal {text!r}")
    return int(value)


def _fail(args: argparse.Namespace, message: str) -> None:
    line = message.replace("\n", " ")
    if args.log:
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        if args.log_format == "json":
            entry = json.dumps({"level": "error", "msg": line, "time": now})
        else:
            entry = f"time={json.dumps(now)} level=error msg={json.dumps(line)}"
        try:
            with open(args.log, "a") as f:
                f.write(entry + "\n")
        except OSError:
            pass
    sys.stderr.write(f"ERRO[0000] {line}\n")


if __name__ == "__main__":
    sys.exit(main())
