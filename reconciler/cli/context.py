"""What every command shares: the roots, the runtime client, name lookup, locks."""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING

import click

from reconciler import labels as L
from reconciler.naming import runtime_name_for
from runtime import client, errors

if TYPE_CHECKING:
    from reconciler.daemon import client as daemon_client

DAEMON_MODES = {
    "auto": "auto",
    "": "auto",
    "never": "never",
    "0": "never",
    "off": "never",
    "no": "never",
    "always": "always",
    "1": "always",
    "on": "always",
    "yes": "always",
    "require": "always",
}


@dataclasses.dataclass
class Context:
    """The roots, and how to reach the engine: the daemon's API when its socket
    answers, else the engine in this process (``PYRECONCILE_DAEMON``: ``auto``,
    the default; ``never`` runs in-process; ``always`` fails without a daemon)."""

    root: str | None
    run_root: str | None
    verbosity: int = 0
    _runtime: client.RuntimeClient | None = None
    _api: object | None = None
    _probed: bool = False

    @property
    def api(self) -> daemon_client.ApiClient | None:
        """The daemon's client, or None when the engine runs in this process."""
        if not self._probed:
            self._probed = True
            mode = DAEMON_MODES.get(os.environ.get("PYRECONCILE_DAEMON", "auto").lower())
            if mode is None:
                raise errors.InvalidSpec(
                    "PYRECONCILE_DAEMON must be auto, never or always, not "
                    f"{os.environ.get('PYRECONCILE_DAEMON')!r}"
                )
            if mode != "never":
                from reconciler.daemon import address

                path = address.default_socket(self.run_root)
                if _may_answer(path):
                    from reconciler.daemon import client as daemon_client

                    self._api = daemon_client.connect(path)
                if self._api is None and mode == "always":
                    raise errors.Unavailable(
                        f"no daemon answers at {path} (PYRECONCILE_DAEMON=always); start one "
                        "with `pyreconcile daemon` or `systemctl start pyreconcile`"
                    )
        return self._api  # type: ignore[return-value]

    @property
    def runtime(self) -> client.RuntimeClient:
        if self._runtime is None:
            api = self.api
            if api is not None:
                from reconciler.daemon import remote

                self._runtime = remote.RemoteRuntime(api)
            else:
                self._runtime = client.open_local(self.root, self.run_root)
        return self._runtime

    def close(self) -> None:
        if self._runtime is not None:
            self._runtime.close()
            self._runtime = None
        if self._api is not None:
            self._api.close()  # type: ignore[attr-defined]
            self._api = None

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


def resolve_name(
    kind: str,
    objects: list[tuple[str, dict[str, str]]],
    name: str,
    stack: str | None,
    listing: str,
) -> str:
    """The runtime name of a volume or network the user named: ``stack/name``, a
    runtime name (``stack_name``), or a bare manifest name unique among the managed
    objects (or within ``--stack``). ``objects``: (runtime name, labels) of each."""
    if "/" in name:
        stack, name = name.split("/", 1)
    if stack:
        wanted = runtime_name_for(stack, name)
        if any(n == wanted for n, _ in objects):
            return wanted
        raise errors.NotFound(f"{kind} {name!r} of stack {stack} not found")
    if any(n == name for n, _ in objects):
        return name
    matches = [
        n for n, labels in objects if labels.get(L.MANAGED) == "true" and labels.get(L.NAME) == name
    ]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise errors.NotFound(f"no {kind} named {name!r}; see `{listing}`")
    raise errors.InvalidSpec(
        f"{name!r} names a {kind} in several stacks ({', '.join(sorted(matches))}); "
        f"use STACK/{name} or --stack"
    )


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


def _may_answer(path: str) -> bool:
    """False when nothing is at ``path`` (no daemon: the API client is not even
    imported, ~30 ms of every in-process run); anything else, the client decides
    (a socket nobody listens on, or one this user may not open, which it says)."""
    try:
        os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return False
    except OSError:
        return True
    return True
