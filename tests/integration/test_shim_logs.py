"""Container logs through a real shim: rotation, tail, follow, partial lines."""

from __future__ import annotations

import os

from runtime.shim import logs, statedir
from tests.integration.test_shim_support import ShimEnv, shim_env, wait_until

__all__ = ["shim_env"]


def test_rotation_keeps_at_most_max_files_of_max_size(shim_env: ShimEnv) -> None:
    script = "i=0; while [ $i -lt 300 ]; do echo line-$i; i=$((i+1)); done"
    c = shim_env.container(["sh", "-c", script])
    c.spawn(log_max_size=2048, log_max_files=3)
    c.wait_exit_file()
    path = str(c.log_path)
    assert logs.log_files(path) == [f"{path}.2", f"{path}.1", path]
    assert not os.path.exists(f"{path}.3")
    for name in logs.log_files(path):
        assert 0 < os.path.getsize(name) <= 2048
    lines = [e["log"] for e in c.logs()]
    # the newest lines survive, in order, without a gap
    assert lines[-1] == "line-299\n"
    first = int(lines[0].strip().split("-")[1])
    assert lines == [f"line-{i}\n" for i in range(first, 300)]
    assert first > 0  # the oldest were rotated away
    assert [e["log"] for e in c.logs(tail=3)] == ["line-297\n", "line-298\n", "line-299\n"]
    tail = [e["log"] for e in c.logs(tail=len(lines) - 2)]
    assert tail == lines[2:]


def test_follow_reads_new_lines_until_the_container_ends(shim_env: ShimEnv) -> None:
    trigger = shim_env.rootfs / "go"
    script = "echo first; while [ ! -e /go ]; do sleep 0.05; done; echo second; printf partial"
    c = shim_env.container(["sh", "-c", script])
    c.spawn()
    reader = logs.read_logs(
        str(c.log_path),
        follow=True,
        exit_path=str(c.bundle / statedir.EXIT),
        poll_interval=0.02,
    )
    assert next(reader)["log"] == "first\n"
    trigger.touch()
    rest = list(reader)  # ends by itself once the exit file exists
    assert [e["log"] for e in rest] == ["second\n", "partial"]
    assert all(e["stream"] == "stdout" for e in rest)
    trigger.unlink()


def test_follow_with_tail_zero_and_should_stop(shim_env: ShimEnv) -> None:
    trigger = shim_env.rootfs / "go2"
    script = "echo old; while [ ! -e /go2 ]; do sleep 0.05; done; echo new; sleep 1000"
    c = shim_env.container(["sh", "-c", script])
    c.spawn()
    wait_until(lambda: c.logs(), what="the first line")
    seen: list[str] = []
    reader = logs.read_logs(
        str(c.log_path), tail=0, follow=True, should_stop=lambda: bool(seen), poll_interval=0.02
    )
    trigger.touch()
    for entry in reader:
        seen.append(entry["log"])
    assert seen == ["new\n"]
    c.client().stop(signal="KILL")
    trigger.unlink()


def test_since_filters_older_records(shim_env: ShimEnv) -> None:
    trigger = shim_env.rootfs / "go3"
    script = "echo before; while [ ! -e /go3 ]; do sleep 0.05; done; echo after"
    c = shim_env.container(["sh", "-c", script])
    c.spawn()
    wait_until(lambda: c.logs(), what="the first line")
    trigger.touch()
    c.wait_exit_file()
    entries = c.logs()
    assert [e["log"] for e in entries] == ["before\n", "after\n"]
    before, after = (logs.parse_time(e["time"]) for e in entries)
    assert after - before > 1_000, entries  # "after" was read once the trigger was there
    cut = (before + after) // 2  # between the two: a float holds it to ~0.2 µs
    assert [e["log"] for e in c.logs(since=logs.format_time(cut))] == ["after\n"]
    assert [e["log"] for e in c.logs(since=cut / 1e9)] == ["after\n"]
    trigger.unlink()
