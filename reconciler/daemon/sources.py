"""Where the loop's desired state comes from: files on this host, or a git repository.

A source loads *revisions*: the desired state, a revision id (the commit of a
git source; for files, the fingerprint of exactly what the planner reads,
``reconciler.plan.fingerprint.desired``), and the paths whose change should
make the loop look again. Loading is the loader's (``reconciler.load``), the
same as ``pyreconcile apply``'s; interpolation variables are the daemon's
environment with the source's ``env`` over it. A load that fails raises
``LoadError`` (an ``InvalidSpec``): the controller keeps the last good
revision in force and reports the problems.
"""

from __future__ import annotations

import dataclasses
import io
import os
from typing import Protocol

from reconciler.daemon import config as config_mod
from reconciler.plan import model


@dataclasses.dataclass(frozen=True)
class Revision:
    desired: model.DesiredState
    revision: str
    watch: tuple[str, ...]  # absolute files whose change matters
    watch_dirs: tuple[str, ...] = ()  # directories whose manifests (*.yaml, .env) matter
    warnings: tuple[str, ...] = ()


class Source(Protocol):
    config: config_mod.SourceConfig

    @property
    def name(self) -> str: ...

    def load(self) -> Revision: ...

    def watch_paths(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """(files, directories) to watch before anything has loaded."""
        ...

    def close(self) -> None: ...


def load_revision(
    paths: list[str], stack: str | None, env: dict[str, str], revision: str | None = None
) -> Revision:
    from reconciler import desired as desired_mod
    from reconciler import load
    from reconciler.plan import fingerprint

    environ = {**os.environ, **env}
    loaded = load.load_stack(paths, stack=stack, environ=environ, stdin=io.StringIO(""))
    desired = desired_mod.desired_state(loaded)
    watch = {f for f in loaded.files if f != "-"}
    if loaded.env_file:
        watch.add(loaded.env_file)
    for obj in loaded.objects:
        watch.update(p for p in obj.file_digests if os.path.isabs(p))
    dirs = tuple(sorted(os.path.abspath(p) for p in paths if os.path.isdir(p)))
    return Revision(
        desired=desired,
        revision=revision or fingerprint.desired(desired),
        watch=tuple(sorted(watch)),
        watch_dirs=dirs,
        warnings=tuple(str(w) for w in loaded.warnings),
    )


class FileSource:
    """Manifest files and directories on this host (``watch = [...]``)."""

    def __init__(self, config: config_mod.SourceConfig) -> None:
        self.config = config

    @property
    def name(self) -> str:
        return self.config.name

    def load(self) -> Revision:
        return load_revision(list(self.config.watch), self.config.stack, dict(self.config.env))

    def watch_paths(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        files = tuple(p for p in self.config.watch if not os.path.isdir(p))
        dirs = tuple(p for p in self.config.watch if os.path.isdir(p))
        return files, dirs

    def close(self) -> None:
        return None
