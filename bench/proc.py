"""Commands, their timing, and daemons started (and stopped by pid) by the harness.

Every command gets stdin from /dev/null and its output captured; a command
that fails raises ``CommandFailed`` with the tail of its stderr, so a broken
peer shows up as "failed: …" in its column instead of as a fast sample.
Timing is ``time.perf_counter`` around ``subprocess.run``, the same for every
contestant, so the cost of fork/exec from the harness is in every number alike.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from typing import IO

__all__ = ["CommandFailed", "Daemon", "poll", "run", "timed"]


class CommandFailed(Exception):
    """A command exited non-zero (or timed out); the message names it and quotes stderr."""


def _describe(argv: Sequence[str]) -> str:
    text = " ".join(argv)
    return text if len(text) < 160 else text[:157] + "…"


def run(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: str | None = None,
    timeout: float = 300.0,
    check: bool = True,
    input_text: str | None = None,
    stdin: IO[bytes] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` (stdin: ``input_text``, else ``stdin``, else /dev/null); output captured."""
    try:
        proc = subprocess.run(
            list(argv),
            env=dict(env) if env is not None else None,
            cwd=cwd,
            input=input_text,
            stdin=None if input_text is not None else (stdin or subprocess.DEVNULL),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired as exc:
        raise CommandFailed(f"{_describe(argv)}: no exit within {timeout:.0f}s") from exc
    except FileNotFoundError as exc:
        raise CommandFailed(f"{_describe(argv)}: {(exc.strerror or str(exc)).lower()}") from exc
    if check and proc.returncode != 0:
        tail = proc.stderr.strip().splitlines()[-3:] or proc.stdout.strip().splitlines()[-3:]
        raise CommandFailed(
            f"{_describe(argv)} exited {proc.returncode}: {' / '.join(tail) or 'no output'}"
        )
    return proc


def timed(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: str | None = None,
    timeout: float = 300.0,
) -> float:
    """Seconds from spawning ``argv`` to its (successful) exit."""
    start = time.perf_counter()
    run(argv, env=env, cwd=cwd, timeout=timeout)
    return time.perf_counter() - start


def poll(predicate: Callable[[], bool], timeout: float, what: str, interval: float = 0.01) -> None:
    """Call ``predicate`` until it is true; raise ``CommandFailed`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise CommandFailed(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


class Daemon:
    """A long-running process of the harness, in its own session, stopped by its pid."""

    def __init__(
        self, argv: Sequence[str], *, log_path: str, env: Mapping[str, str] | None = None
    ) -> None:
        self.argv = list(argv)
        self.log_path = log_path
        with open(log_path, "ab") as log:
            self._proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=dict(env) if env is not None else None,
                start_new_session=True,
            )

    @property
    def pid(self) -> int:
        return self._proc.pid

    def alive(self) -> bool:
        return self._proc.poll() is None

    def log_tail(self, lines: int = 5) -> str:
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as f:
                return " / ".join(f.read().strip().splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, grace: float = 30.0) -> bool:
        """SIGTERM, wait up to ``grace`` seconds, then SIGKILL. True if it stopped in time."""
        if self._proc.poll() is not None:
            return True
        os.kill(self._proc.pid, signal.SIGTERM)
        try:
            self._proc.wait(grace)
            return True
        except subprocess.TimeoutExpired:
            os.kill(self._proc.pid, signal.SIGKILL)
            self._proc.wait(10)
            return False
