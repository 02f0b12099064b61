"""Routes of stacks: apply, diff and delete of manifests, rollback, and their status.

The daemon owns applying: the CLI sends what it would have loaded in-process
(paths as typed, its working directory, stdin's text, its environment, the
options) and prints what comes back. The daemon loads with the same loader,
plans and executes with the same engine, so results and exit codes are the same
in both modes.

Loading resolves relative paths and finds the ``.env`` of ``-f -`` in the
caller's working directory: loads ``chdir`` there, one at a time
(``App.load_lock``), for the few milliseconds a load takes; nothing else in the
daemon uses relative paths. An apply or delete streams its progress as JSON
lines and stops (between two runtime calls) when its client goes away, as an
interrupted in-process apply does.
"""

from __future__ import annotations

import io
import os
import queue
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import structlog

from reconciler.daemon import api_types as T
from reconciler.daemon import server, stacklock
from reconciler.daemon.app import App
from reconciler.daemon.server import Call, Route
from runtime import client, errors

if TYPE_CHECKING:
    from reconciler import load
    from reconciler.plan import model

log = structlog.get_logger(__name__)

Emit = Callable[[T.ProgressLine], None]


def load_request(
    app: App, request: T.StackInputs, files: list[str] | None = None
) -> load.DesiredStack:
    """Load as the caller's CLI would have, in the caller's working directory."""
    from reconciler import load

    stdin = io.StringIO(request.stdin or "")
    with app.load_lock:
        previous = os.getcwd()
        try:
            os.chdir(request.cwd)
        except OSError as exc:
            raise errors.InvalidSpec(
                f"the daemon cannot enter your working directory {request.cwd}: "
                f"{(exc.strerror or str(exc)).lower()}; "
                "give absolute paths from a directory it can read"
            ) from None
        try:
            return load.load_stack(
                files if files is not None else list(request.files),
                stack=request.stack,
                environ=dict(request.environ),
                stdin=stdin,
            )
        finally:
            os.chdir(previous)


def _notes(plan: model.Plan) -> tuple[T.NoteView, ...]:
    return tuple(T.NoteView(n.kind, n.name, n.message, n.blocking) for n in plan.notes)


def _on_event(emit: Emit) -> Callable[[str, model.Action, str], None]:
    def on_event(event: str, action: model.Action, detail: str) -> None:
        if event in ("action_started", "action_done", "action_failed"):
            emit(
                T.ProgressLine(
                    event=event,  # type: ignore[arg-type]
                    op=action.op,
                    resource=action.resource,
                    message=detail,
                )
            )

    return on_event


def _streamed(app: App, work: Callable[[Emit, threading.Event], None], what: str) -> server.Stream:
    """Run ``work`` in a thread; its lines, then the end, as a stream with ticks."""
    lines: queue.Queue[T.ProgressLine | None] = queue.Queue()
    cancel = threading.Event()

    def run() -> None:
        try:
            work(lines.put, cancel)
        except errors.RuntimeError_ as exc:
            reason = "load_failed" if getattr(exc, "problems", None) else ""
            lines.put(T.ProgressLine(event="error", error=server.error_body(exc, reason)))
        except Exception:
            log.exception("request_failed", what=what)
            body = T.ErrorBody("internal error in the daemon; see its log", reason="internal")
            lines.put(T.ProgressLine(event="error", error=body))
        finally:
            lines.put(None)

    threading.Thread(target=run, name=what, daemon=True).start()

    def items() -> Iterator[T.ProgressLine | None]:
        while True:
            try:
                line = lines.get(timeout=server.TICK)
            except queue.Empty:
                yield None
                continue
            if line is None:
                return
            yield line

    return server.Stream(items(), cancel)


def _absolute(request: T.StackInputs) -> list[str]:
    return [
        f if f == "-" else os.path.normpath(os.path.join(request.cwd, f)) for f in request.files
    ]


def apply_stack(app: App, call: Call) -> Any:
    request: T.ApplyRequest = call.body
    return _streamed(
        app, lambda emit, cancel: _apply(app, request, emit, cancel, call.peer), "apply"
    )


def _apply(
    app: App, request: T.ApplyRequest, emit: Emit, cancel: threading.Event, peer: server.Peer
) -> None:
    import dataclasses

    from reconciler import desired as desired_mod
    from reconciler import engine, execute, saved_plan, wait
    from reconciler.plan import model

    guard = None
    files: list[str] | None = None
    stack = request.stack
    if request.plan is not None:
        document = request.plan
        listed = document.get("files")
        if (
            not isinstance(listed, list)
            or not listed
            or not all(isinstance(f, str) for f in listed)
        ):
            raise errors.InvalidSpec(
                f"{request.plan_path or 'the plan'}: the plan names no manifest files"
            )
        files = list(listed)
        stack = str(document.get("stack"))
        options = saved_plan.options_of(document)

        def guard(plan: model.Plan, observed: model.ObservedState) -> None:
            saved_plan.check(request.plan_path, document, desired, observed)

    elif not request.files:
        raise errors.InvalidSpec(
            "give manifests with -f (files, directories or - for stdin), or a saved plan"
        )
    else:
        options = model.PlanOptions(prune=request.prune, prune_volumes=request.prune_volumes)
    loaded = load_request(app, dataclasses.replace(request, stack=stack), files)
    for warning in loaded.warnings:
        emit(T.ProgressLine(event="notice", message=f"warning: {warning}"))
    desired = desired_mod.desired_state(loaded)
    runtime = stacklock.CancellableRuntime.wrap(app.runtime, cancel)

    def waiting() -> None:
        emit(
            T.ProgressLine(
                event="notice",
                message=f"waiting for another apply or delete of stack {desired.stack}…",
            )
        )

    app.events.emit("apply_requested", stack=desired.stack, message=f"by uid {peer.uid}")
    with stacklock.stack_lock(app.run_root, desired.stack, cancel=cancel, on_wait=waiting):
        result = engine.apply(
            runtime,
            desired,
            options,
            execute.ExecuteOptions(allow_data_loss=request.allow_data_loss),
            on_event=_on_event(emit),
            guard=guard,
        )
    for action in result.executed:
        app.events.emit(
            "change_applied",
            stack=desired.stack,
            object=action.resource,
            message=f"{action.op}: " + "; ".join(str(r) for r in action.reasons),
            result="ok",
        )
    outcome = T.ApplyOutcome(
        stack=desired.stack,
        executed=len(result.executed),
        rounds=result.rounds,
        notes=_notes(result.final_plan),
    )
    emit(T.ProgressLine(event="result", apply=outcome))
    if not request.wait:
        return
    try:
        wait.wait_until_up(runtime, desired, request.timeout)
    except wait.WaitTimedOut as exc:
        emit(T.ProgressLine(event="error", error=server.error_body(exc, "wait_timed_out")))
        return
    except wait.WaitFailed as exc:
        emit(T.ProgressLine(event="error", error=server.error_body(exc, "wait_failed")))
        return
    emit(T.ProgressLine(event="result", apply=dataclasses.replace(outcome, up=True)))


def diff_stack(app: App, call: Call) -> Any:
    from reconciler import desired as desired_mod
    from reconciler import engine, render, saved_plan
    from reconciler.plan import model

    request: T.DiffRequest = call.body
    if not request.files:
        raise errors.InvalidSpec("give manifests with -f (files, directories or - for stdin)")
    loaded = load_request(app, request)
    desired = desired_mod.desired_state(loaded)
    options = model.PlanOptions(prune=request.prune, prune_volumes=request.prune_volumes)
    observed, plan = engine.observe_and_plan(app.runtime, desired, options)
    saved = None
    if request.save:
        saved = saved_plan.document(
            plan, desired, observed, files=_absolute(request), options=options
        )
    rendered = (
        render.plan_json(plan)
        if request.output == "json"
        else render.plan_text(plan, request.colour)
    )
    return T.DiffOutcome(
        stack=plan.stack,
        rendered=rendered,
        in_sync=plan.in_sync,
        blocked=plan.blocked,
        destructive=plan.destructive,
        saved=saved,
    )


def delete_stack(app: App, call: Call) -> Any:
    request: T.DeleteRequest = call.body
    return _streamed(app, lambda emit, cancel: _delete(app, request, emit, cancel), "delete")


def _delete(app: App, request: T.DeleteRequest, emit: Emit, cancel: threading.Event) -> None:
    from reconciler import engine

    stack = request.stack
    if request.files:
        stack = load_request(app, request).name
    if not stack:
        raise errors.InvalidSpec("name the stack: give -f MANIFESTS or --stack NAME")
    runtime = stacklock.CancellableRuntime.wrap(app.runtime, cancel)

    def waiting() -> None:
        emit(
            T.ProgressLine(
                event="notice", message=f"waiting for another apply or delete of stack {stack}…"
            )
        )

    with stacklock.stack_lock(app.run_root, stack, cancel=cancel, on_wait=waiting):
        plan = engine.delete_stack(
            runtime, stack, volumes=request.volumes, on_event=_on_event(emit)
        )
    app.events.emit(
        "stack_deleted", stack=stack, message=f"{len(plan.actions)} objects", result="ok"
    )
    emit(
        T.ProgressLine(
            event="result", delete=T.DeleteOutcome(stack, len(plan.actions), _notes(plan))
        )
    )


def rollback_container(app: App, call: Call) -> Any:
    from reconciler import rollback

    stack, name = call.params["stack"], call.params["name"]
    with stacklock.stack_lock(app.run_root, stack):
        info = rollback.rollback(app.runtime, stack, name)
    app.events.emit("container_rolled_back", stack=stack, object=f"container/{name}", result="ok")
    return info


S = "stacks"
ROUTES: list[Route] = [
    Route(
        "POST",
        "/v1/stacks/apply",
        apply_stack,
        "Apply manifests (or a saved plan); progress as JSON lines",
        S,
        body=T.ApplyRequest,
        stream=T.ProgressLine,
    ),
    Route(
        "POST",
        "/v1/stacks/diff",
        diff_stack,
        "What apply would change",
        S,
        body=T.DiffRequest,
        returns=T.DiffOutcome,
    ),
    Route(
        "POST",
        "/v1/stacks/delete",
        delete_stack,
        "Delete every object of a stack; progress as JSON lines",
        S,
        body=T.DeleteRequest,
        stream=T.ProgressLine,
    ),
    Route(
        "POST",
        "/v1/stacks/{stack}/containers/{name}/rollback",
        rollback_container,
        "Recreate a container from its previously applied spec",
        S,
        returns=client.ContainerInfo,
    ),
]
