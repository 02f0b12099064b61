"""The ``image`` commands: import, ls, inspect, rm."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from typing import Any

import click

from reconciler.cli import context as ctx_mod
from reconciler.cli.inspect_cmds import age, table


def register(
    cli: click.Group,
    runtime_errors: Callable[[], Any],
    fail: Callable[[str], Any],
) -> None:
    output = click.option("--output", "-o", type=click.Choice(["table", "json"]), default="table")

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
                rows.append([ref, i.id[7:19], i.digest, f"{i.size / 1e6:.1f}MB", age(i.created_at)])
        click.echo(table(rows, ["REFERENCE", "IMAGE ID", "DIGEST", "SIZE", "CREATED"]))

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
