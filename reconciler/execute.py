"""Carry out a Plan's actions through the runtime client. Dumb and idempotent.

Every effect tolerates having happened already: a create that meets
AlreadyExists checks the recorded spec hash and carries on when it matches; a
delete that meets NotFound is done. The first failure stops the run; the
next round re-observes and re-plans, so nothing depends on where it stopped.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping

from reconciler import convert, schedule, update
from reconciler import labels as L
from reconciler.plan import model, runtime_name_for
from runtime import client, errors

Event = Callable[[str, model.Action, str], None]
"""on_event(event, action, detail): ``action_started``, ``action_done``, ``action_failed``."""


@dataclasses.dataclass(frozen=True)
class ExecuteOptions:
    allow_data_loss: bool = False
    dependency_timeout: float = 120.0  # how long to wait for a dependsOn condition
    poll_interval: float = 0.05
    parallelism: int = 8  # objects acted on at once within a phase
    settle_seconds: float = 1.0  # start-first without a health check: stay up this long
    health_gate_max: float = 600.0  # the longest an update waits for health


class Refused(errors.FailedPrecondition):
    """The plan holds a change that needs an explicit flag, or is blocked."""


def check_allowed(plan: model.Plan, options: ExecuteOptions) -> None:
    """Refuse the whole plan, before any change, when it is blocked or loses data."""
    blocking = [n for n in plan.notes if n.blocking]
    if blocking:
        raise Refused("; ".join(f"{n.kind.lower()}/{n.name}: {n.message}" for n in blocking))
    # deleting an orphan volume is in the plan only with --prune-volumes: asked for
    # already; recreating one (its options changed) needs --allow-data-loss
    destructive = [
        a for a in plan.actions if a.destructive and not (a.kind == "Volume" and a.op == "delete")
    ]
    if destructive and not options.allow_data_loss:
        names = ", ".join(f"{a.op} {a.resource}" for a in destructive)
        raise Refused(
            f"refusing to lose data: {names}; review the plan with `pyreconcile diff` "
            "and pass --allow-data-loss to go ahead"
        )


class Executor:
    def __init__(
        self,
        runtime: client.RuntimeClient,
        desired: model.DesiredState,
        options: ExecuteOptions | None = None,
        on_event: Event | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.runtime = runtime
        self.desired = desired
        self.options = options or ExecuteOptions()
        self.on_event = on_event or (lambda *_: None)
        self.sleep = sleep
        self.clock = clock

    @property
    def stack(self) -> str:
        return self.desired.stack

    def run(self, plan: model.Plan) -> None:
        check_allowed(plan, self.options)
        for phase in schedule.phases(plan.actions):
            schedule.run_phase(phase, self._do, self.options.parallelism)

    def _do(self, action: model.Action) -> None:
        self.on_event("action_started", action, "")
        try:
            self.apply(action)
        except errors.RuntimeError_ as exc:
            self.on_event("action_failed", action, str(exc))
            raise
        self.on_event("action_done", action, "")

    def apply(self, action: model.Action) -> None:
        handler = _HANDLERS[(action.kind, action.op)]
        handler(self, action)

    # -- images --------------------------------------------------------------

    def _ensure_image(self, action: model.Action) -> None:
        image = action.desired
        assert isinstance(image, model.DesiredImage)
        if image.spec.import_ is not None:
            annotations = {L.IMAGE_SOURCE: image.source_digest} if image.source_digest else {}
            self.runtime.import_image(image.spec.import_.path, image.reference, annotations)
        elif image.spec.pull_policy == "Never":
            raise errors.NotFound(
                f"image {image.reference} is not present and its pullPolicy is Never; "
                "import it with `pyreconcile image import` or pull it with `pyreconcile image pull`"
            )
        else:
            self.runtime.pull_image(image.reference, platform=image.spec.platform)

    # -- networks and volumes ------------------------------------------------

    def _create_network(self, action: model.Action) -> None:
        want = action.desired
        assert isinstance(want, model.DesiredNetwork)
        config = convert.network_config(self.stack, want)
        try:
            self.runtime.create_network(config)
        except errors.AlreadyExists:
            self._check_same_hash(config.labels, self._network_labels(config.name), config.name)

    def _network_labels(self, name: str) -> tuple[tuple[str, str], ...]:
        for net in self.runtime.list_networks():
            if net.name == name:
                return net.labels
        raise errors.NotFound(f"network {name!r} not found")

    def _recreate_network(self, action: model.Action) -> None:
        name = runtime_name_for(self.stack, action.name)
        self._remove_users(lambda c: any(a.network == name for a in c.config.networks))
        self._delete_network(action)
        self._create_network(action)

    def _update_network(self, action: model.Action) -> None:
        want = action.desired
        assert isinstance(want, model.DesiredNetwork)
        config = convert.network_config(self.stack, want)
        self.runtime.update_network(config.name, config.labels, config.annotations)

    def _delete_network(self, action: model.Action) -> None:
        try:
            self.runtime.remove_network(runtime_name_for(self.stack, action.name))
        except errors.NotFound:
            pass

    def _create_volume(self, action: model.Action) -> None:
        want = action.desired
        assert isinstance(want, model.DesiredVolume)
        config = convert.volume_config(self.stack, want)
        try:
            self.runtime.create_volume(config)
        except errors.AlreadyExists:
            existing = {v.name: v.labels for v in self.runtime.list_volumes()}
            self._check_same_hash(config.labels, existing.get(config.name, ()), config.name)

    def _recreate_volume(self, action: model.Action) -> None:
        name = runtime_name_for(self.stack, action.name)
        self._remove_users(
            lambda c: any(m.type == "volume" and m.source == name for m in c.config.mounts)
        )
        self._delete_volume(action)
        self._create_volume(action)

    def _update_volume(self, action: model.Action) -> None:
        want = action.desired
        assert isinstance(want, model.DesiredVolume)
        config = convert.volume_config(self.stack, want)
        self.runtime.update_volume(config.name, config.labels, config.annotations)

    def _delete_volume(self, action: model.Action) -> None:
        try:
            self.runtime.remove_volume(runtime_name_for(self.stack, action.name))
        except errors.NotFound:
            pass

    def _remove_users(self, uses: Callable[[client.ContainerInfo], bool]) -> None:
        """Containers of this stack that use an object about to be recreated go first;
        the plan recreates them after it."""
        for info in self.runtime.list_containers():
            if L.is_managed_by(info.labels, self.stack, "Container") and uses(info):
                self.stop_and_remove(info.name, info.config.stop_grace_period)

    @staticmethod
    def _check_same_hash(
        wanted: tuple[tuple[str, str], ...], found: tuple[tuple[str, str], ...], name: str
    ) -> None:
        if dict(wanted).get(L.SPEC_HASH) != dict(found).get(L.SPEC_HASH):
            raise errors.AlreadyExists(
                f"{name!r} exists with a different spec; the next round will recreate it"
            )

    # -- containers ----------------------------------------------------------

    def _container_config(self, want: model.DesiredContainer) -> client.ContainerConfig:
        image = self.runtime.get_image(want.image_ref)
        return convert.container_config(self.stack, want, image.id, self.desired.networks)

    def create_container(
        self, action: model.Action, annotations: dict[str, str] | None = None
    ) -> None:
        want = action.desired
        assert isinstance(want, model.DesiredContainer)
        image = self.runtime.get_image(want.image_ref)
        config = convert.container_config(
            self.stack, want, image.id, self.desired.networks, annotations
        )
        self.wait_for_dependencies(want)
        try:
            self.runtime.create_container(config)
        except errors.AlreadyExists:
            existing = self.runtime.get_container(config.name)
            self._check_same_hash(config.labels, existing.config.labels, config.name)
        self.runtime.start_container(config.name)

    def _recreate_container(self, action: model.Action) -> None:
        update.recreate(self, action)

    def _update_container(self, action: model.Action) -> None:
        want = action.desired
        assert isinstance(want, model.DesiredContainer)
        image = self.runtime.get_image(want.image_ref)
        current = self.runtime.get_container(runtime_name_for(self.stack, want.name))
        kept = (
            {L.HISTORY: current.annotations[L.HISTORY]} if L.HISTORY in current.annotations else {}
        )
        update = convert.container_update(self.stack, want, image.id, self.desired.networks, kept)
        self.runtime.update_container(runtime_name_for(self.stack, want.name), update)
        self._sync_networks(current, want, image.id)

    def _sync_networks(
        self, current: client.ContainerInfo, want: model.DesiredContainer, image_id: str
    ) -> None:
        """Connect and disconnect a container so that its networks are the desired
        ones (the planner made sure this needs no new container)."""
        wanted = convert.container_config(self.stack, want, image_id, self.desired.networks)
        have = {a.network for a in current.config.networks}
        names = {a.network for a in wanted.networks}
        for attachment in wanted.networks:  # joins first: the namespace keeps a network
            if attachment.network in have:
                continue
            self.runtime.connect_network(
                attachment.network,
                current.name,
                aliases=attachment.aliases,
                ipv4_address=attachment.ipv4_address,
            )
        for attachment in current.config.networks:
            if attachment.network not in names:
                self.runtime.disconnect_network(attachment.network, current.name)

    def _start_container(self, action: model.Action) -> None:
        want = action.desired
        assert isinstance(want, model.DesiredContainer)
        self.wait_for_dependencies(want)
        self.runtime.start_container(runtime_name_for(self.stack, want.name))

    def _restart_container(self, action: model.Action) -> None:
        want = action.desired
        assert isinstance(want, model.DesiredContainer)
        name = runtime_name_for(self.stack, want.name)
        self.runtime.stop_container(name, want.spec.stop_grace_period)
        self.wait_for_dependencies(want)
        self.runtime.start_container(name)

    def _delete_container(self, action: model.Action) -> None:
        try:
            info = self.runtime.get_container(runtime_name_for(self.stack, action.name))
        except errors.NotFound:
            return
        self.stop_and_remove(info.name, info.config.stop_grace_period)

    def stop_and_remove(self, name: str, grace: float | None) -> None:
        try:
            self.runtime.stop_container(name, grace)
            self.runtime.remove_container(name, force=True)
        except errors.NotFound:
            pass

    def wait_for_dependencies(self, want: model.DesiredContainer) -> None:
        for dep in want.spec.depends_on:
            self._wait_for(want.name, dep.name, dep.condition)

    def _wait_for(self, who: str, dep: str, condition: str) -> None:
        name = runtime_name_for(self.stack, dep)
        deadline = self.clock() + self.options.dependency_timeout
        while True:
            try:
                info = self.runtime.get_container(name)
            except errors.NotFound:
                info = None
            if info is not None and _condition_met(info, condition):
                return
            if info is not None and condition == "completed" and info.status in ("exited", "dead"):
                raise errors.FailedPrecondition(
                    f"container {who!r} waits for {dep!r} to complete, "
                    f"but it exited with code {info.exit_code}"
                )
            if self.clock() >= deadline:
                state = info.status if info else "absent"
                raise errors.Transient(
                    f"container {who!r} waited {self.options.dependency_timeout:.0f}s for "
                    f"{dep!r} to be {condition}; it is {state}"
                )
            self.sleep(self.options.poll_interval)


def _condition_met(info: client.ContainerInfo, condition: str) -> bool:
    if condition == "completed":
        return info.status == "exited" and info.exit_code == 0
    if condition == "healthy" and _has_check(info):
        return (
            info.status == "running"
            and info.health is not None
            and (info.health.status == "healthy")
        )
    # started (or healthy without a check, as Compose treats it)
    return info.status in ("running", "restarting") or (
        info.status == "exited" and info.exit_code == 0
    )


def _has_check(info: client.ContainerInfo) -> bool:
    check = info.config.healthcheck
    return check is not None and bool(check.test) and check.test[0] != "NONE"


_HANDLERS: Mapping[tuple[str, str], Callable[[Executor, model.Action], None]] = {
    ("Image", "create"): Executor._ensure_image,
    ("Image", "update"): Executor._ensure_image,
    ("Network", "create"): Executor._create_network,
    ("Network", "recreate"): Executor._recreate_network,
    ("Network", "update"): Executor._update_network,
    ("Network", "delete"): Executor._delete_network,
    ("Volume", "create"): Executor._create_volume,
    ("Volume", "recreate"): Executor._recreate_volume,
    ("Volume", "update"): Executor._update_volume,
    ("Volume", "delete"): Executor._delete_volume,
    ("Container", "create"): Executor.create_container,
    ("Container", "recreate"): Executor._recreate_container,
    ("Container", "update"): Executor._update_container,
    ("Container", "start"): Executor._start_container,
    ("Container", "restart"): Executor._restart_container,
    ("Container", "delete"): Executor._delete_container,
}
