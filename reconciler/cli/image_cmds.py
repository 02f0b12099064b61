"""The ``image`` commands (pull, push, ls, inspect, rm, tag, import, save,
load, prune) and the top-level ``login``/``logout``.

Results go to stdout, progress to stderr (per layer, bytes and rate; see
``progress``); ``--progress json`` prints every pull or push event as a JSON
line on stdout instead, for programs. Passwords are read from a prompt or
``--password-stdin``, never from the command line unless ``-p`` is given
(which, as with ``docker login``, leaves it in the shell history).
"""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Callable
from typing import Any

import click

from reconciler.cli import context as ctx_mod
from reconciler.cli import progress as progress_mod
from reconciler.cli.inspect_cmds import age, table
from runtime import client

PROGRESS = click.option(
    "--progress",
    type=click.Choice(["auto", "tty", "plain", "json", "quiet"]),
    default="auto",
    show_default=True,
    help="how to show progress: live lines on a terminal (tty), a line per layer (plain), "
    "JSON events on stdout (json), or nothing",
)


def _image_json(i: client.ImageInfo) -> dict[str, Any]:
    return {
        "id": i.id,
        "digest": i.digest,
        "references": list(i.references),
        "size": i.size,
        "createdAt": i.created_at,
    }


def register(
    cli: click.Group,
    runtime_errors: Callable[[], Any],
    fail: Callable[[str], Any],
) -> None:
    output = click.option("--output", "-o", type=click.Choice(["table", "json"]), default="table")

    @cli.group()
    def image() -> None:
        """Manage images."""

    @image.command("pull")
    @click.argument("reference")
    @click.option("--platform", help="os/arch[/variant] to pull from a multi-platform image")
    @PROGRESS
    @click.pass_obj
    def image_pull(
        context: ctx_mod.Context, reference: str, platform: str | None, progress: str
    ) -> None:
        """Pull an image from its registry (verified, layers in parallel)."""
        shown = progress_mod.Progress.choose(progress)
        with runtime_errors():
            info = context.runtime.pull_image(reference, platform=platform, progress=shown)
        if shown.mode != "json":
            click.echo(f"{info.id}  {reference}  {info.digest}")

    @image.command("push")
    @click.argument("source")
    @click.argument("destination", required=False)
    @PROGRESS
    @click.pass_obj
    def image_push(
        context: ctx_mod.Context, source: str, destination: str | None, progress: str
    ) -> None:
        """Push an image to a registry, as SOURCE's name or as DESTINATION."""
        shown = progress_mod.Progress.choose(progress)
        with runtime_errors():
            digest = context.runtime.push_image(source, destination, progress=shown)
        if shown.mode != "json":
            click.echo(f"{destination or source}@{digest}")

    @image.command("ls")
    @output
    @click.option("-q", "--quiet", is_flag=True, help="only ids")
    @click.pass_obj
    def image_ls(context: ctx_mod.Context, output: str, quiet: bool) -> None:
        """List images with their manifest digests."""
        with runtime_errors():
            items = context.runtime.list_images()
        if output == "json":
            click.echo(json.dumps([_image_json(i) for i in items], indent=2))
            return
        if quiet:
            for i in items:
                click.echo(i.id)
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

    @image.command("tag")
    @click.argument("source")
    @click.argument("target")
    @click.pass_obj
    def image_tag(context: ctx_mod.Context, source: str, target: str) -> None:
        """Give the image SOURCE (a name or an id) the name TARGET."""
        with runtime_errors():
            info = context.runtime.tag_image(source, target)
        click.echo(f"{info.id}  {' '.join(info.references)}")

    @image.command("import")
    @click.argument("path")
    @click.option("--tag", "-t", help="reference to give it (e.g. localhost/app:1)")
    @click.pass_obj
    def image_import(context: ctx_mod.Context, path: str, tag: str | None) -> None:
        """Import a rootfs tarball, an OCI image layout (directory or tar) or a
        'docker save' archive."""
        with runtime_errors():
            info = context.runtime.import_image(path, tag)
        click.echo(f"{info.id}  {' '.join(info.references)}")

    @image.command("save")
    @click.argument("refs", nargs=-1, required=True)
    @click.option("--output", "-o", "path", required=True, help="file (or directory for oci-dir)")
    @click.option(
        "--format",
        "archive_format",
        type=click.Choice(["docker-archive", "oci-archive", "oci-dir"]),
        default="docker-archive",
        show_default=True,
        help="docker-archive loads with 'docker load'; oci-* are OCI image layouts",
    )
    @click.pass_obj
    def image_save(
        context: ctx_mod.Context, refs: tuple[str, ...], path: str, archive_format: str
    ) -> None:
        """Write images to an archive (named by the names given; ids leave them unnamed)."""
        with runtime_errors():
            context.runtime.save_images(list(refs), path, format=archive_format)  # type: ignore[arg-type]
        click.echo(f"saved {len(refs)} image{'s' if len(refs) != 1 else ''} to {path}")

    @image.command("load")
    @click.option(
        "--input", "-i", "path", required=True, help="a 'docker save' archive or OCI layout"
    )
    @click.pass_obj
    def image_load(context: ctx_mod.Context, path: str) -> None:
        """Load every image of a 'docker save' archive or an OCI layout, with their names."""
        with runtime_errors():
            loaded = context.runtime.load_images(path)
        for info in loaded:
            click.echo(f"loaded {info.id}  {' '.join(info.references)}")

    @image.command("prune")
    @click.option("--all", "-a", "all_unused", is_flag=True, help="named images too")
    @click.pass_obj
    def image_prune(context: ctx_mod.Context, all_unused: bool) -> None:
        """Delete images no container uses: unnamed ones (all with -a), and their layers."""
        with runtime_errors():
            removed = context.runtime.prune_images(all_unused=all_unused)
        for image_id in removed:
            click.echo(f"deleted {image_id}")
        click.echo(f"{len(removed)} image{'s' if len(removed) != 1 else ''} deleted")

    @cli.command()
    @click.argument("registry")
    @click.option("--username", "-u", help="user name (prompted for when absent)")
    @click.option("--password", "-p", help="password (visible in the shell history: avoid)")
    @click.option("--password-stdin", is_flag=True, help="read the password from stdin")
    @click.pass_obj
    def login(
        context: ctx_mod.Context,
        registry: str,
        username: str | None,
        password: str | None,
        password_stdin: bool,
    ) -> None:
        """Check credentials against REGISTRY and store them in Docker's config.json."""
        if password_stdin:
            if password:
                fail("--password and --password-stdin are exclusive")
            password = sys.stdin.read().rstrip("\r\n")
        if not username:
            username = click.prompt("Username", err=True)
        if password is None:
            password = click.prompt("Password", hide_input=True, err=True)
        with runtime_errors():
            context.runtime.login(registry, str(username), str(password))
        click.echo(f"logged in to {registry}")

    @cli.command()
    @click.argument("registry")
    @click.pass_obj
    def logout(context: ctx_mod.Context, registry: str) -> None:
        """Forget the credentials stored for REGISTRY."""
        with runtime_errors():
            removed = context.runtime.logout(registry)
        click.echo(f"logged out of {registry}" if removed else f"not logged in to {registry}")
