"""The shim's own event log: ``<bundle>/shim.log``, one JSON object per line.

``{"time": RFC3339Nano, "level": "info", "event": "container_started", ...}``.
The shim has no stdout or stderr (they are /dev/null once it is detached), so
this file is where it says what it did and why it gave up. Writes are single
``write`` calls on an ``O_APPEND`` fd and never raise: a full disk must not
take the container's keeper down. No structlog here: the shim is stdlib only.
"""

from __future__ import annotations

import os
import time

from runtime.shim import jsonio, logs


class EventLog:
    def __init__(self, path: str | None) -> None:
        self.path = path
        self._fd = -1
        if path is not None:
            self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)

    def log(self, level: str, event: str, **fields: object) -> None:
        if self._fd < 0:
            return
        record: dict[str, object] = {
            "time": logs.format_time(time.time_ns()),
            "level": level,
            "event": event,
        }
        record.update(fields)
        try:
            os.write(self._fd, jsonio.dumps(record, default=str).encode() + b"\n")
        except OSError:
            pass

    def info(self, event: str, **fields: object) -> None:
        self.log("info", event, **fields)

    def warning(self, event: str, **fields: object) -> None:
        self.log("warning", event, **fields)

    def error(self, event: str, **fields: object) -> None:
        self.log("error", event, **fields)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
