"""The ``volume`` commands: ls, inspect, create, rm, prune, backup, restore.

A volume is named as the runtime knows it (``demo_data``), as ``STACK/NAME``
(``demo/data``), or by its manifest name when one stack has it (or with
``--stack``). ``ls`` and ``inspect`` show the containers that use a volume
and what is wrong on the host (a mount gone after a reboot, which ``apply``
or a container start repairs).

Data is never removed without being named: ``rm`` takes names, ``prune``
removes only unused *anonymous* volumes unless ``--all``, and asks first
unless ``--force``. ``backup`` writes a tar to stdout (or ``--output``) while
the volume's running users are paused (or stopped, ``--stop``); ``restore``
reads one from stdin (or ``--input``) while they are stopped, into an empty
or new volume, or over a volume's content only with ``--replace``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import sys
from collections.abc import Callable, Iterator
from typing import Any, BinaryIO

import click

from reconciler.cli import context as ctx_mod
from reconciler.cli.inspect_cmds import age, table
from runtime import client, errors


def resolve_volume(runtime: client.RuntimeClient, name: str, stack: str | None) -> str:
    """The runtime name of the volume ``name`` (see the module doc)."""
    objects = [(v.name, dict(v.labels)) for v in runtime.list_volumes()]
    return ctx_mod.resolve_name("volume", objects, name, stack, "pyreconcile volume ls")


def kind_text(info: client.VolumeInfo) -> str:
    """What the local driver's options make of it: ``directory``, ``tmpfs``, ``bind /srv``…"""
    opts = dict(info.options)
    words = [w.strip() for w in opts.get("o", "").split(",")]
    if opts.get("type") == "tmpfs":
        return "tmpfs"
    if "bind" in words or "rbind" in words:
        return f"bind {opts.get('device', '')}"
    if opts.get("type"):
        return f"{opts['type']} {opts.get('device', '')}{' (loop)' if 'loop' in words else ''}"
    return "directory"


def _json(info: client.VolumeInfo) -> dict[str, Any]:
    data = dataclasses.asdict(info)
    data["options"] = dict(info.options)
    data["labels"] = dict(info.labels)
    data["annotations"] = dict(info.annotations)
    data["kind"] = kind_text(info)
    data["anonymousOwner"] = info.anonymous_owner
    data["healthy"] = not info.problems
    return data


def _pairs(pairs: tuple[str, ...], hint: str) -> tuple[tuple[str, str], ...]:
    found = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{pair!r}: expected KEY=VALUE", param_hint=hint)
        found[key] = value
    return client.frozen_map(found)


@contextlib.contextmanager
def _binary(path: str | None, writing: bool, std: BinaryIO) -> Iterator[BinaryIO]:
    """``std`` (stdin or stdout) when no path is given (or ``-``), else the file."""
    if path is None or path == "-":
        yield std
    elif writing:
        with open(path, "wb") as out:
            yield out
    else:
        with open(path, "rb") as src:
            yield src


def register(
    cli: click.Group,
    runtime_errors: Callable[[], Any],
    fail: Callable[[str], Any],
) -> None:
    output = click.option("--output", "-o", type=click.Choice(["table", "json"]), default="table")
    stack_opt = click.option("--stack", help="the stack of a volume named by its manifest name")

    @cli.group()
    def volume() -> None:
        """Manage volumes (their data is only removed when named)."""

    @volume.command("ls")
    @output
    @click.option("-q", "--quiet", is_flag=True, help="names only")
    @click.pass_obj
    def volume_ls(context: ctx_mod.Context, output: str, quiet: bool) -> None:
        """List volumes, the containers that use them and their problems."""
        with runtime_errors():
            items = context.runtime.list_volumes()
        if quiet:
            for v in items:
                click.echo(v.name)
            return
        if output == "json":
            click.echo(json.dumps([_json(v) for v in items], indent=2))
            return
        rows = [
            [
                v.name,
                v.driver,
                kind_text(v),
                ", ".join(v.users) or "-",
                age(v.created_at),
                "; ".join(v.problems) or "ok",
            ]
            for v in items
        ]
        click.echo(table(rows, ["NAME", "DRIVER", "KIND", "USED BY", "CREATED", "STATUS"]))

    @volume.command("inspect")
    @click.argument("names", nargs=-1, required=True)
    @stack_opt
    @click.pass_obj
    def volume_inspect(context: ctx_mod.Context, names: tuple[str, ...], stack: str | None) -> None:
        """Show volumes as JSON."""
        with runtime_errors():
            found = [
                context.runtime.get_volume(resolve_volume(context.runtime, n, stack)) for n in names
            ]
        click.echo(json.dumps([_json(v) for v in found], indent=2))

    @volume.command("create")
    @click.argument("name")
    @click.option("--driver", "-d", default="local", show_default=True)
    @click.option("--opt", "opts", multiple=True, help="driver option KEY=VALUE (type, device, o)")
    @click.option("--label", "labels", multiple=True, help="KEY=VALUE")
    @click.pass_obj
    def volume_create(
        context: ctx_mod.Context,
        name: str,
        driver: str,
        opts: tuple[str, ...],
        labels: tuple[str, ...],
    ) -> None:
        """Create a volume (a directory, or a tmpfs, bind or device with --opt)."""
        config = client.VolumeConfig(
            name=name,
            driver=driver,
            options=_pairs(opts, "--opt"),
            labels=_pairs(labels, "--label"),
        )
        with runtime_errors():
            info = context.runtime.create_volume(config)
        click.echo(info.name)

    @volume.command("rm")
    @click.argument("names", nargs=-1, required=True)
    @stack_opt
    @click.pass_obj
    def volume_rm(context: ctx_mod.Context, names: tuple[str, ...], stack: str | None) -> None:
        """Remove volumes and their data (refused while a container uses one)."""
        failed = False
        for name in names:
            try:
                runtime_name = resolve_volume(context.runtime, name, stack)
                context.runtime.remove_volume(runtime_name)
            except errors.RuntimeError_ as exc:
                click.echo(f"error: {exc}", err=True)
                failed = True
                continue
            click.echo(runtime_name)
        if failed:
            sys.exit(1)

    @volume.command("prune")
    @click.option("--all", "-a", "all_unused", is_flag=True, help="named volumes too")
    @click.option("--force", "-f", is_flag=True, help="do not ask")
    @click.pass_obj
    def volume_prune(context: ctx_mod.Context, all_unused: bool, force: bool) -> None:
        """Remove unused anonymous volumes (with --all, every unused volume) and their data."""
        if not force:
            what = "every volume" if all_unused else "every anonymous volume"
            click.confirm(
                f"This removes {what} that no container uses, with its data. Continue?",
                abort=True,
                err=True,
            )
        with runtime_errors():
            removed = context.runtime.prune_volumes(all_unused=all_unused)
        for name in removed:
            click.echo(name)
        click.echo(f"removed {len(removed)} volume{'s' if len(removed) != 1 else ''}", err=True)

    @volume.command("backup")
    @click.argument("name")
    @stack_opt
    @click.option("--stop", is_flag=True, help="stop its running users instead of pausing them")
    @click.option("--output", "-o", "path", help="write to this file instead of stdout")
    @click.pass_obj
    def volume_backup(
        context: ctx_mod.Context, name: str, stack: str | None, stop: bool, path: str | None
    ) -> None:
        """Write the volume's content as a tar (owners, modes, xattrs, hardlinks).

        Running containers that use it are paused for the copy (a consistent,
        point-in-time archive), or stopped and started again with --stop.
        """
        if path is None and sys.stdout.isatty():
            fail("refusing to write a tar to a terminal: redirect stdout or give --output")
        with runtime_errors():
            runtime_name = resolve_volume(context.runtime, name, stack)
            with _binary(path, True, sys.stdout.buffer) as out:
                context.runtime.backup_volume(runtime_name, out, stop=stop)
                out.flush()

    @volume.command("restore")
    @click.argument("name")
    @stack_opt
    @click.option("--replace", is_flag=True, help="replace the content of a volume that has data")
    @click.option("--input", "-i", "path", help="read this file instead of stdin")
    @click.pass_obj
    def volume_restore(
        context: ctx_mod.Context, name: str, stack: str | None, replace: bool, path: str | None
    ) -> None:
        """Fill a volume (made if missing) from a tar written by `volume backup`.

        Containers that use it are stopped for the swap and started again. An
        archive with an entry that escapes the volume is refused and nothing
        changes; a volume that holds data is only replaced with --replace.
        """
        if path is None and sys.stdin.isatty():
            fail("give the archive on stdin (volume restore NAME < file.tar) or with --input")
        with runtime_errors():
            try:
                runtime_name = resolve_volume(context.runtime, name, stack)
            except errors.NotFound as exc:
                if "/" in name or stack:
                    raise errors.NotFound(
                        f"{exc}; apply the stack first (it makes the volume), then restore "
                        "into it (with --replace once its containers have written to it)"
                    ) from None
                runtime_name = name  # a new volume, outside any stack
            with _binary(path, False, sys.stdin.buffer) as archive:
                info = context.runtime.restore_volume(runtime_name, archive, replace=replace)
        click.echo(f"restored volume {info.name}", err=True)
