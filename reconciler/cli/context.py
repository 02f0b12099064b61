"""What every command shares: the roots, the runtime client, name lookup, locks."""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import os
from collections.abc import Iterator

import click

from reconciler import labels as L
from reconciler.naming import runtime_name_for
from runtime import client, errors


@dataclasses.dataclass
class Context:
    root: str | None
    run_root: str | None
    verbosity: int = 0
    _runtime: client.RuntimeClient | None = None

    @property
    def runtime(self) -> client.RuntimeClient:
        if self._runtime is None:
            self._runtime = client.open_local(self.root, self.run_root)
        return self._runtime

    def close(self) -> None:
        if self._runtime is not None:
            self._runtime.close()
            self._runtime = None

    def run_root_path(self) -> str:
        return os.path.abspath(
            self.run_root or os.environ.get("PYRECONCILE_RUN_ROOT") or "/run/pyreconcile"
        )

    @contextlib.contextmanager
    def stack_lock(self, stack: str) -> Iterator[None]:
        """One apply or delete of a stack at a time on this host (flock, released on exit)."""
        locks = os.path.join(self.run_root_path(), "locks")
        os.makedirs(locks, mode=0o700, exist_ok=True)
        fd = os.open(os.path.join(locks, f"stack-{stack}.lock"), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                click.echo(f"waiting for another apply or delete of stack {stack}…", err=True)
                fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)


def resolve_container(
    runtime: client.RuntimeClient, name: str, stack: str | None
) -> client.ContainerInfo:
    """``stack/name``, a runtime name (``stack_name``), an id prefix, or a bare
    manifest name that is unique among managed containers (or within ``--stack``)."""
    if "/" in name:
        stack, name = name.split("/", 1)
    if stack:
        return runtime.get_container(runtime_name_for(stack, name))
    try:
        return runtime.get_container(name)
    except errors.NotFound:
        pass
    matches = [
        c
        for c in runtime.list_containers()
        if c.labels.get(L.MANAGED) == "true" and c.labels.get(L.NAME) == name
    ]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise errors.NotFound(f"no container named {name!r}; see `pyreconcile ps`")
    stacks = ", ".join(sorted(c.labels.get(L.STACK, "?") for c in matches))
    raise errors.InvalidSpec(
        f"{name!r} names a container in several stacks ({stacks}); use STACK/{name} or --stack"
    )
