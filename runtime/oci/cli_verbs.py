"""The verbs of ``pyreconcile-runc`` beyond the basic lifecycle: ``exec``,
``pause``, ``resume``, ``ps``, ``events --stats`` and ``features`` (runc's flags).

``exec`` in the foreground is like ``run``: this process becomes a child
subreaper, forwards signals to the new process, waits for it and exits with
its status; ``--detach`` returns once it is started. ``ps`` prints runc's
table (``ps -ef`` of the host, filtered to the container's processes) or a
JSON list of pids.
"""

from __future__ import annotations

import argparse
import json
import sys

import runtime.sys as rsys
from runtime import errors
from runtime.oci import lifecycle

__all__ = ["COMMANDS", "add_parsers", "dispatch"]

COMMANDS = ("exec", "pause", "resume", "ps", "events", "features")


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    ex = sub.add_parser("exec", help="run a new process in a running container")
    ex.add_argument("-p", "--process", default="", help="a process.json to run")
    ex.add_argument("-t", "--tty", action="store_true", help="allocate a pty")
    ex.add_argument("-d", "--detach", action="store_true", help="do not wait for it")
    ex.add_argument("--pid-file", default="", help="write the new process's pid here")
    ex.add_argument("--console-socket", default="", help="unix socket for the pty master")
    ex.add_argument("--cwd", default="", help="working directory in the container")
    ex.add_argument("-e", "--env", action="append", default=[], help="add KEY=value")
    ex.add_argument("-u", "--user", default="", help="UID[:GID]")
    ex.add_argument("-g", "--additional-gids", action="append", type=int, default=[])
    ex.add_argument("-c", "--cap", action="append", default=[], help="add a capability")
    ex.add_argument("--no-new-privs", action="store_true", help="set no_new_privs")
    ex.add_argument("--preserve-fds", type=int, default=0, help="pass fds 3..3+N-1 on")
    ex.add_argument("container_id")
    ex.add_argument("exec_args", nargs=argparse.REMAINDER, metavar="COMMAND")
    for verb, text in (("pause", "freeze every process"), ("resume", "thaw every process")):
        sub.add_parser(verb, help=f"{text} of a container").add_argument("container_id")
    ps = sub.add_parser("ps", help="list the processes of a container")
    ps.add_argument("-f", "--format", choices=("table", "json"), default="table")
    ps.add_argument("container_id")
    ps.add_argument("ps_args", nargs=argparse.REMAINDER)
    ev = sub.add_parser("events", help="print resource usage (only --stats is supported)")
    ev.add_argument("--stats", action="store_true", help="print the stats once and exit")
    ev.add_argument("container_id")
    sub.add_parser("features", help="print what this runtime supports (JSON)")


def dispatch(root: str, args: argparse.Namespace) -> int:
    cmd = args.command
    if cmd == "exec":
        return _exec(root, args)
    if cmd == "pause":
        lifecycle.pause(root, args.container_id)
    elif cmd == "resume":
        lifecycle.resume(root, args.container_id)
    elif cmd == "ps":
        _ps(root, args)
    elif cmd == "events":
        if not args.stats:
            raise errors.InvalidSpec("events: only --stats is supported")
        doc = {
            "type": "stats",
            "id": args.container_id,
            "data": lifecycle.stats(root, args.container_id),
        }
        print(json.dumps(doc))
    elif cmd == "features":
        print(json.dumps(lifecycle.features(), indent=2))
    return 0


def _exec(root: str, args: argparse.Namespace) -> int:
    from runtime.oci import cli, execproc, state

    if args.process:
        with errors.map_os_errors(f"read {args.process}"), open(args.process, "rb") as f:
            try:
                process = json.loads(f.read())
            except ValueError as exc:
                raise errors.InvalidSpec(f"{args.process} is not JSON: {exc}") from None
        if args.tty:
            process["terminal"] = True
    else:
        if not args.exec_args:
            raise errors.InvalidSpec("exec: give --process or the command to run")
        user = None
        if args.user:
            uid, _, gid = args.user.partition(":")
            user = (int(uid), int(gid or 0))
        bundle = state.load(root, args.container_id).bundle
        process = execproc.process_from_config(
            bundle,
            list(args.exec_args),
            env=args.env,
            cwd=args.cwd or None,
            user=user,
            additional_gids=args.additional_gids,
            add_caps=args.cap,
            terminal=args.tty,
            no_new_privileges=True if args.no_new_privs else None,
        )
    if not args.detach:
        rsys.prctl(rsys.PR_SET_CHILD_SUBREAPER, 1)
    pid = lifecycle.exec_process(
        root,
        args.container_id,
        process,
        console_socket=args.console_socket or None,
        pid_file=args.pid_file or None,
        preserve_fds=args.preserve_fds,
    )
    if args.detach:
        return 0
    cli.forward_signals(pid)
    return cli.wait_for(pid)


def _ps(root: str, args: argparse.Namespace) -> None:
    pids = lifecycle.pids(root, args.container_id)
    if args.format == "json":
        print(json.dumps(pids))
        return
    import subprocess

    ps_args = args.ps_args or ["-ef"]
    try:
        out = subprocess.run(
            ["ps", *ps_args], capture_output=True, text=True, check=True
        ).stdout.splitlines()
    except (OSError, subprocess.CalledProcessError) as exc:
        raise errors.Unavailable(f"ps {' '.join(ps_args)} failed: {exc}") from None
    if not out:
        return
    header = out[0].split()
    if "PID" not in header:
        raise errors.InvalidSpec("ps: the output has no PID column")
    col = header.index("PID")
    print(out[0])
    wanted = {str(p) for p in pids}
    for line in out[1:]:
        fields = line.split()
        if len(fields) > col and fields[col] in wanted:
            print(line)
    sys.stdout.flush()
