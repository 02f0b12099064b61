"""Quiet the containers that use a volume while it is copied: pause them, or stop them.

``paused`` freezes every running user (the OCI runtime's ``pause``: the
cgroup freezer) for the duration of the block and thaws it afterwards, so a
backup sees the volume as it was at one instant — no write happens during the
copy — while the processes keep their state and connections. The builtin
runtime is called as a library on the engine's runtime root; an external one
(runc, crun) as ``<binary> --root <root> pause|resume <id>``.

``stopped`` stops every running user (its stop signal, then SIGKILL after
the grace period) and starts it again afterwards: what a restore needs, since
the application must read the new content from the start, and what a backup
falls back to where the freezer is missing (``--stop``).

Both hold the users' container locks throughout, so no start, stop or
restart from this or another pyreconcile process (a self-healing daemon, say)
acts on them in between. A user that is not running is left alone: it writes
nothing. Thaw and start failures are collected and raised after all were
tried, never leaving a container frozen because another one failed.
"""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator, Sequence

from runtime import client, errors
from runtime.engine import containers as containers_mod

_RUNNING = ("running", "restarting")


def _oci(binary: str | None, verb: str, root: str, container_id: str) -> None:
    if binary is None:
        from runtime.oci import lifecycle

        (lifecycle.pause if verb == "pause" else lifecycle.resume)(root, container_id)
        return
    with errors.map_os_errors(f"run {binary} {verb}"):
        done = subprocess.run(
            [binary, "--root", root, verb, container_id],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    if done.returncode != 0:
        detail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        raise errors.FailedPrecondition(f"{binary} {verb} {container_id}: {detail[0]}")


def _users(engine: containers_mod.Containers, names: Sequence[str]) -> list[client.ContainerInfo]:
    found = []
    for name in names:
        try:
            found.append(engine.get(name))
        except errors.NotFound:
            continue  # removed meanwhile: it writes nothing
    return found


@contextlib.contextmanager
def paused(
    engine: containers_mod.Containers, names: Sequence[str], oci_root: str
) -> Iterator[list[str]]:
    """Freeze the running containers among ``names``; yields the names frozen."""
    frozen: list[client.ContainerInfo] = []
    with contextlib.ExitStack() as locks:
        try:
            for info in _users(engine, names):
                locks.enter_context(engine.locks.hold(info.id))
                if engine.get(info.id).status not in _RUNNING:
                    continue
                try:
                    _oci(info.config.oci_runtime, "pause", oci_root, info.id)
                except errors.FailedPrecondition:
                    if engine.get(info.id).status in _RUNNING:
                        raise
                    continue  # it stopped meanwhile
                except errors.Unavailable as exc:
                    raise errors.Unavailable(
                        f"cannot pause container {info.name} for a consistent copy ({exc}); "
                        "use --stop to stop it instead"
                    ) from exc
                frozen.append(info)
            yield [i.name for i in frozen]
        finally:
            failures: list[Exception] = []
            for info in reversed(frozen):
                try:
                    _oci(info.config.oci_runtime, "resume", oci_root, info.id)
                except errors.RuntimeError_ as exc:
                    failures.append(exc)
            if failures:
                raise errors.FailedPrecondition(
                    "resuming the paused containers failed: " + "; ".join(map(str, failures))
                )


@contextlib.contextmanager
def stopped(engine: containers_mod.Containers, names: Sequence[str]) -> Iterator[list[str]]:
    """Stop the running containers among ``names``, start them again afterwards;
    yields the names stopped."""
    halted: list[client.ContainerInfo] = []
    with contextlib.ExitStack() as locks:
        try:
            for info in _users(engine, names):
                locks.enter_context(engine.locks.hold(info.id))
                if engine.get(info.id).status not in _RUNNING:
                    continue
                engine.stop(info.id)
                halted.append(info)
            yield [i.name for i in halted]
        finally:
            failures: list[Exception] = []
            for info in halted:
                try:
                    engine.start(info.id)
                except errors.RuntimeError_ as exc:
                    failures.append(exc)
            if failures:
                raise errors.FailedPrecondition(
                    "starting the stopped containers again failed: " + "; ".join(map(str, failures))
                )
