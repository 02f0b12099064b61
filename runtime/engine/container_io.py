"""A container's I/O for the engine: ``exec`` and ``logs``, through its shim or its files.

``exec`` goes to the shim (:meth:`runtime.shim.client.ShimClient.exec`), the
parent of everything in the container; a user given by name is looked up
here, in the container's own /etc/passwd and /etc/group (its rootfs is
mounted in the bundle while it runs), since the runtime takes numeric ids.

``logs`` reads the json-file logs directly (no shim needed: it works for a
container whose shim has exited, and for one whose shim is busy). ``follow``
of a live container goes through the shim's ``logs`` stream instead: lines
arrive as they are written, not at the next poll, and the stream ends when
the container stops for good (a restart policy may keep it going). If the
shim cannot be reached at the start, the files are followed instead.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Literal

from runtime import client, errors
from runtime.engine import bundle
from runtime.shim import client as shim_client
from runtime.shim import logs, restore, statedir

LOG_FILE = "container-json.log"


def log_path(container_dir: str) -> str:
    return os.path.join(container_dir, LOG_FILE)


def exec_in(
    shim_dir: str,
    name: str,
    config: client.ExecConfig,
    stdio: tuple[int, int, int] | None,
) -> shim_client.ExecSession:
    """Start ``config`` in the running container whose bundle is ``shim_dir``."""
    if not config.args:
        raise errors.InvalidSpec(f"exec in container {name!r}: give a command to run")
    user: dict[str, object] | None = None
    if config.user:
        resolved = bundle.resolve_user(os.path.join(shim_dir, "rootfs"), config.user)
        user = {
            "uid": resolved.uid,
            "gid": resolved.gid,
            "additionalGids": list(resolved.additional_gids),
        }
    shim = shim_client.ShimClient(statedir.path(shim_dir, statedir.SOCKET))
    try:
        return shim.exec(
            config.args,
            env=[f"{k}={v}" for k, v in config.env],
            cwd=config.working_dir,
            user=user,
            tty=config.tty,
            stdio=stdio,
        )
    except errors.Unavailable:
        raise errors.FailedPrecondition(
            f"container {name!r} is not running: start it before exec"
        ) from None


def read(
    container_dir: str,
    shim_dir: str,
    *,
    tail: int | None,
    follow: bool,
    since: float | str | None,
    running: bool,
) -> Iterator[client.LogEntry]:
    """The container's log entries, oldest first (see the module's docstring)."""
    if since is not None and isinstance(since, str):
        try:
            logs.parse_time(since)
        except ValueError as exc:
            raise errors.InvalidSpec(str(exc)) from None
    if follow and running and restore.shim_alive(shim_dir):
        shim = shim_client.ShimClient(statedir.path(shim_dir, statedir.SOCKET))
        stream = shim.logs(tail=tail, since=since, follow=True)
        try:
            first = next(stream, None)
        except errors.Unavailable:
            pass  # gone between the check and the call: the files have it all
        else:
            if first is not None:
                yield _entry(first)
            try:
                for record in stream:
                    yield _entry(record)
            except errors.Unavailable:
                return  # the shim died mid-stream: the container is lost with it
            return
    exit_path = statedir.path(shim_dir, statedir.EXIT)
    for record in logs.read_logs(
        log_path(container_dir),
        tail=tail,
        follow=follow and running,
        since=since,
        exit_path=exit_path,
    ):
        yield _entry(record)


def _entry(record: dict[str, str]) -> client.LogEntry:
    stream: Literal["stdout", "stderr"] = "stderr" if record.get("stream") == "stderr" else "stdout"
    return client.LogEntry(time=record.get("time", ""), stream=stream, log=record.get("log", ""))
