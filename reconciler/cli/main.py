"""The ``pyreconcile`` command line.

Every command takes ``--root`` and ``--run-root`` (or ``PYRECONCILE_ROOT`` and
``PYRECONCILE_RUN_ROOT``) so that independent instances, and every test, keep
their own state. Results go to stdout; progress and logs to stderr.
Exit codes: 0 success, 1 error; ``diff`` adds 2 for pending changes.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal, NoReturn

import click

from reconciler.cli import (
    container_cmds,
    daemon_cmds,
    image_cmds,
    network_cmds,
    report,
    volume_cmds,
)
from reconciler.cli import context as ctx_mod
from runtime import errors

if TYPE_CHECKING:
    from reconciler.plan import model

# The commands import the loader, planner and engine when they run: `ps` and
# `logs` need none of them, and every CLI start pays for what is imported here.

FILES = click.option(
    "-f",
    "--file",
    "files",
    multiple=True,
    required=True,
    help="manifest file, directory, or - for stdin (repeatable)",
)
STACK = click.option("--stack", help="stack name (default: metadata.stack or the directory name)")


def _configure_logging(verbosity: int) -> None:
    from reconciler import logs

    logs.use_console(verbosity)


def fail(message: str, code: int = 1) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--root", envvar="PYRECONCILE_ROOT", help="persistent state [/var/lib/pyreconcile]")
@click.option("--run-root", envvar="PYRECONCILE_RUN_ROOT", help="runtime state [/run/pyreconcile]")
@click.option("-v", "--verbose", count=True, help="more logging on stderr (-vv for debug)")
@click.version_option(package_name="pyreconcile")
@click.pass_context
def cli(click_ctx: click.Context, root: str | None, run_root: str | None, verbose: int) -> None:
    """Declarative containers for one Linux host."""
    context = ctx_mod.Context(root=root, run_root=run_root)
    context.verbosity = verbose
    click_ctx.obj = context
    click_ctx.call_on_close(context.close)


def _load(files: tuple[str, ...], stack: str | None) -> model.DesiredState:
    from reconciler import desired as desired_mod
    from reconciler import load

    try:
        loaded = load.load_stack(list(files), stack=stack)
    except load.LoadError as exc:
        for problem in exc.problems:
            click.echo(str(problem), err=True)
        fail(report.problems_found(exc.problems))
    for warning in loaded.warnings:
        click.echo(f"warning: {warning}", err=True)
    return desired_mod.desired_state(loaded)


def _progress(quiet: bool) -> Callable[[str, model.Action, str], None]:
    def emit(event: str, action: model.Action, detail: str) -> None:
        line = report.progress_line(event, action.op, action.resource, detail, quiet=quiet)
        if line is not None:
            click.echo(line, err=True)

    return emit


OPTIONAL_FILES = click.option(
    "-f",
    "--file",
    "files",
    multiple=True,
    help="manifest file, directory, or - for stdin (repeatable)",
)


@cli.command()
@click.argument("plan_file", required=False, metavar="[PLAN]")
@OPTIONAL_FILES
@STACK
@click.option(
    "--prune/--no-prune",
    default=True,
    show_default=True,
    help="delete managed objects of the stack that are no longer in the manifests",
)
@click.option("--prune-volumes", is_flag=True, help="also delete volumes no longer desired")
@click.option("--allow-data-loss", is_flag=True, help="allow changes that delete volume data")
@click.option("-q", "--quiet", is_flag=True, help="print only errors")
@click.option(
    "--wait",
    "wait_up",
    is_flag=True,
    help="then wait until every container runs and every one-shot has exited 0",
)
@click.option(
    "--timeout",
    type=float,
    default=300.0,
    show_default=True,
    help="seconds --wait waits (exit 4 when it runs out)",
)
@click.pass_obj
def apply(
    context: ctx_mod.Context,
    plan_file: str | None,
    files: tuple[str, ...],
    stack: str | None,
    prune: bool,
    prune_volumes: bool,
    allow_data_loss: bool,
    quiet: bool,
    wait_up: bool,
    timeout: float,
) -> None:
    """Make the host match the manifests (-f), or apply exactly a saved PLAN.

    A PLAN made by `diff --out` is refused when its manifests or the host changed
    since it was made.
    """
    if plan_file and files:
        fail("give either manifests (-f) or a saved plan, not both")
    if not plan_file and not files:
        fail("give manifests with -f (files, directories or - for stdin), or a saved plan")
    with _runtime_errors():
        remote = context.api
    if remote is not None:  # the daemon logs; nothing to configure here
        from reconciler.cli import remote_cmds

        remote_cmds.apply(
            remote,
            plan_file,
            files,
            stack,
            prune=prune,
            prune_volumes=prune_volumes,
            allow_data_loss=allow_data_loss,
            quiet=quiet,
            wait_up=wait_up,
            timeout=timeout,
        )
        return
    from reconciler import engine, execute, saved_plan
    from reconciler.plan import model

    _configure_logging(context.verbosity)
    guard = None
    if plan_file:
        with _runtime_errors():
            document = saved_plan.read(plan_file)
        files = tuple(document["files"])
        stack = str(document["stack"])
        options = saved_plan.options_of(document)

        def guard(plan: model.Plan, observed: model.ObservedState) -> None:
            saved_plan.check(plan_file, document, desired, observed)

    else:
        options = model.PlanOptions(prune=prune, prune_volumes=prune_volumes)
    desired = _load(files, stack)
    with _runtime_errors(), context.stack_lock(desired.stack):
        result = engine.apply(
            context.runtime,
            desired,
            options,
            execute.ExecuteOptions(allow_data_loss=allow_data_loss),
            on_event=_progress(quiet),
            guard=guard,
        )
    if not quiet:
        print_applied(
            desired.stack,
            len(result.executed),
            result.rounds,
            [(n.kind, n.name, n.message) for n in result.final_plan.notes],
        )
    if wait_up:
        from reconciler import wait

        try:
            wait.wait_until_up(context.runtime, desired, timeout)
        except wait.WaitTimedOut as exc:
            fail(str(exc), 4)
        except wait.WaitFailed as exc:
            fail(str(exc))
        if not quiet:
            click.echo(f"stack {desired.stack}: up")


def print_applied(
    stack: str, executed: int, rounds: int, notes: list[tuple[str, str, str]]
) -> None:
    """``apply``'s summary (the same in-process and through the daemon)."""
    for line in report.applied_lines(stack, executed, rounds, notes):
        click.echo(line)


def print_deleted(stack: str, count: int, notes: list[tuple[str, str, str]]) -> None:
    """``delete``'s summary (the same in-process and through the daemon)."""
    for line in report.deleted_lines(stack, count, notes):
        click.echo(line)


@cli.command()
@FILES
@STACK
@click.option("--output", "-o", type=click.Choice(["text", "json"]), default="text")
@click.option(
    "--exit-code-style",
    type=click.Choice(["terraform", "diff"]),
    default="terraform",
    help="terraform: 0 in sync, 2 changes, 1 error; diff: 0 in sync, 1 changes, >1 error",
)
@click.option(
    "--fail-on-destructive",
    is_flag=True,
    help="exit 3 when a change would lose data (a volume recreated or deleted)",
)
@click.option("--out", "out", help="also save the plan to this file, for `apply FILE`")
@click.option("--prune/--no-prune", default=True, show_default=True)
@click.option("--prune-volumes", is_flag=True)
@click.pass_obj
def diff(
    context: ctx_mod.Context,
    files: tuple[str, ...],
    stack: str | None,
    output: str,
    exit_code_style: str,
    fail_on_destructive: bool,
    out: str | None,
    prune: bool,
    prune_volumes: bool,
) -> None:
    """Show what apply would change; the exit code tells CI whether the host drifted.

    Exit codes (terraform style, the default): 0 in sync, 2 changes pending,
    1 error (or a plan that apply would refuse), 3 with --fail-on-destructive
    when a change would lose data. With --exit-code-style diff: 0, 1 changes, 2 error.
    """
    error_code = 1 if exit_code_style == "terraform" else 2
    try:
        remote = context.api
    except errors.RuntimeError_ as exc:
        fail(str(exc), error_code)
    if remote is not None:
        from reconciler.cli import remote_cmds

        remote_cmds.diff(
            remote,
            files,
            stack,
            output=output,
            exit_code_style=exit_code_style,
            fail_on_destructive=fail_on_destructive,
            out=out,
            prune=prune,
            prune_volumes=prune_volumes,
        )
    from reconciler import engine, render, saved_plan
    from reconciler.plan import model

    _configure_logging(context.verbosity)
    try:
        desired = _load(files, stack)
    except SystemExit:
        sys.exit(error_code)
    options = model.PlanOptions(prune=prune, prune_volumes=prune_volumes)
    try:
        observed, plan = engine.observe_and_plan(context.runtime, desired, options)
        if out:
            saved_plan.save(out, plan, desired, observed, files=list(files), options=options)
    except errors.RuntimeError_ as exc:
        fail(str(exc), error_code)
    if output == "json":
        click.echo(render.plan_json(plan), nl=False)
    else:
        click.echo(render.plan_text(plan, render.use_colour(sys.stdout)), nl=False)
    sys.exit(
        report.diff_exit_code(
            in_sync=plan.in_sync,
            blocked=plan.blocked,
            destructive=plan.destructive,
            exit_code_style=exit_code_style,
            fail_on_destructive=fail_on_destructive,
        )
    )


@cli.command()
@FILES
@STACK
def validate(files: tuple[str, ...], stack: str | None) -> None:
    """Check manifests without touching the host."""
    desired = _load(files, stack)
    n = len(desired.images) + len(desired.networks) + len(desired.volumes) + len(desired.containers)
    click.echo(f"stack {desired.stack}: {n} object{'s' if n != 1 else ''}, valid")


@cli.command()
@click.option("-f", "--file", "files", multiple=True, help="manifests naming the stack")
@STACK
@click.option("--volumes", is_flag=True, help="also delete the stack's volumes (their data)")
@click.option("-q", "--quiet", is_flag=True)
@click.pass_obj
def delete(
    context: ctx_mod.Context,
    files: tuple[str, ...],
    stack: str | None,
    volumes: bool,
    quiet: bool,
) -> None:
    """Remove every object of a stack (volumes are kept unless --volumes)."""
    with _runtime_errors():
        remote = context.api
    if remote is not None:
        from reconciler.cli import remote_cmds

        remote_cmds.delete(remote, files, stack, volumes=volumes, quiet=quiet)
        return
    from reconciler import engine

    _configure_logging(context.verbosity)
    if files:
        stack = _load(files, stack).stack
    if not stack:
        fail("name the stack: give -f MANIFESTS or --stack NAME")
    with _runtime_errors(), context.stack_lock(stack):
        plan = engine.delete_stack(
            context.runtime, stack, volumes=volumes, on_event=_progress(quiet)
        )
    if not quiet:
        print_deleted(stack, len(plan.actions), [(n.kind, n.name, n.message) for n in plan.notes])


@cli.command()
@click.argument("name")
@STACK
@click.pass_obj
def rollback(context: ctx_mod.Context, name: str, stack: str | None) -> None:
    """Recreate a container from its previously applied spec (and image).

    Self-heal leaves a rolled-back container alone; the next apply rolls it
    forward to the manifests again. A second rollback undoes the first.
    """
    from reconciler import labels as L
    from reconciler import rollback as rollback_mod

    _configure_logging(context.verbosity)
    with _runtime_errors():
        info = ctx_mod.resolve_container(context.runtime, name, stack)
        stack_name, object_name = info.labels.get(L.STACK), info.labels.get(L.NAME)
        if not stack_name or not object_name:
            fail(f"container {info.name} is not managed by pyreconcile")
        if context.api is not None:
            from reconciler.cli import remote_cmds

            done = remote_cmds.rollback(context.api, stack_name, object_name)
        else:
            with context.stack_lock(stack_name):
                done = rollback_mod.rollback(context.runtime, stack_name, object_name)
    click.echo(f"{stack_name}/{object_name}: rolled back, {done.status}")


class _runtime_errors:
    """Turn categorised runtime errors into one line on stderr and exit 1."""

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: Any
    ) -> Literal[False]:
        if isinstance(exc, errors.RuntimeError_):
            fail(str(exc))
        return False


for commands in (container_cmds, image_cmds, volume_cmds, network_cmds, daemon_cmds):
    commands.register(cli, _runtime_errors, fail)


def main() -> None:
    try:
        cli(standalone_mode=True)
    except errors.RuntimeError_ as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        fail("interrupted", 130)


def _json_default(value: Any) -> Any:
    return str(value)


def dump_json(value: Any) -> str:
    return json.dumps(value, indent=2, default=_json_default)
