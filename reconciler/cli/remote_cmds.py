"""``apply``, ``diff``, ``delete`` and ``rollback`` through the daemon.

The daemon loads, plans and executes; these functions send what the
in-process commands would have read (paths as typed, the working directory,
stdin's text, the environment) and print what comes back exactly as the
in-process commands print (``main.print_applied`` and ``print_deleted`` are
shared), with the same exit codes. Nothing here imports the loader or the
planner: a no-op apply through the daemon costs a CLI start and one request.
"""

from __future__ import annotations

import os
import sys
from typing import NoReturn

import click

from reconciler.cli import report
from reconciler.daemon import api_types as T
from reconciler.daemon import client as daemon_client
from runtime import client, errors


def _fail(message: str, code: int = 1) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def _inputs(files: tuple[str, ...]) -> dict[str, object]:
    return {
        "files": tuple(files),
        "cwd": os.getcwd(),
        "stdin": sys.stdin.read() if "-" in files else None,
        "environ": tuple(os.environ.items()),
    }


def _load_failed(body: T.ErrorBody, code: int) -> NoReturn:
    for problem in body.problems:
        click.echo(problem, err=True)
    _fail(report.problems_found(body.problems), code)


def _progress(line: T.ProgressLine, quiet: bool) -> None:
    text = report.progress_line(line.event, line.op, line.resource, line.message, quiet=quiet)
    if text is not None:
        click.echo(text, err=True)


def _notes(notes: tuple[T.NoteView, ...]) -> list[tuple[str, str, str]]:
    return [(n.kind, n.name, n.message) for n in notes]


def apply(
    api: daemon_client.ApiClient,
    plan_file: str | None,
    files: tuple[str, ...],
    stack: str | None,
    *,
    prune: bool,
    prune_volumes: bool,
    allow_data_loss: bool,
    quiet: bool,
    wait_up: bool,
    timeout: float,
) -> None:
    from reconciler.cli import main

    document = None
    if plan_file:  # (the command checked that it comes without -f)
        from reconciler import saved_plan

        try:
            document = saved_plan.read(plan_file)
        except errors.RuntimeError_ as exc:
            _fail(str(exc))
    request = T.ApplyRequest(
        **_inputs(files),  # type: ignore[arg-type]
        stack=stack,
        prune=prune,
        prune_volumes=prune_volumes,
        allow_data_loss=allow_data_loss,
        plan=document,
        plan_path=plan_file or "",
        wait=wait_up,
        timeout=timeout,
    )
    try:
        lines = api.stream(
            "POST", "/v1/stacks/apply", request, body_type=T.ApplyRequest, item=T.ProgressLine
        )
        for line in lines:
            _progress(line, quiet)
            if line.event == "result" and line.apply is not None and not quiet:
                done = line.apply
                if done.up:
                    click.echo(f"stack {done.stack}: up")
                else:
                    main.print_applied(done.stack, done.executed, done.rounds, _notes(done.notes))
            elif line.event == "error" and line.error is not None:
                if line.error.reason == "load_failed":
                    _load_failed(line.error, 1)
                _fail(line.error.message, 4 if line.error.reason == "wait_timed_out" else 1)
    except errors.RuntimeError_ as exc:
        _fail(str(exc))


def diff(
    api: daemon_client.ApiClient,
    files: tuple[str, ...],
    stack: str | None,
    *,
    output: str,
    exit_code_style: str,
    fail_on_destructive: bool,
    out: str | None,
    prune: bool,
    prune_volumes: bool,
) -> NoReturn:
    error_code = 1 if exit_code_style == "terraform" else 2
    request = T.DiffRequest(
        **_inputs(files),  # type: ignore[arg-type]
        stack=stack,
        prune=prune,
        prune_volumes=prune_volumes,
        output="json" if output == "json" else "text",
        colour=sys.stdout.isatty() and "NO_COLOR" not in os.environ,
        save=bool(out),
    )
    try:
        outcome: T.DiffOutcome = api.call(
            "POST", "/v1/stacks/diff", request, body_type=T.DiffRequest, returns=T.DiffOutcome
        )
        if out and outcome.saved is not None:
            from reconciler import saved_plan

            saved_plan.write(out, outcome.saved)
    except daemon_client.RemoteError as exc:
        if exc.body.reason == "load_failed":
            _load_failed(exc.body, error_code)
        _fail(str(exc), error_code)
    except errors.RuntimeError_ as exc:
        _fail(str(exc), error_code)
    click.echo(outcome.rendered, nl=False)
    sys.exit(
        report.diff_exit_code(
            in_sync=outcome.in_sync,
            blocked=outcome.blocked,
            destructive=outcome.destructive,
            exit_code_style=exit_code_style,
            fail_on_destructive=fail_on_destructive,
        )
    )


def delete(
    api: daemon_client.ApiClient,
    files: tuple[str, ...],
    stack: str | None,
    *,
    volumes: bool,
    quiet: bool,
) -> None:
    from reconciler.cli import main

    if not files and not stack:
        _fail("name the stack: give -f MANIFESTS or --stack NAME")
    request = T.DeleteRequest(**_inputs(files), stack=stack, volumes=volumes)  # type: ignore[arg-type]
    try:
        for line in api.stream(
            "POST", "/v1/stacks/delete", request, body_type=T.DeleteRequest, item=T.ProgressLine
        ):
            _progress(line, quiet)
            if line.event == "result" and line.delete is not None and not quiet:
                done = line.delete
                main.print_deleted(done.stack, done.deleted, _notes(done.notes))
            elif line.event == "error" and line.error is not None:
                if line.error.reason == "load_failed":
                    _load_failed(line.error, 1)
                _fail(line.error.message)
    except errors.RuntimeError_ as exc:
        _fail(str(exc))


def rollback(api: daemon_client.ApiClient, stack: str, name: str) -> client.ContainerInfo:
    path = (
        f"/v1/stacks/{daemon_client.quote(stack)}/containers/{daemon_client.quote(name)}/rollback"
    )
    return api.call("POST", path, returns=client.ContainerInfo)
