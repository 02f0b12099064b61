"""Commands on single objects: ps, logs, stop, start, image …, volume ls, network ls."""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from collections.abc import Callable
from typing import Any

import click

from reconciler import labels as L
from reconciler.cli import context as ctx_mod
from runtime import client


def _age(ts: float | None) -> str:
    if not ts:
        return "-"
    seconds = max(0, int(time.time() - ts))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit} ago"
    return f"{seconds}s ago"


def _status_text(c: client.ContainerInfo) -> str:
    if c.status == "running":
        return f"running ({_age(c.started_at).replace(' ago', '')})"
    if c.status in ("exited", "dead"):
        text = f"{c.status} ({c.exit_code})"
        return text + (" stopped by operator" if c.operator_stopped else "")
    return c.status


def _table(rows: list[list[str]], header: list[str]) -> str:
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
                _age(c.created_at),
            ]
            for c in items
        ]
        click.echo(_table(rows, ["ID", "NAME", "STATUS", "RESTARTS", "IMAGE", "CREATED"]))

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

    @cli.group()
    def image() -> None:
        """Manage images."""

    @image.command("import")
    @click.argument("path")
    @click.option("--tag", "-t", help="reference to give it (e.g. localhost/app:1)")
    @click.pass_obj
    def image_import(context: ctx_mod.Context, path: str, tag: str | None) -> None:
        """Import a rootfs tarball or an OCI image layout (directory or tar)."""
        with runtime_errors():
            info = context.runtime.import_image(path, tag)
        click.echo(f"{info.id}  {' '.join(info.references)}")

    @image.command("ls")
    @output
    @click.pass_obj
    def image_ls(context: ctx_mod.Context, output: str) -> None:
        """List images with their manifest digests."""
        with runtime_errors():
            items = context.runtime.list_images()
        if output == "json":
            click.echo(
                json.dumps(
                    [
                        {
                            "id": i.id,
                            "digest": i.digest,
                            "references": list(i.references),
                            "size": i.size,
                            "createdAt": i.created_at,
                        }
                        for i in items
                    ],
                    indent=2,
                )
            )
            return
        rows = []
        for i in items:
            for ref in i.references or ("<none>",):
                rows.append(
                    [ref, i.id[7:19], i.digest, f"{i.size / 1e6:.1f}MB", _age(i.created_at)]
                )
        click.echo(_table(rows, ["REFERENCE", "IMAGE ID", "DIGEST", "SIZE", "CREATED"]))

    @image.command("inspect")
    @click.argument("ref")
    @click.pass_obj
    def image_inspect(context: ctx_mod.Context, ref: str) -> None:
        """Show an image's record and config as JSON."""
        with runtime_errors():
            info = context.runtime.get_image(ref)
        click.echo(json.dumps(dataclasses.asdict(info), indent=2))

    @image.command("rm")
    @click.argument("refs", nargs=-1, required=True)
    @click.pass_obj
    def image_rm(context: ctx_mod.Context, refs: tuple[str, ...]) -> None:
        """Remove image references (the image goes when no reference is left)."""
        with runtime_errors():
            for ref in refs:
                context.runtime.remove_image(ref)
                click.echo(f"untagged {ref}")

    @cli.group()
    def volume() -> None:
        """Manage volumes."""

    @volume.command("ls")
    @output
    @click.pass_obj
    def volume_ls(context: ctx_mod.Context, output: str) -> None:
        with runtime_errors():
            items = context.runtime.list_volumes()
        if output == "json":
            click.echo(json.dumps([dataclasses.asdict(v) for v in items], indent=2))
            return
        click.echo(
            _table(
                [[v.name, v.driver, v.mountpoint] for v in items], ["NAME", "DRIVER", "MOUNTPOINT"]
            )
        )

    @cli.group()
    def network() -> None:
        """Manage networks."""

    @network.command("ls")
    @output
    @click.pass_obj
    def network_ls(context: ctx_mod.Context, output: str) -> None:
        with runtime_errors():
            items = context.runtime.list_networks()
        if output == "json":
            click.echo(json.dumps([dataclasses.asdict(n) for n in items], indent=2))
            return
        click.echo(
            _table(
                [[n.name, n.driver, n.subnet or "-"] for n in items], ["NAME", "DRIVER", "SUBNET"]
            )
        )
