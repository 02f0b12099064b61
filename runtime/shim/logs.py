"""Read a container's json-file logs, rotated files in order, with tail, since and follow.

The shim writes them (:mod:`runtime.shim.logwriter`); the engine reads them with
:func:`read_logs`, with no shim involved, so ``logs`` works for a container
whose shim has exited. Rotated files are ``log.N`` (oldest) … ``log.1``, then
``log``; all of them are opened at once, first thing, so a rotation while
reading does not lose or repeat a file.

``follow`` polls (every ``poll_interval`` seconds) rather than watching with
inotify: stdlib only, and a log reader is not a hot path. It notices a
rotation when ``log`` has another inode than the file it reads, drains the
old file, then reads the files that came after it. It ends when
``exit_path`` (the shim's ``exit`` file, which is written only after the logs
are drained) exists and everything is read, or when ``should_stop()`` is true.

Times are RFC 3339 with nanoseconds in UTC (:func:`format_time`), the shape
Docker writes. This module is imported by the shim for :func:`format_time`,
so it imports nothing beyond ``os``, ``time`` and :mod:`runtime.shim.jsonio`.
"""

from __future__ import annotations

import os
import time

from runtime.shim import jsonio

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

BLOCK = 64 * 1024
BATCH = 256 * 1024


def format_time(ns: int) -> str:
    """``2026-11-28T06:50:35.405656262Z`` for a ``time.time_ns()`` value."""
    seconds, frac = divmod(ns, 1_000_000_000)
    t = time.gmtime(seconds)
    return (
        f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}"
        f"T{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}.{frac:09d}Z"
    )


def parse_time(text: str) -> int:
    """Nanoseconds since the epoch of an RFC 3339 time (any fraction, ``Z`` or offset)."""
    import calendar

    try:
        date, clock = text[:10], text[11:19]
        if text[10] not in "Tt ":
            raise ValueError(text)
        year, month, day = (int(x) for x in date.split("-"))
        hour, minute, second = (int(x) for x in clock.split(":"))
        rest = text[19:]
        frac = 0
        if rest.startswith("."):
            digits = len(rest) - len(rest[1:].lstrip("0123456789"))
            frac = int((rest[1:digits] + "000000000")[:9])
            rest = rest[digits:]
        offset = 0
        if rest not in ("Z", "z"):
            sign = 1 if rest[0] == "+" else -1 if rest[0] == "-" else 0
            hh, mm = rest[1:].split(":")
            if not sign:
                raise ValueError(text)
            offset = sign * (int(hh) * 3600 + int(mm) * 60)
        seconds = calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0)) - offset
    except (ValueError, IndexError):
        raise ValueError(f"time {text!r} is not RFC 3339 (e.g. 2026-11-28T06:50:35Z)") from None
    return seconds * 1_000_000_000 + frac


def log_files(log_path: str) -> list[str]:
    """The existing files of a log, oldest first: ``log.N`` … ``log.1``, ``log``."""
    rotated = []
    index = 1
    while os.path.exists(f"{log_path}.{index}"):
        rotated.append(f"{log_path}.{index}")
        index += 1
    names = rotated[::-1]
    if os.path.exists(log_path):
        names.append(log_path)
    return names


class _Cursor:
    """An open log file and how far it has been read (complete lines only).

    ``end`` bounds what is read (a snapshot of the file's size), or None.
    """

    def __init__(self, fd: int, end: int | None = None) -> None:
        self.fd = fd
        self.ino = os.fstat(fd).st_ino
        self.offset = 0
        self.end = end

    def _size(self) -> int:
        size = os.fstat(self.fd).st_size
        return size if self.end is None else min(size, self.end)

    def read_lines(self, max_bytes: int | None = None) -> list[bytes]:
        """The complete lines from the offset on (about ``max_bytes`` of them, if given)."""
        if os.fstat(self.fd).st_size < self.offset:
            self.offset = 0  # truncated in place (max_files == 1)
        chunks: list[bytes] = []
        total = 0
        while max_bytes is None or total < max_bytes or not any(b"\n" in c for c in chunks):
            want = BLOCK if self.end is None else min(BLOCK, self.end - self.offset)
            data = os.pread(self.fd, want, self.offset) if want > 0 else b""
            if not data:
                break
            chunks.append(data)
            total += len(data)
            self.offset += len(data)
        data = b"".join(chunks)
        cut = data.rfind(b"\n") + 1
        # leave an unterminated last line for the next read
        self.offset -= len(data) - cut
        return [line for line in data[:cut].split(b"\n") if line]

    def last_lines(self, n: int) -> list[bytes]:
        """The last ``n`` complete lines; moves the offset past the last of them."""
        end = self._size()
        data = b""
        pos = end
        while pos > 0 and data.count(b"\n") <= n:
            start = max(0, pos - BLOCK)
            data = os.pread(self.fd, pos - start, start) + data
            pos = start
        lines = data.split(b"\n")
        partial = lines.pop()
        self.offset = end - len(partial)
        if pos > 0:
            lines = lines[1:]
        lines = [line for line in lines if line]
        return lines[-n:] if n else []

    def close(self) -> None:
        os.close(self.fd)


def _open_chain(log_path: str, *, bounded: bool = False) -> list[_Cursor]:
    cursors: list[_Cursor] = []
    seen: set[int] = set()
    for name in log_files(log_path):
        try:
            fd = os.open(name, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            continue  # rotated away between listing and opening
        cursor = _Cursor(fd, os.fstat(fd).st_size if bounded else None)
        if cursor.ino in seen:
            cursor.close()
            continue
        seen.add(cursor.ino)
        cursors.append(cursor)
    return cursors


def _decode(line: bytes, since_ns: int | None) -> dict[str, str] | None:
    try:
        record = jsonio.loads(line)
    except ValueError:
        return None
    if not isinstance(record, dict) or not isinstance(record.get("log"), str):
        return None
    if since_ns is not None:
        try:
            if parse_time(str(record.get("time", ""))) < since_ns:
                return None
        except ValueError:
            return None
    return record


def _since_ns(since: float | str | None) -> int | None:
    if since is None:
        return None
    if isinstance(since, str):
        return parse_time(since)
    return int(since * 1_000_000_000)


def read_logs(
    log_path: str,
    tail: int | None = None,
    follow: bool = False,
    since: float | str | None = None,
    should_stop: Callable[[], bool] | None = None,
    *,
    exit_path: str | None = None,
    poll_interval: float = 0.1,
) -> Iterator[dict[str, str]]:
    """Yield the records ``{"time", "stream", "log"}`` of a log, oldest first.

    ``tail``: only the last N records (0: none, then follow). ``since``: unix
    seconds or an RFC 3339 time; older records are skipped. ``follow``: keep
    reading new records until ``exit_path`` exists (and all is read) or
    ``should_stop()`` returns true; without either it follows forever.
    Malformed lines are skipped. Missing files are an empty log.
    """
    since_ns = _since_ns(since)
    cursors = _open_chain(log_path)
    try:
        if tail is not None:
            picked: list[bytes] = []
            for cursor in reversed(cursors):
                if len(picked) >= tail:
                    cursor.offset = cursor._size()
                    continue
                picked[:0] = cursor.last_lines(tail - len(picked))
            for line in picked:
                record = _decode(line, since_ns)
                if record is not None:
                    yield record
        else:
            for cursor in cursors:
                for line in cursor.read_lines():
                    record = _decode(line, since_ns)
                    if record is not None:
                        yield record
        if not follow:
            return
        # the newest file opened, even if it has been rotated since: what follows it is new
        current = cursors[-1] if cursors else None
        yield from _follow(
            log_path, current, cursors, since_ns, should_stop, exit_path, poll_interval
        )
    finally:
        for cursor in cursors:
            try:
                cursor.close()
            except OSError:
                pass


def backlog(
    log_path: str, tail: int | None = None, since: float | str | None = None
) -> Iterator[list[bytes]]:
    """The log's record lines as they are *now*, in batches, for the shim's ``logs`` op.

    Every file is opened and its size taken at the first ``next()``: lines
    written after that are not read (the shim sends those live), so a reader
    sees each line once whatever rotation happens meanwhile. Lines keep their
    newline; ``tail`` and ``since`` as in :func:`read_logs`.
    """
    since_ns = _since_ns(since)
    cursors = _open_chain(log_path, bounded=True)
    try:
        if tail is not None:
            picked: list[bytes] = []
            for cursor in reversed(cursors):
                if len(picked) >= tail:
                    break
                picked[:0] = cursor.last_lines(tail - len(picked))
            lines = [line + b"\n" for line in picked if _decode(line, since_ns) is not None]
            if lines:
                yield lines
            return
        for cursor in cursors:
            while True:
                before = cursor.offset
                lines = cursor.read_lines(BATCH)
                kept = [line + b"\n" for line in lines if _decode(line, since_ns) is not None]
                if kept:
                    yield kept
                if cursor.offset == before:
                    break
    finally:
        for cursor in cursors:
            try:
                cursor.close()
            except OSError:
                pass


def _same_file(cursor: _Cursor, name: str) -> bool:
    try:
        return os.stat(name).st_ino == cursor.ino
    except FileNotFoundError:
        return False


def _follow(
    log_path: str,
    current: _Cursor | None,
    opened: list[_Cursor],
    since_ns: int | None,
    should_stop: Callable[[], bool] | None,
    exit_path: str | None,
    poll_interval: float,
) -> Iterator[dict[str, str]]:
    while True:
        # Look for the end first: the exit file is written after the last log line.
        ended = exit_path is not None and os.path.exists(exit_path)
        if current is not None:
            for line in current.read_lines():
                record = _decode(line, since_ns)
                if record is not None:
                    yield record
        if current is None or not _same_file(current, log_path):
            newer = _newer_files(log_path, current)
            if newer:
                if current is not None:  # written just before the rotation
                    for line in current.read_lines():
                        record = _decode(line, since_ns)
                        if record is not None:
                            yield record
                opened.extend(newer)
                for cursor in newer[:-1]:
                    for line in cursor.read_lines():
                        record = _decode(line, since_ns)
                        if record is not None:
                            yield record
                current = newer[-1]
                continue
        if ended or (should_stop is not None and should_stop()):
            return
        time.sleep(poll_interval)


def _newer_files(log_path: str, current: _Cursor | None) -> list[_Cursor]:
    """The files of the log that came after ``current`` (all of them if it is gone)."""
    chain = _open_chain(log_path)
    if current is not None:
        for index, cursor in enumerate(chain):
            if cursor.ino == current.ino:
                for old in chain[: index + 1]:
                    old.close()
                return chain[index + 1 :]
    return chain
