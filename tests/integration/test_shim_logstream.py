"""The shim's ``logs`` op: backlog with tail and since, follow across rotations, no line lost."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from runtime import errors
from runtime.shim import logs
from tests.integration.test_shim_support import ShimEnv, shim_env, wait_until

__all__ = ["shim_env"]

LINES = 1500


def _gated(c_rootfs: Path, count: int) -> list[str]:
    """A container that waits for /tmp/go (made by the test), then prints ``count`` lines."""
    return [
        "sh",
        "-c",
        "while [ ! -e /tmp/go ]; do sleep 0.01; done; "
        f"i=0; while [ $i -lt {count} ]; do echo line-$i; i=$((i+1)); done",
    ]


def test_backlog_with_tail_and_since(shim_env: ShimEnv) -> None:
    c = shim_env.container(["sh", "-c", "echo one; echo two >&2; echo three; exec sleep 100"])
    c.spawn()
    wait_until(lambda: len(c.logs()) == 3, what="three lines in the log")
    everything = list(c.client().logs())
    assert everything == c.logs()  # what the files hold, in their order
    # two pipes: the order between stdout and stderr is the order the shim read them
    assert sorted((r["stream"], r["log"]) for r in everything) == [
        ("stderr", "two\n"),
        ("stdout", "one\n"),
        ("stdout", "three\n"),
    ]
    assert list(c.client().logs(tail=2)) == everything[-2:]
    assert list(c.client().logs(tail=0)) == []
    last = everything[-1]["time"]
    assert list(c.client().logs(since=last)) == [r for r in everything if r["time"] >= last]
    future = logs.parse_time(last) / 1e9 + 3600
    assert list(c.client().logs(since=future)) == []
    with pytest.raises(errors.InvalidSpec, match="RFC 3339"):
        list(c.client().logs(since="yesterday"))


def test_follow_sees_every_line_across_rotations(shim_env: ShimEnv) -> None:
    c = shim_env.container(_gated(shim_env.rootfs, LINES))
    # ~1500 records of ~70 bytes rotate through ~25 files of 4 KiB; 64 are kept
    c.spawn(log_max_size=4096, log_max_files=64)
    followed: list[str] = []
    errors_seen: list[BaseException] = []

    def follow() -> None:
        try:
            for record in c.client().logs(follow=True):
                followed.append(record["log"])
        except BaseException as exc:  # reported by the test thread
            errors_seen.append(exc)

    reader = threading.Thread(target=follow)
    reader.start()
    try:
        wait_until(lambda: c.client().state()["status"] == "running", what="running")
        (shim_env.rootfs / "tmp" / "go").touch()
        c.wait_exit_file(30)
    finally:
        reader.join(30)
        (shim_env.rootfs / "tmp" / "go").unlink(missing_ok=True)
    assert not reader.is_alive() and not errors_seen, errors_seen
    expected = [f"line-{i}\n" for i in range(LINES)]
    assert followed == expected
    assert len(logs.log_files(str(c.log_path))) > 10  # it did rotate, many times
    assert [r["log"] for r in c.logs()] == expected  # and the files hold them all, in order


def test_follow_with_tail_zero_gets_only_new_lines(shim_env: ShimEnv) -> None:
    """The follow request goes out from the reader's thread, so the container
    keeps printing new lines until the reader has one: the stream must hold
    new lines only, never the old one."""
    c = shim_env.container(
        [
            "sh", "-c",
            "echo old; while [ ! -e /tmp/go ]; do sleep 0.01; done; "
            "while [ ! -e /tmp/stop ]; do echo new; sleep 0.01; done",
        ]
    )  # fmt: skip
    c.spawn()
    wait_until(lambda: c.logs(), what="the first line")
    stream = c.client().logs(tail=0, follow=True)
    got: list[str] = []
    reader = threading.Thread(target=lambda: got.extend(r["log"] for r in stream))
    reader.start()
    try:
        (shim_env.rootfs / "tmp" / "go").touch()
        wait_until(lambda: got, what="a new line through the follow")
        (shim_env.rootfs / "tmp" / "stop").touch()
        c.wait_exit_file()
    finally:
        (shim_env.rootfs / "tmp" / "stop").touch()
        reader.join(30)
        for name in ("go", "stop"):
            (shim_env.rootfs / "tmp" / name).unlink(missing_ok=True)
    assert got and set(got) == {"new\n"}


def test_logs_of_an_ended_container_need_no_follow(shim_env: ShimEnv) -> None:
    """A follow request that arrives after the end answers with the backlog and ends."""
    c = shim_env.container(["sh", "-c", "echo a; exec sleep 100"], name="ended")
    c.spawn(restart_policy="no")
    wait_until(lambda: c.logs(), what="a line")
    state = c.client().stop(timeout=1)
    assert state["final"] is True
    with pytest.raises(errors.Unavailable):  # the shim is gone: the engine reads the file
        list(c.client().logs(follow=True))
    assert [r["log"] for r in c.logs()] == ["a\n"]
