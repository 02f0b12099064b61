"""The ``network`` commands."""

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
            table(
                [[n.name, n.driver, n.subnet or "-"] for n in items], ["NAME", "DRIVER", "SUBNET"]
            )
        )
