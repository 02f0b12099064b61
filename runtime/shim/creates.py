"""A run's ``create``, begun early: fresh stdio pipes for the container and the
runtime's create under way (optionally held at a gate), then let go, or
called off. The shim begins its first create before it sets itself up (the
builtin runtime's helper reads the config meanwhile) and hands it to the
:class:`~runtime.shim.supervisor.Supervisor`, which begins every later one
itself. Stdlib only, like the rest of the shim.
"""

from __future__ import annotations

import os
import time

from runtime.shim import statedir

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from runtime.shim.runtimes import OciRuntime

    #: a create under way: stdout's and stderr's read ends, its finish, when it
    #: began, the write end of its gate (-1: none, or open already)
    Pending = tuple[int, int, Callable[[], int], float, int]

__all__ = ["abandon_create", "begin_create", "release_create"]


def begin_create(runtime: OciRuntime, bundle: str, *, gated: bool = False) -> Pending:
    """Fresh stdio for a run and the runtime's create under way: (stdout's and
    stderr's read ends, what finishes the create, when it began, the write end
    of its gate or -1). ``gated`` (where the runtime can): it only reads the
    config until :func:`release_create` lets it go on."""
    begun = time.monotonic()
    stdin = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
    out_r, out_w = os.pipe2(os.O_CLOEXEC)
    err_r, err_w = os.pipe2(os.O_CLOEXEC)
    gate_r, gate_w = os.pipe2(os.O_CLOEXEC) if gated and runtime.gated else (-1, -1)
    try:
        finish = runtime.create_async(
            bundle, statedir.path(bundle, statedir.INIT_PID), stdin, out_w, err_w,
            (gate_r, gate_w) if gate_r >= 0 else None,
        )  # fmt: skip
    except BaseException:
        for fd in (out_r, err_r, gate_w):
            if fd >= 0:
                os.close(fd)
        raise
    finally:
        for fd in (stdin, out_w, err_w, gate_r):
            if fd >= 0:
                os.close(fd)
    return out_r, err_r, finish, begun, gate_w


def release_create(pending: Pending) -> Pending:
    """Let a gated create go on (the shim holds the lock now); the pending create
    without its gate."""
    out_r, err_r, finish, begun, gate_w = pending
    if gate_w >= 0:
        try:
            os.write(gate_w, b"g")
        finally:
            os.close(gate_w)
    return out_r, err_r, finish, begun, -1


def abandon_create(pending: Pending) -> None:
    """A create begun whose run will not happen: called off if it still waits at
    its gate; else let it finish (so that a delete finds whatever it made),
    whatever it says. Its pipes closed."""
    out_r, err_r, finish, _, gate_w = pending
    if gate_w >= 0:
        os.close(gate_w)  # end of file at the gate: it makes nothing
    try:
        finish()
    except BaseException:
        pass
    os.close(out_r)
    os.close(err_r)
