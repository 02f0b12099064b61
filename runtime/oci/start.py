"""``start``: let a created container's init exec its process (runc's
exec.fifo protocol).

The init blocks in ``open(exec.fifo, O_WRONLY)``. ``start`` opens the fifo
for reading *without* blocking (so a dead init cannot hang it), then polls:
the init's one byte means it is about to exec, and the end of the file that
follows means it has (the init holds the fifo open, close-on-exec, through
the ``startContainer`` hooks and the ``execve``), so ``start`` returns when
the container's process runs its program, as runc's ``start`` does (it reads
the fifo to EOF too); a hang-up with no byte, or an init that is no longer
alive at a poll timeout, means it died. The fifo is removed afterwards, which
is what turns the status from created to running.
Then the ``poststart`` hooks run (from state.json: the config as it was at
create); their failures are returned as warnings, not raised — the
container is running by then (runtime-spec: "the runtime MUST log a warning").
"""

from __future__ import annotations

import os
import select

from runtime import errors
from runtime.oci import state

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import NoReturn

__all__ = ["start"]

_POLL_MS = 100


def start(root: str, container_id: str) -> list[str]:
    """Start the container's process; returns warnings (failed poststart hooks)."""
    rec = state.load(root, container_id)
    status = state.observe_status(root, rec)
    if status == "stopped":
        raise errors.FailedPrecondition(
            f"cannot start a container that has stopped: {container_id}"
        )
    if status == "running":
        raise errors.FailedPrecondition(
            f"cannot start an already running container: {container_id}"
        )
    if not rec.has_process:
        from runtime.oci import kill

        kill.signal_init(rec, 9)  # it waits for a start that can never be: it is stopped now
        raise errors.FailedPrecondition(
            f"cannot start container {container_id}: its config.json has no process"
        )
    fifo = os.path.join(root, container_id, state.FIFO)
    try:
        fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise errors.FailedPrecondition(
            f"cannot start an already running container: {container_id}"
        ) from None
    try:
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        told = False  # the init's byte came: it is about to exec
        while True:
            if poller.poll(_POLL_MS):
                try:
                    data = os.read(fd, 64)
                except BlockingIOError:
                    continue
                if data:
                    told = True
                    continue
                if told:
                    break  # end of file after the byte: exec'd (or died trying)
                _raise_not_started(root, rec)
            elif not told and state.observe_status(root, rec) == "stopped":
                _raise_not_started(root, rec)
    finally:
        os.close(fd)
    try:
        os.unlink(fifo)
    except FileNotFoundError:
        pass
    return run_state_hooks(rec, "poststart", "running")


def run_state_hooks(rec: state.Record, kind: str, status: str) -> list[str]:
    """Run the ``kind`` hooks kept in state.json; failures become warnings."""
    if kind not in rec.hooks:
        return []
    from runtime.oci import hooks

    try:
        parsed = hooks.parse({kind: rec.hooks[kind]})
        failed = hooks.run_all(
            kind, parsed.get(kind, []), state.oci_state(rec, status), keep_going=True
        )
    except errors.RuntimeError_ as exc:
        failed = [str(exc)]
    return [f"container {rec.id}: {text}" for text in failed]


def _raise_not_started(root: str, rec: state.Record) -> NoReturn:
    if state.observe_status(root, rec) == "running" and not os.path.lexists(
        os.path.join(root, rec.id, state.FIFO)
    ):
        raise errors.FailedPrecondition(f"cannot start an already running container: {rec.id}")
    raise errors.FailedPrecondition(
        f"container {rec.id}: its init exited before it could be started"
    )
