"""Write a container's output as docker json-file lines, with size-based rotation.

One JSON object per line, ``{"time": RFC3339Nano UTC, "stream": "stdout" |
"stderr", "log": "text\\n"}`` — the format of Docker's json-file driver, so
tools that read those files read ours. Design choices:

- The shim hands over raw chunks per stream; lines are cut at ``\\n``. A line
  longer than :data:`MAX_LINE` is written in pieces without a trailing newline
  (Docker cuts at 16 KiB too); at end of stream an unterminated last line is
  written as it is (the reader can tell it from the missing ``\\n``).
- All lines of one chunk get the same timestamp (the time it was read).
- Rotation by size: before a record would take the file past ``max_size``,
  ``log`` → ``log.1`` → ``log.2`` …, keeping at most ``max_files`` files in all
  (``max_files == 1`` truncates in place). A record is never split across files.
- Records of a chunk go to the kernel in one ``write`` on an ``O_APPEND`` fd,
  so readers see whole lines; :meth:`LogWriter.close` fsyncs what it wrote
  (nothing to sync when the container printed nothing: no fsync, ~1 ms on a
  disk-backed root), and the shim writes the exit file only after that.
- A write that fails (a full disk, a quota, an I/O error) never stops the
  container: its records are dropped and counted, a record cut short by the
  error is truncated away (the next one starts on a line of its own), the
  first failure and the recovery are reported through ``on_error``, and the
  shim goes on draining the container's pipes. Docker's json-file driver
  drops and logs the same way.
- ``on_records`` gets every batch of complete records as written (or as they
  would have been, if the disk refused them): the shim's live ``logs`` followers.

Stdlib only: runs inside the shim.
"""

from __future__ import annotations

import os
import time

from runtime.shim import jsonio, logs

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

MAX_LINE = 16 * 1024
STREAMS = ("stdout", "stderr")


class LogWriter:
    def __init__(
        self,
        path: str,
        max_size: int,
        max_files: int,
        *,
        on_records: Callable[[bytes], None] | None = None,
        on_error: Callable[[str, int], None] | None = None,
    ) -> None:
        self.path = path
        self.max_size = max(1, max_size)
        self.max_files = max(1, max_files)
        self.on_records = on_records
        #: called with ("failed", dropped so far) at the first failure, ("recovered", dropped)
        self.on_error = on_error
        self.dropped = 0  # records lost to write errors
        self.failing = False
        self._partial: dict[str, bytes] = {name: b"" for name in STREAMS}
        directory = os.path.dirname(path)
        if directory:
            os.makedirs(directory, exist_ok=True)
        self._fd = self._open()
        self._size = os.fstat(self._fd).st_size
        self._closed = False
        self._dirty = False  # written to since the last fsync

    def _open(self) -> int:
        return os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)

    def feed(self, stream: str, chunk: bytes) -> None:
        """Take a chunk read from ``stream``; write every complete line in it."""
        data = self._partial[stream] + chunk
        lines = data.split(b"\n")
        rest = lines.pop()
        pieces: list[bytes] = []
        for line in lines:
            while len(line) > MAX_LINE:
                pieces.append(line[:MAX_LINE])
                line = line[MAX_LINE:]
            pieces.append(line + b"\n")
        while len(rest) > MAX_LINE:
            pieces.append(rest[:MAX_LINE])
            rest = rest[MAX_LINE:]
        self._partial[stream] = rest
        self._write(stream, pieces)

    def flush_partial(self, stream: str) -> None:
        """End of ``stream``: write its unterminated last line, if any."""
        rest, self._partial[stream] = self._partial[stream], b""
        if rest:
            self._write(stream, [rest])

    def _write(self, stream: str, pieces: list[bytes]) -> None:
        if not pieces:
            return
        stamp = logs.format_time(time.time_ns())
        head = f'{{"time":"{stamp}","stream":"{stream}","log":'
        pending = bytearray()
        for piece in pieces:
            text = jsonio.quote(piece.decode("utf-8", "replace"))
            record = (head + text + "}\n").encode()
            used = self._size + len(pending)
            if used and used + len(record) > self.max_size:
                self._flush(pending)
                pending.clear()
                self._rotate()
            pending += record
        self._flush(pending)

    def _flush(self, data: bytearray) -> None:
        if not data:
            return
        if self.on_records is not None:
            self.on_records(bytes(data))
        if self._fd < 0:  # a rotation failed to reopen the file: try again now
            try:
                self._fd = self._open()
                self._size = os.fstat(self._fd).st_size
            except OSError as exc:
                self._failed(data, exc)
                return
        good = self._size
        view = memoryview(data)
        self._dirty = True
        try:
            while view:
                n = os.write(self._fd, view)
                self._size += n
                view = view[n:]
        except OSError as exc:
            try:  # no half record in the file: the next one starts a line
                os.ftruncate(self._fd, good)
                self._size = good
            except OSError:
                self._size = os.fstat(self._fd).st_size
            self._failed(data, exc)
            return
        if self.failing:
            self.failing = False
            if self.on_error is not None:
                self.on_error("recovered", self.dropped)

    def _failed(self, data: bytearray | bytes, exc: OSError) -> None:
        self.dropped += data.count(b"\n")
        if not self.failing:
            self.failing = True
            if self.on_error is not None:
                self.on_error(f"failed: {exc.strerror or exc}", self.dropped)

    def _rotate(self) -> None:
        if self._fd < 0:
            return  # the file could not be reopened: _flush tries again
        if self.max_files <= 1:
            try:
                os.ftruncate(self._fd, 0)
                self._size = 0
            except OSError:
                pass
            return
        os.close(self._fd)
        self._fd = -1
        self._dirty = False  # the rotated file is as durable as a closed log (not synced)
        for index in range(self.max_files - 1, 0, -1):
            source = self.path if index == 1 else f"{self.path}.{index - 1}"
            try:
                os.replace(source, f"{self.path}.{index}")
            except OSError:
                pass  # missing (fewer files so far), or the disk refuses: write on
        try:
            self._fd = self._open()
            self._size = os.fstat(self._fd).st_size
        except OSError:
            self._fd = -1

    def close(self) -> None:
        """Write what is left of every stream, fsync and close (idempotent)."""
        if self._closed:
            return
        for stream in STREAMS:
            self.flush_partial(stream)
        self._closed = True
        if self._fd < 0:
            return
        try:
            if self._dirty:
                os.fsync(self._fd)
        finally:
            os.close(self._fd)
            self._fd = -1


def remove_files(path: str, max_files: int) -> None:
    """Remove a log and its rotated files (used when spawning fails)."""
    for name in [path] + [f"{path}.{i}" for i in range(1, max(1, max_files))]:
        try:
            os.unlink(name)
        except FileNotFoundError:
            pass
