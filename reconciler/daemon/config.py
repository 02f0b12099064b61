"""The daemon's configuration file (TOML, read with the stdlib's ``tomllib``).

::

    socket = "/run/pyreconcile/pyreconcile.sock"   # default: <run root>/pyreconcile.sock
    socket_group = "pyreconcile"                    # mode 0660 with this group, if it exists
    workers = 4                                     # stacks reconciled at once
    resync = "60s"                                  # look at every stack again this often (±10%)
    metrics_address = "127.0.0.1:9323"              # opt-in; loopback only; /metrics
    max_request_bytes = 8388608

    [[source]]                                      # a directory or files to keep applied
    name = "web"
    watch = ["/etc/pyreconcile/web"]
    stack = "web"                                   # default: the loader's rule
    env = { TAG = "1.2" }                           # interpolation variables (over the daemon's)
    prune = true
    allow_data_loss = false

    [[source]]                                      # a git repository to keep applied
    name = "infra"
    git = "https://git.example/infra.git"
    branch = "main"
    path = "stacks/infra"
    interval = "30s"

Relative ``watch`` paths are relative to the file. ``SIGHUP`` reads the file
again: sources added, changed and removed take effect at once (a removed
source's objects stay as they are); ``socket``, ``workers`` and the metrics
address need a restart. Unknown keys are errors (pydantic, ``extra=forbid``).
"""

from __future__ import annotations

import os
import re
import tomllib
from typing import Annotated, Any

import pydantic

from runtime import errors

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h)?$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}
MAX_BODY = 8 << 20


def parse_duration(value: Any) -> float:
    """``30``, ``"30s"``, ``"1.5m"``, ``"250ms"`` → seconds."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str) and (match := _DURATION.match(value.strip())):
        seconds = float(match[1]) * _UNITS[match[2]]
    else:
        raise ValueError(f"{value!r} is not a duration (30, 30s, 5m, 250ms)")
    if seconds <= 0:
        raise ValueError("must be more than zero")
    return seconds


Duration = Annotated[float, pydantic.BeforeValidator(parse_duration)]
_NAME = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"


class SourceConfig(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(frozen=True, extra="forbid")

    name: Annotated[str, pydantic.Field(pattern=_NAME)]
    watch: tuple[str, ...] = ()
    git: str | None = None
    branch: str = "main"
    path: str = "."
    interval: Duration = 30.0
    stack: str | None = None
    env: dict[str, str] = pydantic.Field(default_factory=dict)
    prune: bool = True
    allow_data_loss: bool = False

    @pydantic.model_validator(mode="after")
    def _one_kind(self) -> SourceConfig:
        if bool(self.watch) == bool(self.git):
            raise ValueError(f"source {self.name}: give either watch (paths) or git (a URL)")
        if self.git and (os.path.isabs(self.path) or ".." in self.path.split("/")):
            raise ValueError(f"source {self.name}: path must be inside the repository")
        return self

    @property
    def kind(self) -> str:
        return "git" if self.git else "files"

    def target(self) -> str:
        if self.git:
            return f"{self.git}#{self.branch}:{self.path}"
        return " ".join(self.watch)


class DaemonConfig(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(frozen=True, extra="forbid")

    socket: str | None = None
    socket_group: str = "pyreconcile"
    workers: Annotated[int, pydantic.Field(ge=1, le=64)] = 4
    resync: Duration = 60.0
    metrics_address: str | None = None
    max_request_bytes: Annotated[int, pydantic.Field(ge=1024)] = MAX_BODY
    source: tuple[SourceConfig, ...] = ()

    @pydantic.model_validator(mode="after")
    def _unique(self) -> DaemonConfig:
        names = [s.name for s in self.source]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"source names must be unique: {', '.join(twice)}")
        if self.metrics_address is not None:
            host, _, port = self.metrics_address.rpartition(":")
            if host not in ("127.0.0.1", "localhost", "[::1]") or not port.isdigit():
                raise ValueError(
                    "metrics_address must be a loopback address and port (127.0.0.1:9323)"
                )
        return self


def load_config(path: str | None) -> DaemonConfig:
    """The file at ``path`` (None: the defaults); InvalidSpec says what is wrong."""
    if path is None:
        return DaemonConfig()
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except OSError as exc:
        raise errors.InvalidSpec(
            f"cannot read the daemon's config {path}: {(exc.strerror or str(exc)).lower()}"
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise errors.InvalidSpec(f"{path}: not TOML: {exc}") from None
    base = os.path.dirname(os.path.abspath(path))
    for source in data.get("source", []) if isinstance(data.get("source"), list) else []:
        if isinstance(source, dict) and isinstance(source.get("watch"), list):
            source["watch"] = [
                os.path.normpath(os.path.join(base, p)) if isinstance(p, str) else p
                for p in source["watch"]
            ]
    try:
        return DaemonConfig.model_validate(data)
    except pydantic.ValidationError as exc:
        lines = []
        for error in exc.errors():
            where = ".".join(str(p) for p in error["loc"])
            lines.append(f"{path}: {where}: {error['msg']}" if where else f"{path}: {error['msg']}")
        raise errors.InvalidSpec("\n".join(lines)) from None


def with_sources(config: DaemonConfig, extra: tuple[SourceConfig, ...]) -> DaemonConfig:
    """The file's config plus the sources given on the command line."""
    return config.model_copy(update={"source": (*config.source, *extra)})
