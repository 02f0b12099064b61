"""The planner's inputs and output, as plain frozen data.

Inputs: ``DesiredState`` (what the manifests ask for, with references and file
contents already resolved by the loader) and ``ObservedState`` (what the
runtime reports now, re-read every round). Output: a ``Plan``, an ordered
tuple of ``Action``s, each with the reasons a person reads before anything
changes. The executor turns actions into runtime calls; the planner never
does I/O (STYLE: "the diff is data").
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, Literal

from schemas import manifests

Kind = Literal["Image", "Network", "Volume", "Container"]
Op = Literal["create", "update", "recreate", "delete", "start", "restart"]
Category = Literal["missing", "spec", "image", "runtime", "orphan", "external"]
ContainerStatus = Literal["created", "running", "paused", "restarting", "exited", "dead"]

KIND_ORDER: dict[str, int] = {"Image": 0, "Network": 1, "Volume": 1, "Container": 2}

# ---------------------------------------------------------------------------
# desired


@dataclasses.dataclass(frozen=True)
class DesiredImage:
    name: str
    reference: str  # normalised; what containers resolve to
    spec: manifests.ImageSpec
    source_digest: str | None = (
        None  # sha256 of the import file (tarball, or an OCI layout's index.json)
    )


@dataclasses.dataclass(frozen=True)
class DesiredContainer:
    name: str
    spec: manifests.ContainerSpec
    metadata_labels: Mapping[str, str]
    image_ref: str  # normalised reference the spec's image resolves to
    env_from: Mapping[str, str] = dataclasses.field(default_factory=dict)
    file_digests: Mapping[str, str] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class DesiredVolume:
    name: str
    spec: manifests.VolumeSpec
    metadata_labels: Mapping[str, str] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class DesiredNetwork:
    name: str
    spec: manifests.NetworkSpec
    metadata_labels: Mapping[str, str] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class DesiredState:
    stack: str
    images: Mapping[str, DesiredImage] = dataclasses.field(default_factory=dict)
    networks: Mapping[str, DesiredNetwork] = dataclasses.field(default_factory=dict)
    volumes: Mapping[str, DesiredVolume] = dataclasses.field(default_factory=dict)
    containers: Mapping[str, DesiredContainer] = dataclasses.field(default_factory=dict)
    # objects whose reconciling is paused (metadata.suspend): (kind, name)
    suspended: frozenset[tuple[str, str]] = frozenset()


# ---------------------------------------------------------------------------
# observed


@dataclasses.dataclass(frozen=True)
class ObservedImage:
    reference: str
    id: str
    digest: str
    source_digest: str | None = None  # what an Image object imported it from
    # pullPolicy Always only: the image id the registry's tag names now (observe asks it)
    remote_id: str | None = None


@dataclasses.dataclass(frozen=True)
class ObservedObject:
    """A managed network or volume of the stack."""

    kind: Kind
    name: str  # manifest name
    runtime_name: str
    spec_hash: str | None
    applied: Mapping[str, Any] | None  # the canonical applied spec, if recorded
    # what is missing on the host (drift the runtime can repair in an update): a
    # network's bridge or rules, a volume's mount
    problems: tuple[str, ...] = ()
    # volumes: the container (manifest name) an anonymous volume belongs to; None: named
    owner: str | None = None


@dataclasses.dataclass(frozen=True)
class ObservedContainer:
    name: str  # manifest name
    runtime_name: str
    id: str
    spec_hash: str | None
    applied: Mapping[str, Any] | None
    image_id: str
    status: ContainerStatus
    exit_code: int | None = None
    operator_stopped: bool = False
    restart_count: int = 0
    # the runtime config no longer matches what pyreconcile created (changed out of band)
    config_drift: bool = False
    # put back to an earlier spec by `pyreconcile rollback`: an operator override
    rolled_back: bool = False


@dataclasses.dataclass(frozen=True)
class ObservedState:
    stack: str
    images: Mapping[str, ObservedImage] = dataclasses.field(default_factory=dict)  # by reference
    networks: Mapping[str, ObservedObject] = dataclasses.field(default_factory=dict)
    volumes: Mapping[str, ObservedObject] = dataclasses.field(default_factory=dict)
    containers: Mapping[str, ObservedContainer] = dataclasses.field(default_factory=dict)
    # runtime names held by objects that pyreconcile did not create (or another stack did)
    foreign_names: frozenset[tuple[str, str]] = frozenset()  # (kind, runtime_name)


# ---------------------------------------------------------------------------
# plan


@dataclasses.dataclass(frozen=True)
class Reason:
    """Why an action is needed: the field path (or file) and what changed."""

    path: str
    detail: str

    def __str__(self) -> str:
        return f"{self.path} {self.detail}" if self.path else self.detail


@dataclasses.dataclass(frozen=True)
class Action:
    op: Op
    kind: Kind
    name: str
    category: Category
    reasons: tuple[Reason, ...]
    destructive: bool = False
    # what the executor needs: the desired object (create/update/recreate/start) or None
    desired: DesiredImage | DesiredNetwork | DesiredVolume | DesiredContainer | None = None
    spec_hash: str | None = None
    applied: Mapping[str, Any] | None = None  # the canonical spec to record after the change

    @property
    def resource(self) -> str:
        return f"{self.kind.lower()}/{self.name}"


@dataclasses.dataclass(frozen=True)
class Note:
    """Something the plan says without acting on it (an override kept, a blocked change)."""

    kind: Kind
    name: str
    message: str
    blocking: bool = False  # apply must refuse to run while this stands


@dataclasses.dataclass(frozen=True)
class PlanOptions:
    prune: bool = True  # delete managed objects of the stack that are no longer desired
    prune_volumes: bool = False  # volumes hold data: only when asked
    respect_overrides: bool = False  # True in the self-heal loop: leave operator-stopped alone


@dataclasses.dataclass(frozen=True)
class Plan:
    stack: str
    actions: tuple[Action, ...]
    notes: tuple[Note, ...] = ()

    @property
    def in_sync(self) -> bool:
        return not self.actions

    @property
    def destructive(self) -> bool:
        return any(a.destructive for a in self.actions)

    @property
    def blocked(self) -> bool:
        return any(n.blocking for n in self.notes)

    def summary(self) -> dict[str, int]:
        counts = {"create": 0, "update": 0, "recreate": 0, "delete": 0, "start": 0, "restart": 0}
        for action in self.actions:
            counts[action.op] += 1
        return counts
