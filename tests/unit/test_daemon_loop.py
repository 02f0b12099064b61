"""The loop's parts on a fake clock: the work queue, backoff, flap detection, the debouncer."""

from __future__ import annotations

import threading
import time

import pytest

from reconciler.daemon import flap, watch, workqueue


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_queue_deduplicates_and_hands_a_key_to_one_worker_at_a_time() -> None:
    q = workqueue.WorkQueue()
    q.add("a")
    q.add("a")
    q.add("b")
    assert q.depth() == 2
    assert q.get(0) == "a"
    q.add("a")  # while it is processed: queued once more when done
    assert q.get(0) == "b"
    assert q.get(0) is None  # "a" is not handed out twice at once
    q.done("a")
    assert q.get(0) == "a"
    q.done("a")
    q.done("b")
    assert q.get(0) is None


def test_add_after_keeps_the_earliest_time_and_wakes_a_waiting_worker() -> None:
    clock = Clock()
    q = workqueue.WorkQueue(clock)
    q.add_after("a", 10)
    q.add_after("a", 5)
    q.add_after("a", 20)
    assert q.due("a") == pytest.approx(5)
    assert q.get(0) is None
    clock.now += 5
    assert q.get(0) == "a"

    real = workqueue.WorkQueue()
    got: list[str | None] = []
    worker = threading.Thread(target=lambda: got.append(real.get(5)))
    worker.start()
    started = time.monotonic()
    real.add_after("b", 0.1)
    worker.join(5)
    assert got == ["b"] and time.monotonic() - started < 2


def test_shut_down_releases_waiting_workers() -> None:
    q = workqueue.WorkQueue()
    got: list[str | None] = []
    worker = threading.Thread(target=lambda: got.append(q.get()))
    worker.start()
    q.shut_down()
    worker.join(5)
    assert got == [None]


def test_backoff_doubles_with_jitter_up_to_the_cap_and_forgets() -> None:
    values = iter([0.0, 1.0, 0.5, 0.5, 0.5])
    b = workqueue.Backoff(base=1.0, cap=5.0, jitter=0.25, rand=lambda: next(values))
    assert b.when("k") == pytest.approx(0.75)  # 1 * (1 - 0.25)
    assert b.when("k") == pytest.approx(2.5)  # 2 * (1 + 0.25)
    assert b.when("k") == pytest.approx(4.0)
    assert b.when("k") == pytest.approx(5.0)  # capped
    b.forget("k")
    assert b.failures("k") == 0
    assert b.when("k") == pytest.approx(1.0)


def test_flapping_is_held_back_longer_each_time_and_reported_once() -> None:
    f = flap.FlapTracker(window=60, threshold=3, base_hold=10, max_hold=40, stable=60)
    key = "s/web"
    assert f.held_until(key, 0) is None
    assert f.started(key, 0) is None
    assert f.started(key, 1) is None
    assert f.started(key, 2) == "flapping"  # the third in a minute
    assert f.held_until(key, 3) == 12
    assert f.held_until(key, 12) is None
    assert f.started(key, 12) is None  # reported once, held longer
    assert f.held_until(key, 13) == 32
    assert f.started(key, 32) is None
    assert f.held_until(key, 33) == 72  # capped at 40
    assert f.is_flapping(key)
    assert f.running(key, 40) is None  # not up long enough yet
    assert f.running(key, 93) == "recovered"
    assert not f.is_flapping(key)
    assert f.started(key, 200) is None  # a single crash later is repaired at once


def test_debouncer_waits_for_quiet_but_not_longer_than_the_maximum() -> None:
    fired: list[tuple[str, float]] = []
    d = watch.Debouncer(lambda k: fired.append((k, time.monotonic())), delay=0.1, max_delay=0.3)
    try:
        start = time.monotonic()
        for _ in range(10):  # a burst of writes for 0.5 s
            d.poke("a")
            time.sleep(0.05)
        deadline = time.monotonic() + 2
        while len(fired) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert [k for k, _ in fired] == ["a", "a"]
        assert fired[0][1] - start < 0.45  # the maximum delay, not the end of the burst
    finally:
        d.stop()


def test_file_watcher_relevance() -> None:
    w = watch.FileWatcher(lambda k: None)
    try:
        w._files["s"] = {"/d/stack.yaml"}
        w._dirs["t"] = {"/m"}
        assert w._relevant("s", "/d", "/d/stack.yaml")
        assert w._relevant("s", "/d", "/d/..data")  # a ConfigMap-style swap
        assert not w._relevant("s", "/d", "/d/notes.txt")
        assert w._relevant("t", "/m", "/m/new.yml")
        assert w._relevant("t", "/m", "/m/.env")
        assert not w._relevant("t", "/m", "/m/README")
    finally:
        w.stop()
