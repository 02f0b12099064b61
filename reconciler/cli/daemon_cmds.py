"""``pyreconcile daemon``, ``events`` and ``status``.

``daemon`` runs the API server and the reconcile loop in the foreground
(systemd's ``Type=notify`` service; see ``contrib/``). ``--watch`` and
``--git`` add a source to those of the configuration file. ``events`` prints
the daemon's recent events (``-f``: and every new one) and ``status`` the
stacks with their objects' state and drift; both need a daemon.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from typing import Any

import click

from reconciler.cli import context as ctx_mod
from reconciler.cli.inspect_cmds import table


def _api(context: ctx_mod.Context, fail: Callable[[str], Any]) -> Any:
    api = context.api
    if api is None:
        from reconciler.daemon import client as daemon_client

        fail(
            f"no daemon answers at {daemon_client.default_socket(context.run_root)}; "
            "start one with `pyreconcile daemon`"
        )
    return api


def _event_text(e: Any) -> str:
    """``time type [result] source=… stack=… object revision=…: message``."""
    parts = [time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(e.time)), e.type]
    if e.result:
        parts.append(f"[{e.result}]")
    parts += [f"source={e.source}"] if e.source else []
    parts += [f"stack={e.stack}"] if e.stack else []
    parts += [e.object] if e.object else []
    parts += [f"revision={e.revision[:19]}"] if e.revision else []
    text = " ".join(parts)
    return f"{text}: {e.message}" if e.message else text


def register(
    cli: click.Group,
    runtime_errors: Callable[[], Any],
    fail: Callable[[str], Any],
) -> None:
    @cli.command()
    @click.option(
        "--config",
        "config_path",
        envvar="PYRECONCILE_DAEMON_CONFIG",
        help="TOML file (see docs/daemon.md)",
    )
    @click.option(
        "--watch",
        "watch",
        multiple=True,
        help="manifest file or directory to keep applied (repeatable)",
    )
    @click.option("--git", "git_url", help="a git repository to keep applied")
    @click.option("--branch", default="main", show_default=True, help="--git: the branch")
    @click.option(
        "--path",
        "git_path",
        default=".",
        show_default=True,
        help="--git: the manifests' path in it",
    )
    @click.option("--interval", default="30s", show_default=True, help="--git: how often to fetch")
    @click.option("--stack", help="the stack of --watch / --git (default: the loader's rule)")
    @click.option(
        "-e", "--env", "env", multiple=True, help="KEY=value for interpolation (repeatable)"
    )
    @click.option("--resync", help="look at every stack again this often [60s]")
    @click.option("--workers", type=click.IntRange(1, 64), help="stacks reconciled at once [4]")
    @click.option("--socket", "socket_path", help="the API socket [<run root>/pyreconcile.sock]")
    @click.option("--metrics-address", help="also serve /metrics on this loopback address:port")
    @click.pass_obj
    def daemon(
        context: ctx_mod.Context,
        config_path: str | None,
        watch: tuple[str, ...],
        git_url: str | None,
        branch: str,
        git_path: str,
        interval: str,
        stack: str | None,
        env: tuple[str, ...],
        resync: str | None,
        workers: int | None,
        socket_path: str | None,
        metrics_address: str | None,
    ) -> None:
        """Serve the API and keep the watched stacks converged (foreground)."""
        from reconciler.daemon import config as config_mod
        from reconciler.daemon import main as daemon_main

        pairs = {}
        for item in env:
            key, eq, value = item.partition("=")
            if not eq or not key:
                fail(f"--env {item!r} is not KEY=value")
            pairs[key] = value
        sources = []
        try:
            if watch:
                sources.append(
                    config_mod.SourceConfig(
                        name="watch",
                        watch=tuple(os.path.abspath(p) for p in watch),
                        stack=stack,
                        env=pairs,
                    )
                )
            if git_url:
                sources.append(
                    config_mod.SourceConfig(
                        name="git",
                        git=git_url,
                        branch=branch,
                        path=git_path,
                        interval=config_mod.parse_duration(interval),
                        stack=stack,
                        env=pairs,
                    )
                )
            options = daemon_main.Options(
                root=context.root,
                run_root=context.run_root,
                config_path=config_path,
                socket=socket_path,
                sources=tuple(sources),
                workers=workers,
                resync=config_mod.parse_duration(resync) if resync else None,
                metrics_address=metrics_address,
                verbosity=context.verbosity,
            )
        except ValueError as exc:
            fail(str(exc).splitlines()[-1] if "validation error" in str(exc) else str(exc))
        with runtime_errors():
            code = daemon_main.run(options)
        sys.exit(code)

    @cli.command()
    @click.option("-f", "--follow", is_flag=True, help="keep printing new events")
    @click.option("--since", type=int, default=0, help="only events after this sequence number")
    @click.option(
        "--output",
        "-o",
        type=click.Choice(["text", "json"]),
        default="text",
        help="json: one JSON object per line",
    )
    @click.pass_obj
    def events(context: ctx_mod.Context, follow: bool, since: int, output: str) -> None:
        """The daemon's events: what changed, why, and the result."""
        from reconciler.daemon import api_types, codec

        with runtime_errors():
            api = _api(context, fail)
            stream = api.stream(
                "GET", "/v1/events", item=api_types.Event, query={"follow": follow, "since": since}
            )
            try:
                for event in stream:
                    if output == "json":
                        click.echo(
                            json.dumps(codec.encode(event, api_types.Event), separators=(",", ":"))
                        )
                    else:
                        click.echo(_event_text(event))
                    sys.stdout.flush()
            except BrokenPipeError:
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())

    @cli.command()
    @click.argument("stack", required=False)
    @click.option("--output", "-o", type=click.Choice(["text", "json"]), default="text")
    @click.pass_obj
    def status(context: ctx_mod.Context, stack: str | None, output: str) -> None:
        """Stacks the daemon knows: their source, revision, objects, drift."""
        from reconciler.daemon import api_types, codec
        from reconciler.daemon import client as daemon_client

        with runtime_errors():
            api = _api(context, fail)
            if stack:
                found = [
                    api.call(
                        "GET",
                        f"/v1/stacks/{daemon_client.quote(stack)}",
                        returns=api_types.StackStatus,
                    )
                ]
            else:
                found = api.call("GET", "/v1/stacks", returns=list[api_types.StackStatus])
        if output == "json":
            click.echo(json.dumps(codec.encode(found, list[api_types.StackStatus]), indent=2))
            return
        for item in found:
            source = item.source
            head = f"stack {item.stack}"
            if source is not None:
                ready = next((c for c in source.conditions if c.type == "Ready"), None)
                head += f" (source {source.name}, revision {(source.revision or '-')[:19]}"
                head += f", {'ready' if ready and ready.status == 'True' else 'not ready'})"
                if source.last_error:
                    head += f"\n  last error: {source.last_error}"
            click.echo(head)
            rows = [
                [
                    o.kind.lower(),
                    o.name,
                    o.state + (f", {o.health}" if o.health else ""),
                    o.drift or "-",
                    "; ".join(o.reasons),
                ]
                for o in item.objects
            ]
            click.echo(table(rows, ["KIND", "NAME", "STATE", "DRIFT", "WHY"]))
            for note in item.notes:
                click.echo(f"  - {note.kind.lower()}/{note.name}: {note.message}")
