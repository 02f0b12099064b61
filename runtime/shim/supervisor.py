"""The container's keeper inside the shim: runs, exits, logs, restarts and stops.

One *run* = the OCI runtime's ``create`` + ``start`` with fresh stdout/stderr
pipes (the shim holds the read ends; their EOF tells that every process of the
run has let go). The life of a shim::

    boot ─▶ running ─(init exits)─▶ draining ─▶ restarting ─(backoff)─▶ running …
                                           └──▶ final: write ``exit``, answer waiters, exit

Choices:

- The shim is the init's parent (it is a child subreaper and the runtime's
  process exits after ``create``), so the init's pid cannot be reused until the
  shim reaps it: plain signals go straight to it with ``os.kill`` — no runtime
  process per signal, no pid race. ``kill --all`` goes through the runtime
  (it knows the cgroup).
- Every child is reaped (SIGCHLD → ``waitpid(-1, WNOHANG)``); only the init's
  status is kept. Exit code: the status, or 128+signal (Docker's convention).
- After the init exits, the pipes are read until EOF (every holder gone) or for
  at most :data:`DRAIN_TIMEOUT` seconds, then logs are fsynced; only then is
  the restart policy applied or the ``exit`` file written, so a reader that
  sees ``exit`` has seen every line.
- A restart deletes the old run from the runtime and creates the same bundle
  again. A restart that fails to create or start counts as a failed run (exit
  code 128, its error in ``error``) and the policy decides again, with backoff.
- ``stop`` marks the end as intentional: no restart after it, ever, in this shim.
  The stop signal goes to the init; after ``timeout`` seconds, SIGKILL.
- A container that shares the host's pid namespace (no ``pid`` namespace in its
  config) does not die with its init: when the init exits, or a stop escalates,
  every process of its cgroup is SIGKILLed through the runtime (``kill --all``),
  as containerd's shim does, so nothing of the run outlives it.
- ``restart_count`` goes on from the count of the container's earlier shims
  (``--restart-count``); the policy's retry limit (``on-failure:N``) counts the
  restarts of this shim only, as a manual start resets Docker's. Every run
  rewrites ``run.json`` (count, start time, init pid), so a shim killed later
  still tells how often it had restarted.
- Processes started with ``exec`` (:mod:`runtime.shim.execs`) are reaped here
  too: their exit goes to the exec's waiter.
"""

from __future__ import annotations

import os
import time

from runtime import errors
from runtime.shim import cgroups, jsonio, logwriter, policy, signals, statedir
from runtime.shim import health as health_mod
from runtime.shim.creates import abandon_create, begin_create, release_create

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from runtime.shim.creates import Pending
    from runtime.shim.events import EventLog
    from runtime.shim.execs import Execs
    from runtime.shim.health import Health
    from runtime.shim.loop import Loop, Timer
    from runtime.shim.runtimes import OciRuntime

    Reply = Callable[[dict[str, object]], None]

DRAIN_TIMEOUT = 2.0
FAILED_START_EXIT_CODE = 128

RUNNING = "running"
CREATED = "created"
STOPPED = "stopped"
RESTARTING = "restarting"


class Supervisor:
    def __init__(
        self,
        *,
        container_id: str,
        bundle: str,
        runtime: OciRuntime,
        loop: Loop,
        events: EventLog,
        restart: policy.RestartPolicy,
        stop_signal: int,
        stop_timeout: float,
        log_path: str,
        log_max_size: int,
        log_max_files: int,
        on_final: Callable[[dict[str, object]], None],
        restart_count: int = 0,
        pending: Pending | None = None,
    ) -> None:
        self.container_id = container_id
        self.bundle = bundle
        self.runtime = runtime
        self.loop = loop
        self.events = events
        self.restart = restart
        self.stop_signal = stop_signal
        self.stop_timeout = stop_timeout
        self.log_path = log_path
        self.log_max_size = log_max_size
        self.log_max_files = log_max_files
        self.on_final = on_final

        self.status = CREATED
        self.init_pid: int | None = None
        self.started_at: float | None = None
        self.finished_at: float | None = None
        self.exit_code: int | None = None
        self.exit_signal: int | None = None
        self.oom_killed = False
        self.restart_base = restart_count
        self.restarts = 0  # by this shim (the policy's retry limit counts these)
        self.stop_requested = False
        self.final = False
        self.error: str | None = None

        self._writer: logwriter.LogWriter | None = None
        self._pipes: dict[int, str] = {}
        self._started_mono = 0.0
        self._run_seconds = 0.0
        self._backoff = 0.0
        self._oom_path: str | None = None
        self._oom_base: int | None = None
        self._drain_timer: Timer | None = None
        self._restart_timer: Timer | None = None
        self._stop_timer: Timer | None = None
        self._waiters: list[tuple[str, Reply, Timer | None]] = []
        self._host_pid: bool | None = None  # from the runtime's facts, or read when needed
        #: the first run's create, begun before the shim set itself up (begin_create)
        self._pending = pending
        self._after_ready: Callable[[], None] | None = None
        #: called with each batch of log records as the shim writes them (live ``logs``)
        self.log_listeners: list[Callable[[bytes], None]] = []
        self.execs: Execs | None = None  # made at the first exec (its module loaded then)
        self.health: Health | None = None
        check = health_mod.load(bundle)
        if check is not None:
            self.health = health_mod.Health(check, self, loop, events)

    @property
    def restart_count(self) -> int:
        return self.restart_base + self.restarts

    @property
    def host_pid(self) -> bool:
        """Whether the container has no pid namespace of its own (or joins another's):
        then it does not die with its init (see the module docstring)."""
        if self._host_pid is None:
            self._host_pid = _shares_host_pid(self.bundle)
        return self._host_pid

    # runs ------------------------------------------------------------------

    def boot(self) -> int:
        """Open the log and do the first run; raise the runtime's error if it fails."""
        self._writer = logwriter.LogWriter(
            self.log_path, self.log_max_size, self.log_max_files,
            on_records=self._on_log_records, on_error=self._on_log_error,
        )  # fmt: skip
        pending, self._pending = self._pending, None
        self._start_run(pending, defer=True)
        assert self.init_pid is not None
        return self.init_pid

    def _start_run(self, pending: Pending | None = None, defer: bool = False) -> None:
        out_r, err_r, finish, begun, _ = release_create(
            pending or begin_create(self.runtime, self.bundle)
        )
        try:
            pid = finish()
        except BaseException:
            os.close(out_r)
            os.close(err_r)
            raise
        self.init_pid = pid
        self.status = CREATED
        for fd, stream in ((out_r, "stdout"), (err_r, "stderr")):
            os.set_blocking(fd, False)
            self._pipes[fd] = stream
            self.loop.add_reader(fd, self._pipe_reader(fd, stream))
        facts = self.runtime.facts
        if "shares_host_pid" in facts:
            self._host_pid = bool(facts["shares_host_pid"])
        counter = facts.get("oom_counter", False)
        self._oom_path = counter if isinstance(counter, str) or counter is None else None
        if counter is False:  # not told: find it through /proc
            self._oom_path = cgroups.oom_counter_path(pid)
        self._oom_base = cgroups.read_oom_kills(self._oom_path)
        created = time.monotonic()
        try:
            self.runtime.start()
        except errors.RuntimeError_:
            self._abort_run()
            raise
        # the builtin runtime's helper answered before it exited: the init is ours
        # once it has (it had all of start to do so); then check that it is
        self.runtime.settle()
        if _parent_of(pid) != os.getpid():
            self._abort_run()
            raise errors.Terminal(
                f"container {self.container_id}: init pid {pid} is not a child of the shim; "
                "the runtime must let it reparent to the shim (a child subreaper)"
            )
        self.status = RUNNING
        self.started_at = time.time()
        self._started_mono = time.monotonic()
        if self.health is not None:
            self.health.run_started()
        create_ms = round((created - begun) * 1000, 1)
        start_ms = round((self._started_mono - created) * 1000, 1)

        def record() -> None:
            self._save_run()
            self.events.info(
                "container_started", pid=pid, restart_count=self.restart_count,
                create_ms=create_ms, start_ms=start_ms,
            )  # fmt: skip

        if defer:
            self._after_ready = record
        else:
            record()

    def after_ready(self) -> None:
        """The boot's bookkeeping (``run.json``, the ``container_started`` event),
        done once the launcher has been told: not on the start's critical path."""
        record, self._after_ready = self._after_ready, None
        if record is not None:
            record()

    def _save_run(self) -> None:
        record = {
            "restart_count": self.restart_count,
            "started_at": self.started_at,
            "init_pid": self.init_pid,
        }
        try:
            statedir.write_json(statedir.path(self.bundle, statedir.RUN), record)
        except OSError as exc:  # a full run root must not stop the container
            self.events.warning("run_file_failed", error=str(exc))

    def _abort_run(self) -> None:
        """A run that failed between create and start: remove it, reap its init."""
        self.runtime.settle()
        try:
            self.runtime.delete(force=True)
        except errors.RuntimeError_ as exc:
            self.events.warning("container_delete_failed", error=str(exc))
        if self.init_pid is not None and _parent_of(self.init_pid) == os.getpid():
            try:  # in case delete could not: ours and unreaped, so the pid is still its
                os.kill(self.init_pid, signals.SIGKILL)
            except ProcessLookupError:
                pass
            try:
                os.waitpid(self.init_pid, 0)
            except ChildProcessError:
                pass
        self.status = STOPPED
        self._close_pipes(read_rest=True)

    def abort(self) -> None:
        """Boot failed: close the log and the pipes; the caller removes the files.
        A create begun and not finished is waited for first (so that the caller's
        delete finds whatever it made)."""
        if self._pending is not None:
            abandon_create(self._pending)
            self._pending = None
        self._close_pipes(read_rest=False)
        if self._writer is not None:
            self._writer.close()

    # children and pipes ----------------------------------------------------

    def reap(self) -> None:
        """Reap every exited child (SIGCHLD); notice the init's exit."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if pid == self.init_pid and self.status in (RUNNING, CREATED):
                self._on_init_exit(status)
            elif self.execs is not None:
                self.execs.reaped(pid, status)

    def _on_log_records(self, data: bytes) -> None:
        for listener in list(self.log_listeners):
            listener(data)

    def _on_log_error(self, what: str, dropped: int) -> None:
        if what == "recovered":
            self.events.info("log_write_recovered", dropped_records=dropped)
        else:
            self.events.error("log_write_failed", error=what, dropped_records=dropped)

    def _pipe_reader(self, fd: int, stream: str) -> Callable[[], None]:
        return lambda: self._read_pipe(fd, stream)

    def _read_pipe(self, fd: int, stream: str) -> None:
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if data:
            if self._writer is not None:
                self._writer.feed(stream, data)
            return
        self._close_pipe(fd)
        self._check_drained()

    def _close_pipe(self, fd: int) -> None:
        stream = self._pipes.pop(fd)
        self.loop.remove_reader(fd)
        os.close(fd)
        if self._writer is not None:
            self._writer.flush_partial(stream)

    def _close_pipes(self, *, read_rest: bool) -> None:
        for fd, stream in list(self._pipes.items()):
            while read_rest:
                try:
                    data = os.read(fd, 65536)
                except OSError:
                    break
                if not data:
                    break
                if self._writer is not None:
                    self._writer.feed(stream, data)
            self._close_pipe(fd)

    # exits -----------------------------------------------------------------

    def _on_init_exit(self, status: int) -> None:
        code = os.waitstatus_to_exitcode(status)
        self.exit_signal = -code if code < 0 else None
        self.exit_code = 128 - code if code < 0 else code
        self.finished_at = time.time()
        self._run_seconds = time.monotonic() - self._started_mono
        after = cgroups.read_oom_kills(self._oom_path)
        self.oom_killed = bool(
            self._oom_base is not None and after is not None and after > self._oom_base
        )
        self.status = STOPPED
        self.error = None
        if self.health is not None:
            self.health.run_ended()
        if self._stop_timer is not None:
            self._stop_timer.cancel()
            self._stop_timer = None
        if self.host_pid:
            self._kill_all("init_exited")
        self.events.info(
            "container_exited", exit_code=self.exit_code, signal=self.exit_signal,
            oom_killed=self.oom_killed, run_seconds=round(self._run_seconds, 3),
        )  # fmt: skip
        self._notify("not-running")
        self._drain_timer = self.loop.call_later(DRAIN_TIMEOUT, self._drain_timeout)
        self._check_drained()

    def _check_drained(self) -> None:
        if self.status == STOPPED and not self._pipes and self._drain_timer is not None:
            self._drain_timer.cancel()
            self._drain_timer = None
            self._after_exit()

    def _drain_timeout(self) -> None:
        self._drain_timer = None
        self.events.warning("logs_drain_timed_out", open_streams=sorted(self._pipes.values()))
        self._close_pipes(read_rest=True)
        self._after_exit()

    def _kill_all(self, why: str) -> None:
        """SIGKILL every process of the container's cgroup (host pid namespace only)."""
        try:
            self.runtime.kill(signals.SIGKILL, all_processes=True)
        except errors.RuntimeError_ as exc:
            self.events.warning("container_kill_all_failed", reason=why, error=str(exc))

    def _after_exit(self) -> None:
        code = self.exit_code if self.exit_code is not None else FAILED_START_EXIT_CODE
        if not self.restart.should_restart(code, self.restarts, stopped=self.stop_requested):
            self._finalize()
            return
        self._backoff = policy.next_backoff(self._backoff, self._run_seconds)
        self.status = RESTARTING
        self.events.info(
            "container_restart_scheduled", delay=self._backoff, restart_count=self.restart_count
        )
        self._restart_timer = self.loop.call_later(self._backoff, self._restart_now)

    def _restart_now(self) -> None:
        self._restart_timer = None
        self.restarts += 1
        try:
            self.runtime.delete(force=True)
        except errors.RuntimeError_ as exc:  # e.g. already gone after a failed create
            self.events.warning("container_delete_failed", error=str(exc))
        try:
            self._start_run()
        except errors.RuntimeError_ as exc:
            self.events.error("container_restart_failed", error=str(exc))
            self.status = STOPPED
            self.exit_code, self.exit_signal = FAILED_START_EXIT_CODE, None
            self.finished_at = time.time()
            self._run_seconds = 0.0
            self.error = str(exc)
            self._after_exit()
            return
        self.reap()  # it may be gone already

    def _finalize(self) -> None:
        self.status = STOPPED
        self.final = True
        self._close_pipes(read_rest=True)
        if self._writer is not None:
            try:
                self._writer.close()
            except OSError as exc:
                self.events.error("log_close_failed", error=str(exc))
        record = self.exit_record()
        try:
            statedir.write_json(statedir.path(self.bundle, statedir.EXIT), record)
        except OSError as exc:
            self.events.error("exit_file_failed", error=str(exc))
        self.events.info("container_finished", **record)
        if self.execs is not None:
            self.execs.abandon_all()
        self._notify("stopped")
        self.on_final(record)

    def _notify(self, event: str) -> None:
        """Answer the waiters that ``event`` (not-running / stopped) satisfies."""
        keep = []
        for condition, reply, timer in self._waiters:
            if condition == event or (event == "stopped" and condition == "not-running"):
                if timer is not None:
                    timer.cancel()
                reply(self.state())
            else:
                keep.append((condition, reply, timer))
        self._waiters = keep

    # requests --------------------------------------------------------------

    def exit_record(self) -> dict[str, object]:
        return {
            "exit_code": self.exit_code,
            "signal": self.exit_signal,
            "finished_at": self.finished_at,
            "oom_killed": self.oom_killed,
            "started_at": self.started_at,
            "restart_count": self.restart_count,
            "error": self.error,
        }

    def state(self) -> dict[str, object]:
        running = self.status in (RUNNING, CREATED)
        return {
            "id": self.container_id,
            "status": self.status,
            "pid": self.init_pid if running else None,
            "shim_pid": os.getpid(),
            "restart_policy": str(self.restart),
            "stop_requested": self.stop_requested,
            "final": self.final,
            "health": self.health.state() if self.health is not None else None,
            **self.exit_record(),
        }

    def wait(self, condition: str, timeout: float | None, reply: Reply) -> None:
        """Reply once the container is ``not-running`` (now or later) or ``stopped`` for good."""
        done = self.final if condition == "stopped" else self.status not in (RUNNING, CREATED)
        if done:
            reply(self.state())
            return
        entry: list[tuple[str, Reply, Timer | None]] = []

        def timed_out() -> None:
            self._waiters = [w for w in self._waiters if w is not entry[0]]
            reply({**self.state(), "timed_out": True})

        timer = self.loop.call_later(timeout, timed_out) if timeout is not None else None
        entry.append((condition, reply, timer))
        self._waiters.append(entry[0])

    def exec(
        self, request: dict[str, object], fds: list[int], on_exit: Reply
    ) -> tuple[dict[str, object], int | None]:
        """Start an exec'd process (:mod:`runtime.shim.execs`) in the running container."""
        if self.status != RUNNING:
            raise errors.FailedPrecondition(
                f"container {self.container_id} is not running: start it before exec"
            )
        if self.execs is None:
            from runtime.shim import execs

            self.execs = execs.Execs(self.container_id, self.bundle, self.runtime, self.events)
        return self.execs.start(request, fds, on_exit)

    def kill(self, sig: int, all_processes: bool = False) -> None:
        if self.status not in (RUNNING, CREATED) or self.init_pid is None:
            raise errors.FailedPrecondition(f"container {self.container_id} is not running")
        if all_processes:
            self.runtime.kill(sig, all_processes=True)
            return
        os.kill(self.init_pid, sig)  # our unreaped child: the pid cannot have been reused

    def stop(self, sig: int | None, timeout: float | None, reply: Reply) -> None:
        """Stop for good: signal, then SIGKILL after ``timeout``; reply with the final state."""
        self.stop_requested = True
        self.events.info("container_stop_requested", signal=sig, timeout=timeout)
        self._waiters.append(("stopped", reply, None))
        if self.final:
            self._notify("stopped")
            return
        if self.status == RESTARTING:
            if self._restart_timer is not None:
                self._restart_timer.cancel()
                self._restart_timer = None
            self._finalize()
            return
        if self.status not in (RUNNING, CREATED) or self.init_pid is None:
            return  # exited and draining: the final state follows shortly
        sig = self.stop_signal if sig is None else sig
        timeout = self.stop_timeout if timeout is None else timeout
        os.kill(self.init_pid, sig)
        if sig != signals.SIGKILL and self._stop_timer is None:
            self._stop_timer = self.loop.call_later(timeout, self._escalate)

    def _escalate(self) -> None:
        self._stop_timer = None
        if self.status in (RUNNING, CREATED) and self.init_pid is not None:
            self.events.warning("container_stop_escalated", signal="SIGKILL")
            os.kill(self.init_pid, signals.SIGKILL)
            if self.host_pid:
                self._kill_all("stop_escalated")

    def shutdown(self) -> None:
        """End the shim when its container is not running (and cancel a pending restart)."""
        if self.status in (RUNNING, CREATED):
            raise errors.FailedPrecondition(
                f"container {self.container_id} is running: stop it before shutting down its shim"
            )
        self.stop_requested = True
        if self.status == RESTARTING:
            if self._restart_timer is not None:
                self._restart_timer.cancel()
                self._restart_timer = None
            self._finalize()


def _shares_host_pid(bundle: str) -> bool:
    """Whether config.json asks for no pid namespace of its own (or joins another's)."""
    try:
        with open(statedir.path(bundle, "config.json"), "rb") as f:
            config = jsonio.loads(f.read())
    except (OSError, ValueError):
        return False
    linux = config.get("linux") if isinstance(config, dict) else None
    spaces = linux.get("namespaces") if isinstance(linux, dict) else None
    if not isinstance(spaces, list):
        return True
    for ns in spaces:
        if isinstance(ns, dict) and ns.get("type") == "pid":
            return bool(ns.get("path"))  # joining another's: it does not die with ours
    return True


def _parent_of(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    # the comm field may hold spaces and parentheses: split after the last ')'
    return int(stat[stat.rindex(b")") + 2 :].split()[1])
