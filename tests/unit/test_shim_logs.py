"""json-file logs without processes: the writer's framing and rotation, the reader."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from runtime.shim import logs, logwriter


def _records(path: Path) -> list[dict[str, str]]:
    return list(logs.read_logs(str(path)))


def test_lines_partial_lines_and_streams(tmp_path: Path) -> None:
    path = tmp_path / "c.log"
    w = logwriter.LogWriter(str(path), 1 << 20, 3)
    w.feed("stdout", b"one\ntw")
    w.feed("stderr", b"err")
    w.feed("stdout", b"o\nthr")
    w.feed("stderr", b"or\n")
    w.close()  # flushes the unterminated "thr"
    got = [(r["stream"], r["log"]) for r in _records(path)]
    assert got == [
        ("stdout", "one\n"),
        ("stdout", "two\n"),
        ("stderr", "error\n"),
        ("stdout", "thr"),
    ]
    raw = path.read_text().splitlines()
    first = json.loads(raw[0])
    assert list(first) == ["time", "stream", "log"]
    assert logs.parse_time(first["time"]) <= time.time_ns()


def test_long_lines_are_cut_and_bad_utf8_replaced(tmp_path: Path) -> None:
    path = tmp_path / "c.log"
    w = logwriter.LogWriter(str(path), 1 << 22, 3)
    w.feed("stdout", b"x" * (logwriter.MAX_LINE * 2 + 10) + b"\n" + b"\xff\xfeok\n")
    w.close()
    got = [r["log"] for r in _records(path)]
    assert got == [
        "x" * logwriter.MAX_LINE,
        "x" * logwriter.MAX_LINE,
        "x" * 10 + "\n",
        "\ufffd\ufffdok\n",
    ]


def test_rotation_by_size_keeps_max_files(tmp_path: Path) -> None:
    path = tmp_path / "c.log"
    w = logwriter.LogWriter(str(path), 300, 3)
    for i in range(40):
        w.feed("stdout", f"line {i:03d}\n".encode())
    w.close()
    assert logs.log_files(str(path)) == [f"{path}.2", f"{path}.1", str(path)]
    assert not Path(f"{path}.3").exists()
    assert all(os.path.getsize(p) <= 300 for p in logs.log_files(str(path)))
    got = [r["log"] for r in _records(path)]
    first = int(got[0].split()[1])
    assert got == [f"line {i:03d}\n" for i in range(first, 40)]
    assert [r["log"] for r in logs.read_logs(str(path), tail=5)] == [
        f"line {i:03d}\n" for i in range(35, 40)
    ]
    # tail across files
    assert [r["log"] for r in logs.read_logs(str(path), tail=len(got) - 1)] == got[1:]
    assert list(logs.read_logs(str(path), tail=0)) == []
    assert [r["log"] for r in logs.read_logs(str(path), tail=10_000)] == got


def test_one_file_truncates_in_place(tmp_path: Path) -> None:
    path = tmp_path / "c.log"
    w = logwriter.LogWriter(str(path), 200, 1)
    for i in range(20):
        w.feed("stdout", f"line {i:03d}\n".encode())
    w.close()
    assert logs.log_files(str(path)) == [str(path)]
    assert os.path.getsize(path) <= 200
    assert _records(path)[-1]["log"] == "line 019\n"


def test_a_record_larger_than_max_size_gets_a_file_of_its_own(tmp_path: Path) -> None:
    path = tmp_path / "c.log"
    w = logwriter.LogWriter(str(path), 50, 2)
    w.feed("stdout", b"a" * 100 + b"\n")
    w.feed("stdout", b"b\n")
    w.close()
    assert [r["log"] for r in _records(path)] == ["a" * 100 + "\n", "b\n"]


def test_reader_skips_malformed_lines_and_a_missing_log_is_empty(tmp_path: Path) -> None:
    path = tmp_path / "c.log"
    assert list(logs.read_logs(str(path))) == []
    assert list(logs.read_logs(str(path), follow=True, should_stop=lambda: True)) == []
    path.write_text(
        '{"time":"2026-01-01T00:00:00Z","stream":"stdout","log":"a\\n"}\n'
        "garbage\n"
        '{"log": 5}\n'
        '{"time":"2026-01-01T00:00:01Z","stream":"stdout","log":"b\\n"}\n'
        '{"time":"2026-01-01T00:00:02Z","stream":"stdout","log":"half'
    )
    assert [r["log"] for r in _records(path)] == ["a\n", "b\n"]
    assert [r["log"] for r in logs.read_logs(str(path), since="2026-01-01T00:00:01Z")] == ["b\n"]


def test_follow_across_rotations_until_the_exit_file(tmp_path: Path) -> None:
    path = tmp_path / "c.log"
    exit_path = tmp_path / "exit"
    w = logwriter.LogWriter(str(path), 120, 20)  # one record per file: many rotations
    w.feed("stdout", b"first\n")
    reader = logs.read_logs(str(path), follow=True, exit_path=str(exit_path), poll_interval=0.001)
    assert next(reader)["log"] == "first\n"
    for i in range(12):  # several rotations while the reader waits
        w.feed("stdout", f"n{i}\n".encode())
    w.close()
    exit_path.write_text("{}")
    assert [r["log"] for r in reader] == [f"n{i}\n" for i in range(12)]


def test_follow_stops_on_request(tmp_path: Path) -> None:
    path = tmp_path / "c.log"
    w = logwriter.LogWriter(str(path), 1 << 20, 2)
    w.feed("stdout", b"a\n")
    calls = []

    def should_stop() -> bool:
        calls.append(1)
        if len(calls) == 2:
            w.feed("stdout", b"late\n")
        return len(calls) >= 3

    got = [r["log"] for r in logs.read_logs(str(path), follow=True, should_stop=should_stop,
                                            poll_interval=0.001)]  # fmt: skip
    assert got == ["a\n", "late\n"]
    w.close()


@pytest.mark.parametrize(
    ("text", "ns"),
    [
        ("1970-01-01T00:00:00Z", 0),
        ("1970-01-01T00:00:01.5Z", 1_500_000_000),
        ("2026-11-28T06:50:35.405656262Z", 1795848635_405656262),
        ("2026-11-28T07:50:35.405656262+01:00", 1795848635_405656262),
        ("2026-11-28T05:50:35.405656262-01:00", 1795848635_405656262),
    ],
)
def test_times(text: str, ns: int) -> None:
    assert logs.parse_time(text) == ns


def test_format_time_round_trips() -> None:
    now = time.time_ns()
    text = logs.format_time(now)
    assert text.endswith("Z") and len(text) == 30
    assert logs.parse_time(text) == now
    with pytest.raises(ValueError, match="RFC 3339"):
        logs.parse_time("yesterday")
