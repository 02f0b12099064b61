"""A container's task as it is now: asked of its shim, recorded in the metadata.

The state of a started container lives with its shim (the ``state`` op) and,
once the shim has exited, in the exit record it left in the bundle
(:func:`runtime.shim.restore.probe`). Every observation re-reads it — never a
cache — and writes what it saw into the container's row (restart count, the
last run's start, finish, exit code, OOM kill, "lost"), so that ``ps`` and
``inspect`` still tell it when the bundle is gone: removed, or wiped with the
run root by a reboot. A row that says "running" while its bundle has vanished
is a container lost with its shim: exit code 137, status ``dead``, as
containerd reports a task whose shim died.

A container that has stopped for good has its task cleaned up as soon as it
is observed (the runtime's ``delete``: cgroups and runtime state; the rootfs
unmounted), as dockerd does on an exit event.

Cross-process safety: a flock per container (``<run_root>/locks/
container-<id>.lock``) serialises start, stop, restart, remove and the
restore scan across every pyreconcile process on the host; re-entrant within
a process. Observation never waits for it: it only skips the cleanup while
another process holds the lock (a start may be mounting the rootfs).
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import os
import threading
import time
from collections.abc import Callable, Iterator

from runtime import client, errors
from runtime.engine import layout, metadata, mounts, records, volume_fs
from runtime.shim import restore, runtimes, statedir

LOST_EXIT_CODE = restore.LOST_EXIT_CODE
VANISHED = "its shim and state in the run root vanished (was the host rebooted?)"


class _Held:
    __slots__ = ("depth", "fd", "rlock")

    def __init__(self) -> None:
        self.rlock = threading.RLock()
        self.fd = -1
        self.depth = 0


class ContainerLocks:
    """One flock per container, re-entrant within this process (threads included)."""

    def __init__(self, locks_dir: str) -> None:
        self._dir = locks_dir
        self._mutex = threading.Lock()
        self._held: dict[str, _Held] = {}

    def path(self, container_id: str) -> str:
        return os.path.join(self._dir, f"container-{container_id}.lock")

    @contextlib.contextmanager
    def hold(self, container_id: str, *, wait: bool = True) -> Iterator[bool]:
        """Hold the container's lock; yields False (not held) when ``wait`` is off and
        another thread or process has it."""
        with self._mutex:
            entry = self._held.setdefault(container_id, _Held())
        if not entry.rlock.acquire(blocking=wait):
            yield False
            return
        try:
            if entry.depth == 0:
                with errors.map_os_errors(f"lock container {container_id}"):
                    os.makedirs(self._dir, mode=0o700, exist_ok=True)
                    fd = os.open(self.path(container_id), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
                except BlockingIOError:
                    os.close(fd)
                    yield False
                    return
                entry.fd = fd
            entry.depth += 1
            try:
                yield True
            finally:
                entry.depth -= 1
                if entry.depth == 0:
                    os.close(entry.fd)
                    entry.fd = -1
        finally:
            entry.rlock.release()

    def forget(self, container_id: str) -> None:
        """Remove the lock file of a removed container (call while holding it)."""
        try:
            os.unlink(self.path(container_id))
        except FileNotFoundError:
            pass


def was_running(row: metadata.ContainerRow) -> bool:
    """Whether the row's last observation saw the container running (or restarting):
    a run started after the last recorded exit."""
    if row.started_at is None:
        return False
    return row.finished_at is None or row.finished_at < row.started_at


class Tasks:
    def __init__(
        self, paths: layout.Layout, store: metadata.MetadataStore, locks: ContainerLocks
    ) -> None:
        self._layout = paths
        self._store = store
        self.locks = locks
        # called with the container id once its task is cleaned up (network detach)
        self.after_clean_up: Callable[[str], None] = lambda container_id: None

    def bundle(self, container_id: str) -> str:
        return self._layout.bundle_dir(container_id)

    # -- observation -----------------------------------------------------------

    def observe_all(self, rows: list[metadata.ContainerRow]) -> list[client.ContainerInfo]:
        """:meth:`observe` of every row, the live shims asked at the same time.

        Each answer is a round trip to another process (~0.3 ms); a diff of
        1000 containers spent a third of its time waiting on them one by one.
        The threads only ask (:func:`restore.ask`); whatever did not answer
        with a state (no shim, a busy one, an error) is probed, and every row
        recorded, one by one as before.
        """
        answers: list[restore.ShimStatus | None] = [None] * len(rows)
        if len(rows) >= _ASK_TOGETHER:
            from concurrent.futures import ThreadPoolExecutor

            def ask(row: metadata.ContainerRow) -> restore.ShimStatus | None:
                shim_dir = self.bundle(row.id)
                if not os.path.exists(statedir.path(shim_dir, statedir.SOCKET)):
                    return None
                try:
                    return restore.ask(shim_dir)
                except errors.RuntimeError_:  # any answer but a state: probed as before
                    return None

            with ThreadPoolExecutor(max_workers=_ASKERS) as pool:
                answers = list(pool.map(ask, rows))
        return [self.observe(row, answer) for row, answer in zip(rows, answers, strict=True)]

    def observe(
        self, row: metadata.ContainerRow, answer: restore.ShimStatus | None = None
    ) -> client.ContainerInfo:
        """The container as it is now; records what changed in its row.
        ``answer``: its shim's ``state`` reply, asked already (:meth:`observe_all`)."""
        shim_dir = self.bundle(row.id)
        if not os.path.isdir(shim_dir):
            if was_running(row):  # its bundle vanished under it: lost
                row = self._record(
                    row, finished_at=time.time(), exit_code=LOST_EXIT_CODE, lost=True,
                    exit_error=VANISHED,
                )  # fmt: skip
            return from_row(row)
        if not os.path.exists(statedir.path(shim_dir, statedir.OPTIONS)):
            return from_row(row)  # never started, or a start is under way
        status = answer or _probe(shim_dir)
        if status is None:  # alive but busy: say running, act on it later
            return dataclasses.replace(from_row(row), status="running", pid=_init_pid(shim_dir))
        rec = status.record
        if status.kind == "running":
            return self._running(row, rec)
        row = self._record_exit(row, rec, lost=status.kind == "lost")
        with self.locks.hold(row.id, wait=False) as held:
            if held:  # else a start or stop in another process owns the task now
                self.clean_up(row)
        return from_row(row)

    def _record_exit(
        self, row: metadata.ContainerRow, rec: dict[str, object], *, lost: bool = False
    ) -> metadata.ContainerRow:
        """Write the exit record ``rec`` (the shim's ``exit`` file or final state) into the row."""
        return self._record(
            row,
            restart_count=max(row.restart_count, _int(rec.get("restart_count")) or 0),
            started_at=_float(rec.get("started_at")) or row.started_at,
            finished_at=_float(rec.get("finished_at")),
            exit_code=_int(rec.get("exit_code")),
            oom_killed=bool(rec.get("oom_killed")),
            lost=lost or bool(rec.get("lost")),
            exit_error=_str(rec.get("error")),
        )

    def finished(self, row: metadata.ContainerRow, state: dict[str, object]) -> None:
        """The shim said its last word: ``state`` is final (a ``wait`` or ``stop``
        answer). It touches neither the task nor the rootfs any more, so its exit
        is recorded and its task cleaned up now, while it exits, not after —
        the next observation finds both done. Call it holding the container's lock.
        """
        if state.get("final") is not True:
            return
        self._record_exit(row, state)
        clean_up_bundle(self.bundle(row.id), self._layout.oci_root, row.id, shim_done=True)
        self.after_clean_up(row.id)

    def _record(self, row: metadata.ContainerRow, **values: object) -> metadata.ContainerRow:
        """Write the values that differ from the row; return the row as stored."""
        changes = {k: v for k, v in values.items() if getattr(row, k) != v}
        if not changes:
            return row
        try:
            return self._store.update_container(row.id, **changes)  # type: ignore[arg-type]
        except errors.NotFound:  # removed meanwhile: report what was seen
            return dataclasses.replace(row, **changes)  # type: ignore[arg-type]

    def _running(
        self, row: metadata.ContainerRow, rec: dict[str, object], **changes: object
    ) -> client.ContainerInfo:
        """The container as its live shim's ``state`` record ``rec`` says, recorded
        in its row (with ``changes``, in the same write)."""
        count = max(row.restart_count, _int(rec.get("restart_count")) or 0)
        shim_state = str(rec.get("status"))
        state: client.ContainerStatus = (
            "running"
            if shim_state in ("running", "created")
            else "restarting"
            if shim_state == "restarting"
            else "exited"
        )
        last_code = _int(rec.get("exit_code"))  # of the run before, after a restart
        last = (
            {
                "finished_at": _float(rec.get("finished_at")),
                "exit_code": last_code,
                "oom_killed": bool(rec.get("oom_killed")),
                "lost": False,
                "exit_error": _str(rec.get("error")),
            }
            if last_code is not None
            else {}
        )
        row = self._record(
            row,
            restart_count=count,
            started_at=_float(rec.get("started_at")),
            **last,
            **changes,
        )
        info = from_row(row)
        return dataclasses.replace(
            info,
            status=state,
            health=health_info(rec.get("health")) if state == "running" else None,
            pid=(_int(rec.get("pid")) or _init_pid(self.bundle(row.id)))
            if state == "running"
            else None,
            exit_code=None if state == "running" else info.exit_code,
            finished_at=None if state == "running" else info.finished_at,
        )

    def started(self, row: metadata.ContainerRow, state: dict[str, object]) -> client.ContainerInfo:
        """A new shim runs the container and reported ``state`` (its ``state`` record,
        sent with "ready"): record it, with no operator stop any more, in one write,
        and return it — the shim's own word a moment ago, so no round trip to ask again.

        The last exit (lost or not) stays: it is the last exit until the next one.
        """
        if not state:  # a shim that sent none: ask it
            return self.observe(self._record(row, operator_stopped=False))
        return self._running(row, state, operator_stopped=False)

    # -- cleanup -----------------------------------------------------------------

    def clean_up(self, row: metadata.ContainerRow) -> None:
        """Delete the runtime's container and unmount the rootfs, once its shim is gone.

        Idempotent; does nothing while a shim is alive (it owns the task then).
        Call it holding the container's lock.
        """
        if restore.shim_alive(self.bundle(row.id)):
            return
        clean_up_bundle(self.bundle(row.id), self._layout.oci_root, row.id)
        self.after_clean_up(row.id)


def clean_up_bundle(
    shim_dir: str, oci_root: str, container_id: str, *, shim_done: bool = False
) -> None:
    """The runtime's container deleted and the rootfs unmounted, unless a shim lives
    (``shim_done``: one lives but has said its final word, see :meth:`Tasks.finished`)."""
    if not shim_done and restore.shim_alive(shim_dir):
        return
    rootfs = os.path.join(shim_dir, "rootfs")
    options = statedir.read_json(statedir.path(shim_dir, statedir.OPTIONS))
    if options is not None and os.path.exists(os.path.join(oci_root, container_id)):
        binary = options.get("runtime_binary")
        runtime = runtimes.make(
            binary if isinstance(binary, str) else None, oci_root, container_id, shim_dir
        )
        try:
            runtime.delete(force=True)
        except errors.NotFound:
            pass
    volume_fs.release_staging(shim_dir)  # subPath mounts (issue 7)
    mounts.unmount(rootfs)  # nothing mounted is fine (no mountinfo to read first)


def from_row(row: metadata.ContainerRow) -> client.ContainerInfo:
    """What the row says, without asking anyone (the last observation)."""
    status: client.ContainerStatus
    if row.finished_at is not None and not was_running(row):
        status = "dead" if row.lost else "exited"
    else:
        status = "created"
    done = status in ("exited", "dead")
    last_exit = (
        client.LastExit(
            code=row.exit_code,
            finished_at=row.finished_at,
            oom_killed=row.oom_killed,
            lost=row.lost,
            error=row.exit_error,
        )
        if row.exit_code is not None
        else None
    )
    return client.ContainerInfo(
        id=row.id,
        name=row.name,
        config=records.config_from_json(row.config_json),
        image_id=row.image_id,
        image_digest=row.image_digest,
        status=status,
        pid=None,
        exit_code=row.exit_code if done else None,
        created_at=row.created_at,
        started_at=row.started_at,
        finished_at=row.finished_at if done else None,
        restart_count=row.restart_count,
        operator_stopped=row.operator_stopped,
        last_exit=last_exit,
    )


def health_info(value: object) -> client.HealthInfo | None:
    """The shim's ``health`` state as the client's type (None when absent or malformed)."""
    if not isinstance(value, dict) or value.get("status") not in (
        "starting",
        "healthy",
        "unhealthy",
    ):
        return None
    results = []
    for item in value.get("log") or []:
        if isinstance(item, dict):
            results.append(
                client.HealthResult(
                    start=_float(item.get("start")) or 0.0,
                    end=_float(item.get("end")) or 0.0,
                    exit_code=_int(item.get("exitCode")) or 0,
                    output=_str(item.get("output")) or "",
                )
            )
    return client.HealthInfo(
        status=value["status"],
        failing_streak=_int(value.get("failingStreak")) or 0,
        log=tuple(results),
    )


def _init_pid(shim_dir: str) -> int | None:
    """The container's init pid as the shim recorded its run (``run.json``), else as an
    external runtime wrote it at create (``init.pid``): for a shim that is busy, or
    that answers between create and start, without one."""
    run = statedir.read_json(statedir.path(shim_dir, statedir.RUN)) or {}
    pid = run.get("init_pid")
    if isinstance(pid, int) and not isinstance(pid, bool) and pid > 0:
        return pid
    return statedir.read_pid(statedir.path(shim_dir, statedir.INIT_PID))


#: From this many containers on, their shims are asked in parallel, by this many threads
_ASK_TOGETHER = 8
_ASKERS = 8


def _probe(shim_dir: str) -> restore.ShimStatus | None:
    for _ in range(3):
        try:
            return restore.probe(shim_dir)
        except errors.Unavailable:
            time.sleep(0.05)
        except errors.NotFound:
            return None
    return None


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _float(value: object) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


def _str(value: object) -> str | None:
    return value if isinstance(value, str) else None
