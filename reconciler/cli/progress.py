"""Pull and push progress on the terminal, or as JSON events.

``Progress(mode)`` is a ``runtime.client.ProgressCallback``. Modes:

* ``tty``: one line per blob, redrawn in place (ANSI cursor-up), with bytes
  done / total and the rate since the blob started; for an interactive stderr.
* ``plain``: a line when a blob starts and when it ends (with its size, time
  and mean rate); for logs and CI, where redrawing makes noise.
* ``json``: every event as one JSON object per line on stdout (``action``,
  ``id``, ``current``, ``total``, ``detail``, ``time``), for programs.
* ``quiet``: nothing.

Events come from the engine's worker threads: everything is under a lock.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from typing import TextIO

from runtime import client

VERBS = {
    "downloading": "downloading",
    "downloaded": "downloaded",
    "uploading": "uploading",
    "uploaded": "pushed",
    "exists": "already exists",
    "mounted": "mounted",
    "unpacking": "unpacking",
}


def human_bytes(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if abs(n) < 1000 or unit == "GB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1000
    return f"{n:.1f} GB"  # pragma: no cover


def short(digest: str) -> str:
    return digest.split(":", 1)[-1][:12]


class Progress:
    def __init__(
        self,
        mode: str,
        *,
        err: TextIO | None = None,
        out: TextIO | None = None,
    ) -> None:
        self.mode = mode
        self.err = err or sys.stderr
        self.out = out or sys.stdout
        self._lock = threading.Lock()
        self._order: list[str] = []
        self._lines: dict[str, str] = {}
        self._started: dict[str, float] = {}
        self._drawn = 0

    @classmethod
    def choose(cls, requested: str) -> Progress:
        """``auto`` is ``tty`` on an interactive stderr, else ``plain``."""
        if requested == "auto":
            requested = "tty" if sys.stderr.isatty() else "plain"
        return cls(requested)

    def __call__(self, event: client.ProgressEvent) -> None:
        with self._lock:
            if self.mode == "json":
                doc = {
                    "action": event.action,
                    "id": event.id,
                    "current": event.current,
                    "total": event.total,
                    "detail": event.detail,
                    "time": time.time(),
                }
                self.out.write(json.dumps(doc) + "\n")
                self.out.flush()
            elif self.mode in ("tty", "plain"):
                self._human(event)

    def _rate(self, blob: str, current: int) -> str:
        elapsed = time.monotonic() - self._started.get(blob, time.monotonic())
        if not current:
            return ""
        return f"{human_bytes(current / max(elapsed, 0.001))}/s"

    def _human(self, event: client.ProgressEvent) -> None:
        if event.action == "resolved":
            self.err.write(f"{event.id}: resolved to {event.detail}\n")
            self.err.flush()
            return
        if event.action == "done":
            self._redraw()
            return
        blob = event.id
        if blob not in self._started:
            self._started[blob] = time.monotonic()
            self._order.append(blob)
        verb = VERBS.get(event.action, event.action)
        total = human_bytes(event.total) if event.total is not None else "?"
        if event.action in ("downloading", "uploading"):
            rate = self._rate(blob, event.current)
            text = f"{verb} {human_bytes(event.current)} / {total}  {rate}"
        elif event.action in ("downloaded", "uploaded"):
            took = time.monotonic() - self._started[blob]
            text = f"{verb} {total} in {took:.1f} s  {self._rate(blob, event.current)}"
        else:
            text = f"{verb} ({total})" if event.total is not None else verb
        self._lines[blob] = text.rstrip()
        if self.mode == "tty":
            self._redraw()
        elif event.action not in ("downloading", "uploading") or event.current == 0:
            self.err.write(f"{short(blob)}: {self._lines[blob]}\n")
            self.err.flush()

    def _redraw(self) -> None:
        if self.mode != "tty":
            return
        if self._drawn:
            self.err.write(f"\x1b[{self._drawn}F")
        for blob in self._order:
            self.err.write(f"\x1b[2K{short(blob)}: {self._lines.get(blob, '')}\n")
        self._drawn = len(self._order)
        self.err.flush()
