"""The reconcile loop: keep every source's stack as its manifests say (self-heal).

controller-runtime's model. The unit of work is a *source* (a directory of
manifests, or a git repository): it yields one stack, as a Flux Kustomization
does, because the planner orders a stack's objects (images, networks and
volumes before containers, ``dependsOn``) and acting on one object alone would
lose that. Keys go through a :class:`~reconciler.daemon.workqueue.WorkQueue`
(deduplicated, one worker per key, ``workers`` keys at once); triggers add
keys: a watched file changed (debounced), a new commit was fetched, a
container exited (the shim's exit file), a container was changed through the
API, and the resync (every ``resync`` seconds ± 10%).

A round is level-triggered and starts from nothing: load the source (the last
good revision stays in force when the new one does not load; the problems are
reported once), take the stack's lock (busy: try again in a second), observe,
plan with ``respect_overrides`` (an operator's stop, a rollback and
``metadata.suspend`` are left alone), hold back self-heal starts of
containers that keep dying (:mod:`~reconciler.daemon.flap`), execute, and
look again at once until the plan is empty. Errors: a terminal one (invalid
manifests, a change that would lose data, a blocked plan) is reported in the
status and not retried until something changes; any other one is retried with
jittered exponential backoff.
"""

from __future__ import annotations

import dataclasses
import random
import threading
import time
import uuid
from collections.abc import Callable
from typing import Literal

import structlog
import structlog.contextvars

from reconciler.daemon import api_types, events, flap, metrics, sources, stacklock, workqueue
from reconciler.plan import model
from runtime import client, errors

log = structlog.get_logger(__name__)

BUSY_RETRY = 1.0
STOP_GRACE = 10.0


@dataclasses.dataclass
class SourceState:
    source: sources.Source
    desired: model.DesiredState | None = None
    revision: str | None = None  # the revision in force (the last that loaded)
    applied: str | None = None  # the revision the host was last in sync with
    applied_at: float | None = None
    last_error: str | None = None
    load_error: str | None = None  # the source does not load now (the last good is in force)
    reported: str | None = None  # the last round error reported (each is reported once)
    reported_load: str | None = None  # the last load error reported
    rounds: int = 0
    conditions: dict[str, api_types.Condition] = dataclasses.field(default_factory=dict)
    last_actions: frozenset[tuple[str, str, str]] | None = None

    def condition(self, kind: str, ok: bool, reason: str, message: str, now: float) -> None:
        status: Literal["True", "False"] = "True" if ok else "False"
        old = self.conditions.get(kind)
        since = old.last_transition if old is not None and old.status == status else now
        self.conditions[kind] = api_types.Condition(kind, status, reason, message, since)


def is_terminal(exc: BaseException) -> bool:
    return isinstance(
        exc, (errors.Terminal, errors.InvalidSpec, errors.FailedPrecondition)
    ) and not getattr(exc, "retryable", False)


class Controller:
    def __init__(
        self,
        runtime: client.RuntimeClient,
        run_root: str,
        event_log: events.EventLog,
        registry: metrics.Metrics,
        *,
        workers: int = 4,
        resync: float = 60.0,
        flaps: flap.FlapTracker | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        rand: Callable[[], float] = random.random,
        on_loaded: Callable[[str, sources.Revision | None], None] = lambda key, rev: None,
    ) -> None:
        self.runtime = runtime
        self.run_root = run_root
        self.events = event_log
        self.metrics = registry
        self.workers = workers
        self.resync = resync
        self.flaps = flaps or flap.FlapTracker()
        self.clock = clock
        self.wall = wall
        self.rand = rand
        self.on_loaded = on_loaded
        self.queue = workqueue.WorkQueue(clock)
        self.backoff = workqueue.Backoff(rand=rand)
        self._states: dict[str, SourceState] = {}
        self._lock = threading.RLock()
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()

    # -- sources ---------------------------------------------------------------------

    def set_sources(self, wanted: list[sources.Source]) -> None:
        """Add, replace and remove sources (SIGHUP); each new or changed one is looked at now."""
        with self._lock:
            by_name = {s.name: s for s in wanted}
            for name in sorted(set(self._states) - set(by_name)):
                self._states.pop(name).source.close()
                self.queue.forget_pending(name)
                self.on_loaded(name, None)
                self.events.emit(
                    "source_removed", source=name, message="its objects are left as they are"
                )
            for name, source in by_name.items():
                state = self._states.get(name)
                if state is not None and state.source.config == source.config:
                    continue
                if state is not None:
                    state.source.close()
                    state.source = source
                    state.last_actions = None
                    self.events.emit("source_changed", source=name, message=source.config.target())
                else:
                    self._states[name] = SourceState(source)
                    self.events.emit("source_added", source=name, message=source.config.target())
                self.trigger(name, "config")

    def sources(self) -> list[sources.Source]:
        with self._lock:
            return [s.source for s in self._states.values()]

    def key_of_stack(self, stack: str) -> str | None:
        with self._lock:
            for key, state in self._states.items():
                if state.desired is not None and state.desired.stack == stack:
                    return key
        return None

    # -- triggers --------------------------------------------------------------------

    def trigger(self, key: str, why: str) -> None:
        with self.metrics.lock:
            self.metrics.triggers.inc(trigger=why)
        self.queue.add(key)

    def on_file_change(self, key: str) -> None:
        self.trigger(key, "file")

    def on_exit(self, container_id: str, record: dict[str, object]) -> None:
        try:
            info = self.runtime.get_container(container_id)
        except errors.RuntimeError_:
            return  # removed meanwhile
        stack = info.labels.get("io.pyreconcile.stack")
        name = info.labels.get("io.pyreconcile.name") or info.name
        code = record.get("exit_code")
        self.events.emit(
            "container_exited",
            stack=stack,
            object=f"container/{name}",
            message=f"exit code {code}" + (" (oom killed)" if record.get("oom_killed") else ""),
        )
        key = self.key_of_stack(stack) if stack else None
        if key is not None:
            self.trigger(key, "exit")

    def on_api_write(self, runtime_name: str) -> None:
        stack, sep, _ = runtime_name.partition("_")
        key = self.key_of_stack(stack) if sep else None
        if key is not None:
            self.trigger(key, "api")

    # -- workers ---------------------------------------------------------------------

    def start(self) -> None:
        for i in range(self.workers):
            thread = threading.Thread(target=self._work, name=f"reconcile-{i}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self, grace: float = STOP_GRACE) -> None:
        """Stop taking keys; wait up to ``grace`` for rounds in flight. Containers keep running."""
        self._stop.set()
        self.queue.shut_down()
        deadline = time.monotonic() + grace
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        with self._lock:
            for state in self._states.values():
                state.source.close()

    def _work(self) -> None:
        while True:
            key = self.queue.get()
            if key is None:
                return
            try:
                self._process(key)
            finally:
                self.queue.done(key)
                with self.metrics.lock:
                    self.metrics.queue_depth.set(self.queue.depth())

    def _process(self, key: str) -> None:
        started = self.clock()
        with structlog.contextvars.bound_contextvars(sync_id=uuid.uuid4().hex[:8], source=key):
            result = "success"
            try:
                again = self.reconcile(key)
                self.backoff.forget(key)
                if again is not None and not self._stop.is_set():
                    self.queue.add_after(key, again)
            except Exception as exc:
                category = type(exc).__name__
                for cls in type(exc).__mro__:
                    if cls.__module__ == errors.__name__ and cls is not errors.RuntimeError_:
                        category = cls.__name__
                self._failed(key, exc)
                if is_terminal(exc):
                    result = "terminal"
                else:
                    result = "retry"
                    delay = self.backoff.when(key)
                    with self.metrics.lock:
                        self.metrics.retries.inc()
                    log.warning("reconcile_retrying", delay=round(delay, 2), error=str(exc))
                    self.queue.add_after(key, delay)
                with self.metrics.lock:
                    self.metrics.errors.inc(source=key, category=category)
            finally:
                seconds = self.clock() - started
                with self.metrics.lock:
                    self.metrics.rounds.inc(source=key, result=result)
                    self.metrics.duration.observe(seconds, source=key)

    def _failed(self, key: str, exc: Exception) -> None:
        with self._lock:
            state = self._states.get(key)
        message = str(exc) if isinstance(exc, errors.RuntimeError_) else f"internal error: {exc!r}"
        if not isinstance(exc, errors.RuntimeError_):
            log.error("reconcile_crashed", exc_info=exc)
        if state is None:
            return
        state.last_error = message
        now = self.wall()
        state.condition("Ready", False, "ReconcileFailed", message, now)
        state.condition(
            "Stalled",
            is_terminal(exc),
            "Terminal" if is_terminal(exc) else "Retrying",
            message,
            now,
        )
        if state.reported != message:
            state.reported = message
            self.events.emit(
                "reconcile_failed",
                source=key,
                stack=state.desired.stack if state.desired else None,
                message=message,
                result="error",
            )

    # -- a round -----------------------------------------------------------------------

    def reconcile(self, key: str) -> float | None:
        """One round for ``key``; seconds until the next (None: only when triggered)."""
        with self._lock:
            state = self._states.get(key)
        if state is None:
            return None  # removed meanwhile
        state.rounds += 1
        self._load(key, state)
        desired = state.desired
        if desired is None:
            return None
        owner = self.key_of_stack(desired.stack)
        if owner is not None and owner != key:
            raise errors.FailedPrecondition(
                f"stack {desired.stack} is kept by source {owner} already; give source {key} "
                "another stack (stack = …)"
            )
        with stacklock.stack_lock(self.run_root, desired.stack, blocking=False) as held:
            if not held:
                return BUSY_RETRY
            return self._converge(key, state, desired)

    def _load(self, key: str, state: SourceState) -> None:
        try:
            revision = state.source.load()
        except errors.RuntimeError_ as exc:
            message = str(exc)
            state.last_error = state.load_error = message
            now = self.wall()
            state.condition("SourceValid", False, "LoadFailed", message, now)
            if state.reported_load != message:
                state.reported_load = message
                with self.metrics.lock:
                    self.metrics.source_errors.inc(source=key)
                kept = (
                    f"; revision {_short(state.revision)} stays in force" if state.desired else ""
                )
                self.events.emit(
                    "source_invalid",
                    source=key,
                    stack=state.desired.stack if state.desired else None,
                    message=message + kept,
                    result="error",
                )
            if state.desired is None:
                self.on_loaded(key, None)
                if getattr(exc, "retryable", False):
                    raise
            return
        state.condition("SourceValid", True, "Loaded", "", self.wall())
        if state.revision != revision.revision:
            self.events.emit(
                "revision_loaded",
                source=key,
                stack=revision.desired.stack,
                revision=revision.revision,
                message="; ".join(revision.warnings),
            )
        if state.load_error is not None:
            self.events.emit("source_valid", source=key, stack=revision.desired.stack, result="ok")
        state.desired = revision.desired
        state.revision = revision.revision
        state.load_error = state.reported_load = None
        state.last_error = None
        self.on_loaded(key, revision)

    def _converge(self, key: str, state: SourceState, desired: model.DesiredState) -> float | None:
        from reconciler import engine, execute

        config = state.source.config
        options = model.PlanOptions(prune=config.prune, respect_overrides=True)
        observed, plan = engine.observe_and_plan(self.runtime, desired, options)
        now = self.clock()
        self._observe_metrics(desired.stack, observed, plan)
        self._note_running(desired.stack, observed, now)
        plan, wake = self._hold_flapping(desired.stack, plan, now)
        if plan.actions:
            execute_options = execute.ExecuteOptions(allow_data_loss=config.allow_data_loss)
            execute.check_allowed(plan, execute_options)
            signature = frozenset(
                (a.op, a.kind, a.name) for a in plan.actions if not _self_heal_start(a)
            )
            if signature and signature == state.last_actions:
                state.last_actions = None
                raise errors.Transient(
                    "did not converge: still needed after being done: "
                    + "; ".join(
                        f"{a.op} {a.resource}" for a in plan.actions if not _self_heal_start(a)
                    )
                )
            state.last_actions = None  # set again only once the actions were carried out
            executor = execute.Executor(
                self.runtime, desired, execute_options, self._on_action(key, desired.stack)
            )
            executor.run(plan)
            state.last_actions = signature
            for action in plan.actions:
                if _self_heal_start(action):
                    self._started(desired.stack, action.name, self.clock())
            return 0.0  # look again now: verify, or finish what depends on this
        state.last_actions = None
        wall = self.wall()
        if state.applied != state.revision:
            state.applied = state.revision
            state.applied_at = wall
            self.events.emit(
                "revision_applied",
                source=key,
                stack=desired.stack,
                revision=state.revision,
                result="ok",
            )
        held = [n for n in plan.notes if n.message.startswith(HELD)]
        if held:
            state.condition(
                "Ready", False, "Flapping", "; ".join(f"{n.name}: {n.message}" for n in held), wall
            )
        else:
            state.condition(
                "Ready", True, "InSync", f"revision {_short(state.revision)} applied", wall
            )
        state.condition("Stalled", False, "InSync", "", wall)
        state.last_error = state.load_error
        state.reported = None
        resync = self.resync * (0.9 + 0.2 * self.rand())
        return resync if wake is None else min(resync, max(0.05, wake - now))

    def _on_action(self, key: str, stack: str) -> Callable[[str, model.Action, str], None]:
        def on_event(event: str, action: model.Action, detail: str) -> None:
            if event == "action_done":
                with self.metrics.lock:
                    self.metrics.changes.inc(stack=stack, op=action.op, category=action.category)
                self.events.emit(
                    "change_applied",
                    source=key,
                    stack=stack,
                    object=action.resource,
                    message=f"{action.op} ({action.category}): "
                    + "; ".join(str(r) for r in action.reasons),
                    result="ok",
                )
            elif event == "action_failed":
                self.events.emit(
                    "change_failed",
                    source=key,
                    stack=stack,
                    object=action.resource,
                    message=detail,
                    result="error",
                )

        return on_event

    # -- flapping --------------------------------------------------------------------

    def _hold_flapping(
        self, stack: str, plan: model.Plan, now: float
    ) -> tuple[model.Plan, float | None]:
        kept: list[model.Action] = []
        notes = list(plan.notes)
        wake: float | None = None
        for action in plan.actions:
            until = (
                self.flaps.held_until(f"{stack}/{action.name}", now)
                if _self_heal_start(action)
                else None
            )
            if until is None:
                kept.append(action)
                continue
            wake = until if wake is None else min(wake, until)
            notes.append(
                model.Note("Container", action.name, f"{HELD}; next start in {until - now:.0f}s")
            )
        if len(kept) == len(plan.actions):
            return plan, None
        return model.Plan(plan.stack, tuple(kept), tuple(notes)), wake

    def _started(self, stack: str, name: str, now: float) -> None:
        key = f"{stack}/{name}"
        if self.flaps.started(key, now) == "flapping":
            until = self.flaps.held_until(key, now) or now
            self.events.emit(
                "container_flapping",
                stack=stack,
                object=f"container/{name}",
                message=f"restarted {self.flaps.threshold} times in {self.flaps.window:.0f}s; "
                f"self-heal waits {until - now:.0f}s before the next start, longer each time",
                result="held",
            )
        self._flap_metric(stack)

    def _note_running(self, stack: str, observed: model.ObservedState, now: float) -> None:
        for name, seen in observed.containers.items():
            if (
                seen.status == "running"
                and self.flaps.running(f"{stack}/{name}", now) == "recovered"
            ):
                self.events.emit(
                    "container_recovered", stack=stack, object=f"container/{name}", result="ok"
                )
                self._flap_metric(stack)

    def _flap_metric(self, stack: str) -> None:
        count = sum(1 for k in self.flaps.flapping() if k.startswith(f"{stack}/"))
        with self.metrics.lock:
            self.metrics.flapping.set(count, stack=stack)

    def _observe_metrics(self, stack: str, observed: model.ObservedState, plan: model.Plan) -> None:
        objects: dict[tuple[tuple[str, str], ...], float] = {}

        def count(kind: str, state: str) -> None:
            labels = (("kind", kind), ("stack", stack), ("state", state))
            objects[labels] = objects.get(labels, 0) + 1

        for c in observed.containers.values():
            count("Container", c.status)
        for n in observed.networks.values():
            count("Network", "degraded" if n.problems else "present")
        for v in observed.volumes.values():
            count("Volume", "degraded" if v.problems else "present")
        drift: dict[tuple[tuple[str, str], ...], float] = {}
        for category in ("missing", "spec", "image", "runtime", "orphan", "external"):
            drift[(("category", category), ("stack", stack))] = float(
                sum(1 for a in plan.actions if a.category == category)
            )
        with self.metrics.lock:
            self.metrics.objects.replace({"stack": stack}, objects)
            self.metrics.drift.replace({"stack": stack}, drift)

    # -- status ----------------------------------------------------------------------

    def statuses(self) -> list[api_types.SourceStatus]:
        with self._lock:
            states = list(self._states.items())
        return [self._status(key, state) for key, state in sorted(states)]

    def status_of(self, key: str) -> api_types.SourceStatus | None:
        with self._lock:
            state = self._states.get(key)
        return None if state is None else self._status(key, state)

    def desired_of(self, key: str) -> model.DesiredState | None:
        with self._lock:
            state = self._states.get(key)
        return None if state is None else state.desired

    def _status(self, key: str, state: SourceState) -> api_types.SourceStatus:
        config = state.source.config
        return api_types.SourceStatus(
            name=key,
            kind="git" if config.git else "files",
            stack=state.desired.stack if state.desired else None,
            target=config.target(),
            revision=state.applied,
            applied_at=state.applied_at,
            last_error=state.last_error,
            rounds=state.rounds,
            conditions=tuple(state.conditions[k] for k in sorted(state.conditions)),
        )


HELD = "crash-looping: self-heal holds back its start"


def _self_heal_start(action: model.Action) -> bool:
    return action.kind == "Container" and action.op == "start" and action.category == "runtime"


def _short(revision: str | None) -> str:
    if revision is None:
        return "(none)"
    return revision.split(":")[-1][:12]
