"""What the engine finds when it starts: lost shims, vanished run roots, orphans, old schemas.

Each "engine start" is a new ``LocalRuntime`` (what every CLI command makes),
or a CLI command. Shims are killed with SIGKILL by pid; nothing is simulated.
"""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from runtime import client
from runtime.engine import metadata, mounts
from runtime.shim import runtimes, statedir
from tests.conftest import Roots
from tests.integration.test_lifecycle_support import shim_pids, wait_until, zombies_under

IMAGE = "localhost/lifecycle/busybox:latest"


@pytest.fixture
def engine(roots: Roots, busybox_tar: Path) -> Iterator[client.RuntimeClient]:
    rt = _open(roots)
    rt.import_image(str(busybox_tar), IMAGE)
    try:
        yield rt
    finally:
        rt.close()
        final = _open(roots)
        for c in final.list_containers():
            final.remove_container(c.name, force=True)
        final.close()


def _open(roots: Roots) -> client.RuntimeClient:
    return client.open_local(str(roots.root), str(roots.run_root), roots.cgroup_parent)


def _shim_of(roots: Roots, container_id: str) -> int:
    pids = shim_pids(roots)[container_id]
    assert len(pids) == 1
    return pids[0]


def _kill_shim(roots: Roots, container_id: str) -> None:
    pid = _shim_of(roots, container_id)
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: container_id not in shim_pids(roots), what=f"shim {pid} to die")


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _config(name: str, **kw: object) -> client.ContainerConfig:
    kw.setdefault("command", ("sleep", "1000"))
    kw.setdefault("stop_grace_period", 1.0)
    return client.ContainerConfig(name=name, image=IMAGE, **kw)  # type: ignore[arg-type]


def test_a_killed_shim_is_reported_lost_never_forgotten(
    roots: Roots, engine: client.RuntimeClient
) -> None:
    engine.create_container(_config("lost1"))
    running = engine.start_container("lost1")
    assert running.pid
    _kill_shim(roots, running.id)
    assert _alive(running.pid)  # orphaned, not yet found out

    rt = _open(roots)  # the next engine start
    try:
        assert rt.restore_report.lost == ["lost1"]  # type: ignore[attr-defined]
        dead = rt.get_container("lost1")
        assert dead.status == "dead" and dead.exit_code == 137
        assert dead.last_exit is not None and dead.last_exit.lost
        assert "shim died" in (dead.last_exit.error or "")
        assert not _alive(running.pid)  # delete --force, as containerd does
        again = rt.start_container("lost1")
        assert again.status == "running"
        assert again.last_exit is not None and again.last_exit.code == 137
    finally:
        rt.close()


def test_a_list_of_many_asks_the_shims_together_and_probes_the_silent_one(
    roots: Roots, engine: client.RuntimeClient
) -> None:
    """From eight containers on, ``list`` asks the live shims in parallel; a shim
    killed behind the engine's back (this engine stays open: no restore pass)
    does not answer and is probed on its own: lost, reported dead, not the list's
    error — and the others are running as their shims say."""
    names = [f"many{i}" for i in range(9)]
    started = {}
    for name in names:
        engine.create_container(_config(name))
        started[name] = engine.start_container(name)
    exited = _config("many-exit", command=("sh", "-c", "exit 3"))
    engine.create_container(exited)
    engine.start_container("many-exit")
    wait_until(
        lambda: engine.get_container("many-exit").status == "exited", what="many-exit to exit"
    )
    _kill_shim(roots, started["many4"].id)

    seen = {c.name: c for c in engine.list_containers()}
    assert seen["many4"].status == "dead" and seen["many4"].exit_code == 137
    assert seen["many-exit"].status == "exited" and seen["many-exit"].exit_code == 3
    for name in names:
        if name != "many4":
            assert seen[name].status == "running", seen[name]
            assert seen[name].pid == started[name].pid


def test_a_shim_that_does_not_answer_is_running_with_its_init_pid(
    roots: Roots, engine: client.RuntimeClient
) -> None:
    """A stopped (SIGSTOP) shim is alive but silent: the container is said to run,
    with the pid its runtime wrote at create, not without one."""
    engine.create_container(_config("busy"))
    started = engine.start_container("busy")
    shim = _shim_of(roots, started.id)
    os.kill(shim, signal.SIGSTOP)
    try:
        seen = engine.get_container("busy")
    finally:
        os.kill(shim, signal.SIGCONT)
    assert seen.status == "running" and seen.pid == started.pid
    assert engine.get_container("busy").pid == started.pid  # and answering again


def test_a_lost_container_with_restart_always_is_started_again(
    roots: Roots, engine: client.RuntimeClient
) -> None:
    engine.create_container(_config("lost2", restart_policy="always"))
    first = engine.start_container("lost2")
    for round_ in (1, 2):
        _kill_shim(roots, first.id)
        rt = _open(roots)
        try:
            assert rt.restore_report.restarted == ["lost2"]  # type: ignore[attr-defined]
            info = rt.get_container("lost2")
        finally:
            rt.close()
        assert info.status == "running" and info.pid != first.pid
        assert info.restart_count == round_  # carried over lost shims
        assert info.last_exit is not None and info.last_exit.lost and info.last_exit.code == 137
    assert len(shim_pids(roots)[first.id]) == 1


def test_a_vanished_run_root_means_lost(roots: Roots, engine: client.RuntimeClient) -> None:
    """A reboot wipes the run root: the row remembers the container ran."""
    engine.create_container(_config("gone"))
    info = engine.start_container("gone")
    _kill_shim(roots, info.id)
    bundle = roots.run_root / "containers" / info.id
    runtimes.make(None, str(roots.run_root / "runc"), info.id, str(bundle)).delete(force=True)
    mounts.unmount(str(bundle / "rootfs"))
    shutil.rmtree(bundle)
    rt = _open(roots)
    try:
        dead = rt.get_container("gone")
    finally:
        rt.close()
    assert dead.status == "dead" and dead.exit_code == 137
    assert dead.last_exit is not None and "vanished" in (dead.last_exit.error or "")


def test_orphans_without_a_record_are_removed(roots: Roots, engine: client.RuntimeClient) -> None:
    """A removal cut short leaves a bundle, a snapshot and a directory with no row."""
    created = engine.create_container(_config("orphan", command=("true",)))
    engine.start_container("orphan")
    engine.wait_container("orphan", timeout=20)
    store = metadata.MetadataStore(str(roots.root / "state.db"))
    try:
        store.delete_container(created.id)
    finally:
        store.close()
    bundle = roots.run_root / "containers" / created.id
    directory = roots.root / "containers" / created.id
    assert bundle.exists() and directory.exists()
    rt = _open(roots)
    try:
        report = rt.restore_report  # type: ignore[attr-defined]
    finally:
        rt.close()
    assert not bundle.exists() and not directory.exists()
    assert f"container-{created.id}" in report.removed
    store = metadata.MetadataStore(str(roots.root / "state.db"))
    try:
        assert [s for s in store.list_snapshots() if s.key.startswith("container-")] == []
    finally:
        store.close()


def test_exits_while_no_engine_runs_are_recorded(
    roots: Roots, engine: client.RuntimeClient
) -> None:
    # it still runs when the engine closes (an instant exit may be seen by start itself)
    engine.create_container(_config("quick", command=("sh", "-c", "sleep 0.5; exit 3")))
    started = engine.start_container("quick")
    engine.close()  # no engine runs now
    bundle = roots.run_root / "containers" / started.id
    wait_until(lambda: (bundle / statedir.EXIT).exists(), what="the exit file")
    wait_until(lambda: started.id not in shim_pids(roots), what="the shim to exit")
    rt = _open(roots)
    try:
        assert rt.restore_report.recorded == ["quick"]  # type: ignore[attr-defined]
    finally:
        rt.close()
    shutil.rmtree(bundle)  # the run root can go now: the row has the exit
    rt = _open(roots)
    try:
        info = rt.get_container("quick")
    finally:
        rt.close()
    assert info.status == "exited" and info.exit_code == 3 and info.finished_at


def test_a_full_disk_under_the_container_dirs(roots: Roots, busybox_tar: Path) -> None:
    """Logs fill the disk: the container runs on, the engine still answers."""
    containers_dir = roots.root / "containers"
    containers_dir.mkdir(parents=True)
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(containers_dir)], check=True
    )
    rt = _open(roots)
    try:
        rt.import_image(str(busybox_tar), IMAGE)
        rt.create_container(
            _config("noisy", command=("sh", "-c", "while true; do echo $(seq 1 100); done"))
        )
        info = rt.start_container("noisy")
        log = containers_dir / info.id / "container-json.log"
        wait_until(
            lambda: os.statvfs(containers_dir).f_bavail == 0, what="the container dir to fill up"
        )
        bundle = roots.run_root / "containers" / info.id
        wait_until(
            lambda: b"log_write_failed" in (bundle / statedir.SHIM_LOG).read_bytes(),
            what="the shim to report the full disk",
        )
        still = rt.get_container("noisy")
        assert still.status == "running" and still.pid == info.pid
        assert list(rt.container_logs("noisy", tail=1))  # what was written is readable
        assert log.exists()
        assert not zombies_under(shim_pids(roots)[info.id])
        rt.remove_container("noisy", force=True)
    finally:
        rt.close()
        for c in (cleanup := _open(roots)).list_containers():
            cleanup.remove_container(c.name, force=True)
        cleanup.close()
        subprocess.run(["umount", str(containers_dir)], check=False)


def test_a_version_1_database_is_migrated(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
    db.execute("INSERT INTO schema_version VALUES (1)")
    for statement in metadata._MIGRATIONS[0][1]:
        db.execute(statement)
    db.execute(
        "INSERT INTO containers (id, name, config_json, image_id, image_digest, created_at,"
        " restart_count) VALUES (?, 'old', '{}', 'sha256:x', 'sha256:y', 1.0, 4)",
        (uuid.uuid4().hex,),
    )
    db.commit()
    db.close()
    store = metadata.MetadataStore(str(path))
    try:
        assert store.schema_version() == 2
        row = store.get_container_by_name("old")
        assert row.restart_count == 4 and row.exit_code is None and not row.lost
        updated = store.update_container(row.id, exit_code=3, lost=True, finished_at=2.0)
        assert (updated.exit_code, updated.lost, updated.finished_at) == (3, True, 2.0)
    finally:
        store.close()
