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
  so readers see whole lines; :meth:`LogWriter.close` fsyncs, and the shim
  writes the exit file only after that.

Stdlib only: runs inside the shim.
"""

from __future__ import annotations

import os
import time

from runtime.shim import jsonio, logs

MAX_LINE = 16 * 1024
STREAMS = ("stdout", "stderr")


class LogWriter:
    def __init__(self, path: str, max_size: int, max_files: int) -> None:
        self.path = path
        self.max_size = max(1, max_size)
        self.max_files = max(1, max_files)
        self._partial: dict[str, bytes] = {name: b"" for name in STREAMS}
        directory = os.path.dirname(path)
        if directory:
            os.makedirs(directory, exist_ok=True)
        self._fd = self._open()
        self._size = os.fstat(self._fd).st_size

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
        view = memoryview(data)
        while view:
            n = os.write(self._fd, view)
            self._size += n
            view = view[n:]

    def _rotate(self) -> None:
        if self.max_files <= 1:
            os.ftruncate(self._fd, 0)
            self._size = 0
            return
        os.close(self._fd)
        for index in range(self.max_files - 1, 0, -1):
            source = self.path if index == 1 else f"{self.path}.{index - 1}"
            try:
                os.replace(source, f"{self.path}.{index}")
            except FileNotFoundError:
                pass
        self._fd = self._open()
        self._size = 0

    def close(self) -> None:
        """Write what is left of every stream, fsync and close (idempotent)."""
        if self._fd < 0:
            return
        for stream in STREAMS:
            self.flush_partial(stream)
        try:
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
