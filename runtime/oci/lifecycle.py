"""The builtin OCI runtime, as a library: the verbs of ``runc``.

The shim calls these in-process (no interpreter start per verb);
``pyreconcile-runc`` (:mod:`runtime.oci.cli`) wraps them for everyone else.
``root`` is the runtime's state dir (like ``runc --root``). Errors are
``runtime.errors`` categories: unknown id NotFound, existing id AlreadyExists,
bad config InvalidSpec (naming the field), wrong state FailedPrecondition.
``start`` and ``delete`` return the warnings of failed poststart/poststop
hooks (a list of strings; callers that ignore the result lose nothing else).
Stdlib only and cheap to import (the shim runs ``python -I -S``): ``exec``,
``pause``/``resume``, ``stats`` and ``features`` load their modules on first
use.
"""

from __future__ import annotations

from runtime.oci.create import create
from runtime.oci.delete import delete
from runtime.oci.kill import kill
from runtime.oci.start import start
from runtime.oci.state import list_containers, state

__all__ = [
    "create",
    "delete",
    "exec_process",
    "features",
    "kill",
    "list_containers",
    "pause",
    "pids",
    "resume",
    "start",
    "state",
    "stats",
]


def exec_process(
    root: str,
    container_id: str,
    process: dict[str, object],
    *,
    stdin: int | None = None,
    stdout: int | None = None,
    stderr: int | None = None,
    console_socket: str | None = None,
    pid_file: str | None = None,
    preserve_fds: int = 0,
) -> int:
    """Run ``process`` (a config.json ``process`` object) in the container and
    return its pid; see :func:`runtime.oci.execproc.exec_process`."""
    from runtime.oci import execproc

    return execproc.exec_process(
        root, container_id, process, stdin=stdin, stdout=stdout, stderr=stderr,
        console_socket=console_socket, pid_file=pid_file, preserve_fds=preserve_fds,
    )  # fmt: skip


def pause(root: str, container_id: str) -> None:
    from runtime.oci import pause as _pause

    _pause.pause(root, container_id)


def resume(root: str, container_id: str) -> None:
    from runtime.oci import pause as _pause

    _pause.resume(root, container_id)


def pids(root: str, container_id: str) -> list[int]:
    """The pids (host view) of every process in the container's cgroup."""
    from runtime.oci import cgroups
    from runtime.oci import state as _state

    return cgroups.pids(_state.load(root, container_id).cgroup_dirs)


def stats(root: str, container_id: str) -> dict[str, object]:
    from runtime.oci import stats as _stats

    return _stats.stats(root, container_id)


def features() -> dict[str, object]:
    from runtime.oci import features as _features

    return _features.features()
