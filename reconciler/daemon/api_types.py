"""The daemon's own request and answer types (the runtime's are ``runtime.client``'s).

Frozen dataclasses, carried by :mod:`reconciler.daemon.codec` (camelCase on the
wire, strict on the way in) and described in the OpenAPI document from the
same definitions. A stack request carries what an in-process CLI would have:
the paths as typed, the caller's working directory (relative paths and the
``.env`` of ``-f -`` mean the same as in-process), the manifest text read from
stdin, and the environment the manifests interpolate.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

from runtime import client

Pairs = tuple[tuple[str, str], ...]

Category = Literal[
    "NotFound",
    "AlreadyExists",
    "InvalidSpec",
    "FailedPrecondition",
    "Unavailable",
    "Transient",
    "Terminal",
]


@dataclasses.dataclass(frozen=True)
class ErrorBody:
    """Every error answer: ``message`` for people; ``category`` to branch on."""

    message: str
    category: Category = "Terminal"
    #: a load error's problems, one ``file:line:column: path: message`` each
    problems: tuple[str, ...] = ()
    #: load_failed | wait_timed_out | wait_failed | bad_request | too_large | …
    reason: str = ""


@dataclasses.dataclass(frozen=True)
class StackInputs:
    files: tuple[str, ...] = ()
    cwd: str = "/"
    stdin: str | None = None  # the text of ``-f -``
    environ: Pairs = ()
    stack: str | None = None


@dataclasses.dataclass(frozen=True)
class ApplyRequest(StackInputs):
    prune: bool = True
    prune_volumes: bool = False
    allow_data_loss: bool = False
    plan: dict[str, Any] | None = None  # a saved plan (``diff --out``), applied exactly
    plan_path: str = ""  # where the saved plan was read from (for messages)
    wait: bool = False
    timeout: float = 300.0


@dataclasses.dataclass(frozen=True)
class DiffRequest(StackInputs):
    prune: bool = True
    prune_volumes: bool = False
    output: Literal["text", "json"] = "text"
    colour: bool = False
    save: bool = False  # also return the saved-plan document (``diff --out``)


@dataclasses.dataclass(frozen=True)
class DeleteRequest(StackInputs):
    volumes: bool = False


@dataclasses.dataclass(frozen=True)
class NoteView:
    kind: str
    name: str
    message: str
    blocking: bool = False


@dataclasses.dataclass(frozen=True)
class ApplyOutcome:
    stack: str
    executed: int
    rounds: int
    notes: tuple[NoteView, ...] = ()
    up: bool = False  # ``wait`` was asked and the stack is up


@dataclasses.dataclass(frozen=True)
class DeleteOutcome:
    stack: str
    deleted: int
    notes: tuple[NoteView, ...] = ()


@dataclasses.dataclass(frozen=True)
class DiffOutcome:
    stack: str
    rendered: str  # the text or JSON that ``diff`` prints
    in_sync: bool
    blocked: bool
    destructive: bool
    saved: dict[str, Any] | None = None  # the saved plan, when asked


@dataclasses.dataclass(frozen=True)
class ProgressLine:
    """One line of a streamed apply or delete (``application/x-ndjson``)."""

    event: Literal["notice", "action_started", "action_done", "action_failed", "result", "error"]
    message: str = ""
    op: str | None = None
    resource: str | None = None
    apply: ApplyOutcome | None = None
    delete: DeleteOutcome | None = None
    error: ErrorBody | None = None


# --- runtime operations ------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class StopRequest:
    timeout: float | None = None
    operator: bool = False


@dataclasses.dataclass(frozen=True)
class TimeoutRequest:
    timeout: float | None = None


@dataclasses.dataclass(frozen=True)
class KillRequest:
    signal: str = "SIGKILL"


@dataclasses.dataclass(frozen=True)
class RenameRequest:
    new_name: str


@dataclasses.dataclass(frozen=True)
class ImportRequest:
    path: str
    reference: str | None = None
    annotations: Pairs = ()


@dataclasses.dataclass(frozen=True)
class PullRequest:
    reference: str
    platform: str | None = None


@dataclasses.dataclass(frozen=True)
class PushRequest:
    ref: str
    destination: str | None = None


@dataclasses.dataclass(frozen=True)
class ImageProgressLine:
    """One line of a streamed pull or push."""

    event: Literal["progress", "result", "error"]
    progress: client.ProgressEvent | None = None
    image: client.ImageInfo | None = None  # pull's result
    digest: str | None = None  # push's result
    error: ErrorBody | None = None


@dataclasses.dataclass(frozen=True)
class TagRequest:
    source: str
    target: str


@dataclasses.dataclass(frozen=True)
class ResolveRequest:
    reference: str
    platform: str | None = None


@dataclasses.dataclass(frozen=True)
class PruneRequest:
    all_unused: bool = False


@dataclasses.dataclass(frozen=True)
class SaveRequest:
    refs: tuple[str, ...]
    path: str
    format: client.ArchiveFormat = "docker-archive"


@dataclasses.dataclass(frozen=True)
class PathRequest:
    path: str


@dataclasses.dataclass(frozen=True)
class LoginRequest:
    registry: str
    username: str
    password: str


@dataclasses.dataclass(frozen=True)
class RegistryRequest:
    registry: str


@dataclasses.dataclass(frozen=True)
class Removed:
    removed: bool


@dataclasses.dataclass(frozen=True)
class MetadataUpdate:
    labels: Pairs = ()
    annotations: Pairs = ()


@dataclasses.dataclass(frozen=True)
class ConnectRequest:
    container: str
    aliases: tuple[str, ...] = ()
    ipv4_address: str | None = None


@dataclasses.dataclass(frozen=True)
class DisconnectRequest:
    container: str


@dataclasses.dataclass(frozen=True)
class ExecStarted:
    """The first line after an exec's upgrade (the pty's master follows as an fd)."""

    exec_id: str
    pid: int
    tty: bool


@dataclasses.dataclass(frozen=True)
class ExecControl:
    """A line from the client on an exec's connection."""

    op: Literal["wait", "resize"]
    timeout: float | None = None
    rows: int = 0
    cols: int = 0


@dataclasses.dataclass(frozen=True)
class ExecReply:
    exit_code: int | None = None
    error: ErrorBody | None = None


# --- the daemon ---------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Condition:
    """Kubernetes-style: ``type`` is Ready, SourceValid, Stalled or Flapping."""

    type: str
    status: Literal["True", "False", "Unknown"]
    reason: str
    message: str
    last_transition: float


@dataclasses.dataclass(frozen=True)
class SourceStatus:
    name: str
    kind: Literal["files", "git"]
    stack: str | None  # known once a revision has loaded
    target: str  # the paths, or url#branch:path
    revision: str | None  # the applied commit, or the fingerprint of the files' state
    applied_at: float | None
    last_error: str | None
    rounds: int
    conditions: tuple[Condition, ...] = ()


@dataclasses.dataclass(frozen=True)
class ObjectStatus:
    kind: str
    name: str
    runtime_name: str | None
    spec_hash: str | None
    state: str  # running, exited (N), created, present, missing…
    health: str | None = None
    drift: str | None = None  # the pending change's category, None when in sync
    reasons: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class StackStatus:
    stack: str
    source: SourceStatus | None
    objects: tuple[ObjectStatus, ...]
    notes: tuple[NoteView, ...] = ()


@dataclasses.dataclass(frozen=True)
class Event:
    """One line of ``GET /v1/events``: what changed, why, and the result."""

    time: float
    type: str  # snake_case past tense: change_applied, source_invalid, container_exited…
    source: str | None = None
    stack: str | None = None
    object: str | None = None  # kind/name
    message: str = ""
    result: str | None = None  # ok | error | held
    revision: str | None = None
    seq: int = 0


@dataclasses.dataclass(frozen=True)
class VersionInfo:
    version: str
    api_version: str
    pid: int
    root: str
    run_root: str
