"""Health checks, run by the shim (so they go on while pyreconcile is down).

The engine writes the container's check into ``<bundle>/health.json``
(``test``, ``interval``, ``timeout``, ``retries``, ``startPeriod``,
``startInterval``, in seconds); the shim runs it as an exec in the container:
``["CMD", args…]`` as given, ``["CMD-SHELL", cmd]`` through ``/bin/sh -c``.
Docker's rules:

- status ``starting`` until the first success, then ``healthy``; ``retries``
  failures in a row make it ``unhealthy`` (a success makes it healthy again);
- during ``startPeriod`` a failure does not count, unless the container was
  healthy already; checks then come every ``startInterval``, later every
  ``interval``;
- a check that runs longer than ``timeout`` is killed and counts as a failure;
- the last five results are kept (start, end, exit code, first 4 KiB of output).

Each run of the container starts the checks afresh; a stopped container has
no health. Stdlib only (runs inside the shim).
"""

from __future__ import annotations

import os
import time

from runtime.shim import jsonio, signals, statedir

TYPE_CHECKING = False
if TYPE_CHECKING:
    from runtime.shim.events import EventLog
    from runtime.shim.loop import Loop, Timer
    from runtime.shim.supervisor import Supervisor

FILE = "health.json"
STARTING = "starting"
HEALTHY = "healthy"
UNHEALTHY = "unhealthy"
KEEP_RESULTS = 5
MAX_OUTPUT = 4096
TIMED_OUT_EXIT_CODE = -1


def load(bundle: str) -> dict[str, object] | None:
    """The check of this bundle, or None (no ``health.json``, or a ``NONE`` test)."""
    try:
        with open(statedir.path(bundle, FILE), "rb") as f:
            config = jsonio.loads(f.read())
    except FileNotFoundError:
        return None
    if not isinstance(config, dict):
        return None
    test = config.get("test")
    if not isinstance(test, list) or not test or test[0] == "NONE":
        return None
    return config


def command(test: list[object]) -> list[str]:
    if test[0] == "CMD-SHELL":
        return ["/bin/sh", "-c", str(test[1])]
    return [str(a) for a in test[1:]]


def _seconds(config: dict[str, object], key: str, default: float) -> float:
    value = config.get(key)
    return float(value) if isinstance(value, int | float) and value >= 0 else default


class Health:
    """The health of one container's current run."""

    def __init__(
        self, config: dict[str, object], sup: Supervisor, loop: Loop, events: EventLog
    ) -> None:
        test = config["test"]
        assert isinstance(test, list)
        self.args = command(test)
        self.interval = _seconds(config, "interval", 30.0) or 30.0
        self.timeout = _seconds(config, "timeout", 30.0) or 30.0
        retries = config.get("retries")
        self.retries = retries if isinstance(retries, int) and retries > 0 else 3
        self.start_period = _seconds(config, "startPeriod", 0.0)
        self.start_interval = _seconds(config, "startInterval", 5.0) or 5.0
        self.sup = sup
        self.loop = loop
        self.events = events
        self.status: str | None = None
        self.failing = 0
        self.results: list[dict[str, object]] = []
        self._started = 0.0
        self._timer: Timer | None = None
        self._running: dict[str, object] | None = None  # the check in flight

    # the container's runs ------------------------------------------------

    def run_started(self) -> None:
        self.run_ended()
        self.status = STARTING
        self.failing = 0
        self._started = time.monotonic()
        self._schedule()

    def run_ended(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        check = self._running
        if check is not None:
            self._running = None
            self._close_output(check)
            timer = check.get("timer")
            if timer is not None:
                timer.cancel()  # type: ignore[attr-defined]
        self.status = None

    def _in_start_period(self) -> bool:
        return time.monotonic() - self._started < self.start_period

    def _schedule(self) -> None:
        delay = self.start_interval if self._in_start_period() else self.interval
        self._timer = self.loop.call_later(delay, self._check)

    # one check -------------------------------------------------------------

    def _check(self) -> None:
        self._timer = None
        if self.status is None or self._running is not None:
            return
        read_fd, write_fd = os.pipe2(os.O_CLOEXEC)
        null = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
        check: dict[str, object] = {
            "start": time.time(),
            "fd": read_fd,
            "output": b"",
            "timed_out": False,
        }
        self._running = check
        try:
            started, _ = self.sup.exec(
                {"args": self.args}, [null, write_fd, write_fd], lambda msg: self._done(check, msg)
            )
        except Exception as exc:
            self._running = None
            os.close(read_fd)
            self._record(check, 126, f"the check could not start: {exc}")
            return
        finally:
            os.close(null)
            os.close(write_fd)
        check["pid"] = started.get("pid")
        os.set_blocking(read_fd, False)
        self.loop.add_reader(read_fd, lambda: self._read(check))
        check["timer"] = self.loop.call_later(self.timeout, lambda: self._timed_out(check))

    def _read(self, check: dict[str, object]) -> None:
        fd = check.get("fd")
        if not isinstance(fd, int):
            return
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._close_output(check)
            return
        output = check["output"]
        assert isinstance(output, bytes)
        if len(output) < MAX_OUTPUT:
            check["output"] = (output + data)[:MAX_OUTPUT]

    def _close_output(self, check: dict[str, object]) -> None:
        fd = check.get("fd")
        if isinstance(fd, int):
            self.loop.remove_reader(fd)
            os.close(fd)
            check["fd"] = None

    def _timed_out(self, check: dict[str, object]) -> None:
        check["timer"] = None
        pid = check.get("pid")
        if self._running is check and isinstance(pid, int):
            check["timed_out"] = True
            try:
                os.kill(pid, signals.SIGKILL)  # the shim's child until reaped
            except ProcessLookupError:
                pass

    def _done(self, check: dict[str, object], message: dict[str, object]) -> None:
        if self._running is not check:
            return  # the run ended meanwhile
        self._running = None
        timer = check.get("timer")
        if timer is not None:
            timer.cancel()  # type: ignore[attr-defined]
        self._read(check)
        self._close_output(check)
        code = message.get("exit_code")
        exit_code = code if isinstance(code, int) else 1
        output = check["output"]
        assert isinstance(output, bytes)
        text = output.decode(errors="replace")
        if check["timed_out"]:
            exit_code = TIMED_OUT_EXIT_CODE
            text = f"the check timed out after {self.timeout:g}s\n" + text
        self._record(check, exit_code, text)

    def _record(self, check: dict[str, object], exit_code: int, output: str) -> None:
        self.results.append(
            {"start": check["start"], "end": time.time(), "exitCode": exit_code, "output": output}
        )
        del self.results[:-KEEP_RESULTS]
        before = self.status
        if exit_code == 0:
            self.failing = 0
            self.status = HEALTHY
        elif not (self._in_start_period() and before != HEALTHY):
            self.failing += 1
            if self.failing >= self.retries:
                self.status = UNHEALTHY
        if self.status != before:
            self.events.info("health_changed", status=self.status, failing=self.failing)
        if self.status is not None:
            self._schedule()

    def state(self) -> dict[str, object] | None:
        if self.status is None:
            return None
        return {"status": self.status, "failingStreak": self.failing, "log": list(self.results)}
