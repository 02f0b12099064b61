"""``init: true`` (tini as PID 1), stop signals and grace periods, and zombies.

A shell that backgrounds a short ``sleep`` and then ``exec``s a long one leaves
an orphan that exits: PID 1 must reap it. ``sleep`` as PID 1 never does (and
ignores SIGTERM, as PID 1 does for signals it has no handler for); tini does
both jobs. Nothing may stay a zombie under a shim either, across execs,
restarts and stops.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from runtime import client
from tests.conftest import Roots
from tests.integration.test_lifecycle_support import shim_pids, wait_until, zombies_under

IMAGE = "localhost/lifecycle/busybox:latest"
ORPHAN = "(sleep 0.05 &); (sleep 0.05 &); exec sleep 1000"


@pytest.fixture
def rt(roots: Roots, busybox_tar: Path) -> Iterator[client.RuntimeClient]:
    engine = client.open_local(str(roots.root), str(roots.run_root), roots.cgroup_parent)
    engine.import_image(str(busybox_tar), IMAGE)
    try:
        yield engine
    finally:
        for c in engine.list_containers():
            engine.remove_container(c.name, force=True)
        engine.close()


def _descendants_in_state(pid: int, state: str) -> list[int]:
    """Processes under ``pid`` (its children and theirs) in ``state``."""
    children: dict[int, list[int]] = {}
    states: dict[int, str] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        children.setdefault(int(fields[1]), []).append(int(entry))
        states[int(entry)] = fields[0]
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            todo.append(child)
            if states.get(child) == state:
                found.append(child)
    return found


def test_without_init_orphans_stay_zombies(rt: client.RuntimeClient) -> None:
    """The control: the check below does see zombies when PID 1 does not reap."""
    rt.create_container(
        client.ContainerConfig(name="noinit", image=IMAGE, command=("sh", "-c", ORPHAN))
    )
    info = rt.start_container("noinit")
    assert info.pid
    wait_until(
        lambda: len(_descendants_in_state(info.pid or 0, "Z")) == 2, what="two unreaped orphans"
    )


def test_init_reaps_orphans_and_forwards_the_stop_signal(rt: client.RuntimeClient) -> None:
    rt.create_container(
        client.ContainerConfig(
            name="withinit",
            image=IMAGE,
            command=("sh", "-c", ORPHAN),
            init=True,
            stop_grace_period=20.0,
        )
    )
    info = rt.start_container("withinit")
    assert info.pid
    with open(f"/proc/{info.pid}/cmdline", "rb") as f:
        assert f.read().split(b"\0")[:2] == [b"/sbin/docker-init", b"--"]
    wait_until(
        lambda: [p for p in _descendants_in_state(info.pid or 0, "S") if _comm(p) == "sleep"],
        what="the long sleep under tini",
    )
    wait_until(lambda: _orphans_done(info.pid or 0), what="the short sleeps to have exited")
    wait_until(  # a zombie for the moment between exit and SIGCHLD is normal; more is not
        lambda: _descendants_in_state(info.pid or 0, "Z") == [], what="tini to reap them"
    )
    began = time.monotonic()
    stopped = rt.stop_container("withinit")  # SIGTERM to tini, forwarded to sleep
    assert time.monotonic() - began < 10, "SIGTERM should end it, not the SIGKILL after 20 s"
    assert stopped.status == "exited" and stopped.exit_code == 143


def test_the_image_or_spec_stop_signal_is_used(rt: client.RuntimeClient) -> None:
    trap = "trap 'echo got-usr1; exit 7' USR1; while true; do sleep 0.05; done"
    rt.create_container(
        client.ContainerConfig(
            name="usr1",
            image=IMAGE,
            command=("sh", "-c", trap),
            stop_signal="SIGUSR1",
            stop_grace_period=20.0,
        )
    )
    rt.start_container("usr1")
    wait_until(lambda: rt.get_container("usr1").status == "running", what="running")
    began = time.monotonic()
    stopped = rt.stop_container("usr1")
    assert time.monotonic() - began < 10
    assert stopped.exit_code == 7
    assert [e.log for e in rt.container_logs("usr1")] == ["got-usr1\n"]


def test_a_grace_period_ends_in_sigkill(rt: client.RuntimeClient) -> None:
    rt.create_container(
        client.ContainerConfig(
            name="stubborn", image=IMAGE, command=("sleep", "1000"), stop_grace_period=0.5
        )
    )
    rt.start_container("stubborn")
    stopped = rt.stop_container("stubborn")  # sleep as PID 1 ignores SIGTERM
    assert stopped.exit_code == 137


def test_no_zombie_under_any_shim(roots: Roots, rt: client.RuntimeClient) -> None:
    rt.create_container(
        client.ContainerConfig(
            name="flappy",
            image=IMAGE,
            command=("sh", "-c", "sleep 0.2; exit 1"),
            restart_policy="always",
        )
    )
    rt.create_container(
        client.ContainerConfig(name="steady", image=IMAGE, command=("sleep", "1000"))
    )
    rt.start_container("flappy")
    steady = rt.start_container("steady")
    for i in range(5):
        session = rt.exec_container("steady", client.ExecConfig(args=("sh", "-c", f"exit {i}")))
        assert session.wait(20) == i
        session.close()
    wait_until(lambda: rt.get_container("flappy").restart_count >= 3, what="three restarts")
    pids = [p for group in shim_pids(roots).values() for p in group]
    assert len(pids) == 2
    wait_until(lambda: not zombies_under(pids), what="no zombie child of a shim")
    rt.stop_container("flappy", timeout=1)
    rt.stop_container("steady", timeout=1)
    assert steady.pid and not zombies_under(pids)


def _comm(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except FileNotFoundError:
        return ""


def _orphans_done(init_pid: int) -> bool:
    sleeps = [p for p in _descendants_in_state(init_pid, "S") if _comm(p) == "sleep"]
    running = [p for p in _descendants_in_state(init_pid, "R") if _comm(p) == "sleep"]
    return len(sleeps) + len(running) == 1
