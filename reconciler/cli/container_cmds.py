"""Commands on single containers: ps, inspect, logs, exec, start, stop, restart, kill.

Names are resolved as everywhere in the CLI (``ctx_mod.resolve_container``):
``stack/name``, a runtime name, an id prefix, or a manifest name unique among
managed containers. ``stop`` is an operator override that self-heal respects
until the next ``apply`` or ``start``; ``restart`` and ``start`` clear it;
``kill`` only sends a signal (the restart policy decides what follows).
``exec`` exits with the process's exit code, as ``docker exec`` does.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from typing import Any

import click

from reconciler import labels as L
from reconciler.cli import container_view as view
from reconciler.cli import context as ctx_mod
from reconciler.cli import network_cmds
from reconciler.cli.inspect_cmds import table
from runtime import client


def register(
    cli: click.Group,
    runtime_errors: Callable[[], Any],
    fail: Callable[[str], Any],
) -> None:
    output = click.option("--output", "-o", type=click.Choice(["table", "json"]), default="table")

    @cli.command()
    @click.option("--stack", help="only this stack's containers")
    @click.option("-q", "--quiet", is_flag=True, help="only ids")
    @output
    @click.pass_obj
    def ps(context: ctx_mod.Context, stack: str | None, quiet: bool, output: str) -> None:
        """List containers (running and stopped), their restarts and last exit."""
        with runtime_errors():
            items = context.runtime.list_containers()
        if stack:
            items = [c for c in items if c.labels.get(L.STACK) == stack]
        # published ports as bound (issue 6): a port without a host port gets one at start
        with runtime_errors():
            bound = network_cmds.published_by_container(context.runtime, items)
        if output == "json":
            click.echo(
                json.dumps(
                    [
                        {**view.ps_json(c), "ports": network_cmds.ports_json(bound.get(c.id, []))}
                        for c in items
                    ],
                    indent=2,
                )
            )
            return
        if quiet:
            for c in items:
                click.echo(c.id)
            return
        rows = [[*view.ps_row(c), network_cmds.ports_text(bound.get(c.id, []))] for c in items]
        click.echo(table(rows, [*view.PS_HEADER, "PORTS"]))

    @cli.command()
    @click.argument("names", nargs=-1, required=True)
    @click.option("--stack")
    @click.pass_obj
    def inspect(context: ctx_mod.Context, names: tuple[str, ...], stack: str | None) -> None:
        """Show containers as JSON, in docker inspect's shape."""
        with runtime_errors():
            found = [ctx_mod.resolve_container(context.runtime, n, stack) for n in names]
            volumes = (
                {v.name: v.mountpoint for v in context.runtime.list_volumes()}
                if any(m.type == "volume" for c in found for m in c.config.mounts)
                else {}
            )
        click.echo(json.dumps([view.inspect_json(c, volumes) for c in found], indent=2))

    @cli.command()
    @click.argument("name")
    @click.option("--stack")
    @click.option("--tail", help="only the last N lines (or 'all')")
    @click.option("--since", help="only lines since a time: 10m, 1.5h, unix seconds, RFC 3339")
    @click.option("-f", "--follow", is_flag=True, help="keep printing new lines until it stops")
    @click.option("-t", "--timestamps", is_flag=True, help="show each line's time")
    @click.pass_obj
    def logs(
        context: ctx_mod.Context,
        name: str,
        stack: str | None,
        tail: str | None,
        since: str | None,
        follow: bool,
        timestamps: bool,
    ) -> None:
        """Print a container's output (stdout to stdout, stderr to stderr)."""
        lines: int | None = None
        if tail is not None and tail != "all":
            if not tail.isdigit():
                fail(f"--tail {tail!r} is not a number of lines (or 'all')")
            lines = int(tail)
        with runtime_errors():
            info = ctx_mod.resolve_container(context.runtime, name, stack)
            entries = context.runtime.container_logs(
                info.name,
                tail=lines,
                follow=follow,
                since=view.parse_since(since) if since else None,
            )
            try:
                for entry in entries:
                    stream = sys.stderr if entry.stream == "stderr" else sys.stdout
                    stream.write(f"{entry.time} {entry.log}" if timestamps else entry.log)
                    stream.flush()
            except BrokenPipeError:  # `logs | head`: the reader has seen enough
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())

    @cli.command(context_settings={"allow_interspersed_args": False})
    @click.option("-i", "--interactive", is_flag=True, help="pass stdin to the process")
    @click.option("-t", "--tty", is_flag=True, help="give the process a terminal")
    @click.option("-e", "--env", multiple=True, help="KEY=value (repeatable)")
    @click.option("-u", "--user", help="name|uid[:group|gid] in the container")
    @click.option("-w", "--workdir", help="working directory in the container")
    @click.option("--stack")
    @click.argument("name")
    @click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
    @click.pass_obj
    def exec(
        context: ctx_mod.Context,
        interactive: bool,
        tty: bool,
        env: tuple[str, ...],
        user: str | None,
        workdir: str | None,
        stack: str | None,
        name: str,
        command: tuple[str, ...],
    ) -> None:
        """Run a command in a running container; exit with its exit code."""
        pairs = []
        for item in env:
            key, eq, value = item.partition("=")
            if not eq or not key:
                fail(f"--env {item!r} is not KEY=value")
            pairs.append((key, value))
        config = client.ExecConfig(
            args=command, env=tuple(pairs), working_dir=workdir, user=user, tty=tty
        )
        sys.stdout.flush()
        with runtime_errors():
            info = ctx_mod.resolve_container(context.runtime, name, stack)
            null = os.open(os.devnull, os.O_RDONLY)
            try:
                stdio = (0 if interactive else null, 1, 2)
                session = context.runtime.exec_container(info.name, config, stdio=stdio)
            finally:
                os.close(null)
            try:
                if tty:
                    from reconciler.cli import exec_tty

                    code = exec_tty.run(session, interactive=interactive)
                else:
                    code = session.wait()
            finally:
                session.close()
        sys.exit(code)

    def each(
        names: tuple[str, ...],
        stack: str | None,
        context: ctx_mod.Context,
        act: Callable[[str], client.ContainerInfo],
        show: Callable[[client.ContainerInfo], str],
    ) -> None:
        with runtime_errors():
            for name in names:
                info = ctx_mod.resolve_container(context.runtime, name, stack)
                click.echo(f"{name}: {show(act(info.name))}")

    def status(done: client.ContainerInfo) -> str:
        if done.status in ("exited", "dead"):
            return f"{done.status} ({done.exit_code})"
        return done.status

    @cli.command()
    @click.argument("names", nargs=-1, required=True)
    @click.option("--stack")
    @click.option(
        "-t", "--time", "timeout", type=float, help="seconds after the stop signal before SIGKILL"
    )
    @click.pass_obj
    def stop(
        context: ctx_mod.Context, names: tuple[str, ...], stack: str | None, timeout: float | None
    ) -> None:
        """Stop containers; self-heal leaves them stopped until the next apply or start."""
        rt = context.runtime
        each(names, stack, context, lambda n: rt.stop_container(n, timeout, operator=True), status)

    @cli.command()
    @click.argument("names", nargs=-1, required=True)
    @click.option("--stack")
    @click.pass_obj
    def start(context: ctx_mod.Context, names: tuple[str, ...], stack: str | None) -> None:
        """Start stopped containers (and clear an operator stop)."""
        each(names, stack, context, context.runtime.start_container, status)

    @cli.command()
    @click.argument("names", nargs=-1, required=True)
    @click.option("--stack")
    @click.option(
        "-t", "--time", "timeout", type=float, help="seconds after the stop signal before SIGKILL"
    )
    @click.pass_obj
    def restart(
        context: ctx_mod.Context, names: tuple[str, ...], stack: str | None, timeout: float | None
    ) -> None:
        """Stop containers (stop signal, grace period, SIGKILL) and start them again."""
        rt = context.runtime
        each(names, stack, context, lambda n: rt.restart_container(n, timeout), status)

    @cli.command()
    @click.argument("names", nargs=-1, required=True)
    @click.option("--stack")
    @click.option("-s", "--signal", "sig", default="SIGKILL", show_default=True)
    @click.pass_obj
    def kill(context: ctx_mod.Context, names: tuple[str, ...], stack: str | None, sig: str) -> None:
        """Send a signal to containers' main process (the restart policy decides what follows)."""
        rt = context.runtime
        each(names, stack, context, lambda n: rt.kill_container(n, sig), lambda _: f"sent {sig}")
