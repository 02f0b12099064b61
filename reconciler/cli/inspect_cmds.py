"""Commands on single objects: ps, logs, stop, start, image …, volume ls, network ls."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from typing import Any

import click

from reconciler import labels as L
from reconciler.cli import context as ctx_mod
from runtime import client


def age(ts: float | None) -> str:
    if not ts:
        return "-"
    seconds = max(0, int(time.time() - ts))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit} ago"
    return f"{seconds}s ago"


def _status_text(c: client.ContainerInfo) -> str:
    if c.status == "running":
        return f"running ({age(c.started_at).replace(' ago', '')})"
    if c.status in ("exited", "dead"):
        text = f"{c.status} ({c.exit_code})"
        return text + (" stopped by operator" if c.operator_stopped else "")
    return c.status


def table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip()]
    for row in rows:
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    return "\n".join(lines)


def _container_json(c: client.ContainerInfo) -> dict[str, Any]:
    labels = c.labels
    return {
        "id": c.id,
        "name": c.name,
        "stack": labels.get(L.STACK),
        "object": labels.get(L.NAME),
        "managed": labels.get(L.MANAGED) == "true",
        "image": c.config.image,
        "imageId": c.image_id,
        "status": c.status,
        "pid": c.pid,
        "exitCode": c.exit_code,
        "createdAt": c.created_at,
        "startedAt": c.started_at,
        "finishedAt": c.finished_at,
        "restartCount": c.restart_count,
        "operatorStopped": c.operator_stopped,
        "specHash": labels.get(L.SPEC_HASH),
        "labels": {k: v for k, v in labels.items() if not k.startswith("io.pyreconcile.")},
    }


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
        """List containers (running and stopped)."""
        with runtime_errors():
            items = context.runtime.list_containers()
        if stack:
            items = [c for c in items if c.labels.get(L.STACK) == stack]
        if output == "json":
            click.echo(json.dumps([_container_json(c) for c in items], indent=2))
            return
        if quiet:
            for c in items:
                click.echo(c.id)
            return
        rows = [
            [
                c.id[:12],
                f"{c.labels[L.STACK]}/{c.labels[L.NAME]}" if L.NAME in c.labels else c.name,
                _status_text(c),
                str(c.restart_count),
                c.config.image
                if not c.config.image.startswith("sha256:")
                else c.config.image[7:19],
                age(c.created_at),
            ]
            for c in items
        ]
        click.echo(table(rows, ["ID", "NAME", "STATUS", "RESTARTS", "IMAGE", "CREATED"]))

    @cli.command()
    @click.argument("name")
    @click.option("--stack")
    @click.option("--tail", type=int, help="only the last N lines")
    @click.option("-f", "--follow", is_flag=True, help="keep printing new lines until it exits")
    @click.option("-t", "--timestamps", is_flag=True)
    @click.pass_obj
    def logs(
        context: ctx_mod.Context,
        name: str,
        stack: str | None,
        tail: int | None,
        follow: bool,
        timestamps: bool,
    ) -> None:
        """Print a container's output (stdout to stdout, stderr to stderr)."""
        with runtime_errors():
            info = ctx_mod.resolve_container(context.runtime, name, stack)
            for entry in context.runtime.container_logs(info.name, tail=tail, follow=follow):
                stream = sys.stderr if entry.stream == "stderr" else sys.stdout
                text = f"{entry.time} {entry.log}" if timestamps else entry.log
                stream.write(text)
                stream.flush()

    @cli.command()
    @click.argument("names", nargs=-1, required=True)
    @click.option("--stack")
    @click.option(
        "-t",
        "--time",
        "timeout",
        type=float,
        help="seconds to wait after the stop signal before SIGKILL",
    )
    @click.pass_obj
    def stop(
        context: ctx_mod.Context, names: tuple[str, ...], stack: str | None, timeout: float | None
    ) -> None:
        """Stop containers; self-heal leaves them stopped until the next apply or start."""
        with runtime_errors():
            for name in names:
                info = ctx_mod.resolve_container(context.runtime, name, stack)
                done = context.runtime.stop_container(info.name, timeout, operator=True)
                click.echo(f"{name}: {done.status} ({done.exit_code})")

    @cli.command()
    @click.argument("names", nargs=-1, required=True)
    @click.option("--stack")
    @click.pass_obj
    def start(context: ctx_mod.Context, names: tuple[str, ...], stack: str | None) -> None:
        """Start stopped containers (and clear an operator stop)."""
        with runtime_errors():
            for name in names:
                info = ctx_mod.resolve_container(context.runtime, name, stack)
                done = context.runtime.start_container(info.name)
                click.echo(f"{name}: {done.status}")
