"""The ``volume`` commands."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from typing import Any

import click

from reconciler.cli import context as ctx_mod
from reconciler.cli.inspect_cmds import table


def register(
    cli: click.Group,
    runtime_errors: Callable[[], Any],
    fail: Callable[[str], Any],
) -> None:
    output = click.option("--output", "-o", type=click.Choice(["table", "json"]), default="table")

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
            table(
                [[v.name, v.driver, v.mountpoint] for v in items], ["NAME", "DRIVER", "MOUNTPOINT"]
            )
        )
