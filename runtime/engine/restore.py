"""What the engine does about its containers every time it starts (DESIGN.md §5).

Cheap enough for every CLI start: one directory listing, a flock test per
bundle, and two queries; only a dead shim costs more. For each bundle in the
run root:

- live shim (it holds its flock) → nothing to do: every later call asks it
  (that is the reattach; its container may run, restart, or just end);
- dead shim with an ``exit`` record → the exit is recorded in the container's
  row (code, time, OOM, restart count) and its task cleaned up;
- dead shim without one → the runtime's ``delete --force``, exit 137, status
  ``dead`` ("lost"), as containerd reports a task whose shim died; then, as
  dockerd does for its containers when it starts, one whose restart policy
  asks for it (``always``, ``unless-stopped``, ``on-failure`` within its
  retries) and that no operator stopped is started again, its restart count
  going on;
- a bundle without a row (a removal cut short) → deleted from the runtime,
  unmounted and removed.

Rows whose bundle vanished while they ran (a reboot wipes the run root) are
marked lost the same way. Active snapshots ``container-<id>`` and container
directories without a row are removed: a row is made before and removed after
both of them (:mod:`runtime.engine.containers`), so those are always garbage.
Each action on a container holds its lock, taken without waiting (a busy
container is some other process's business), so concurrent starts of the
engine (a daemon and CLIs) do each thing once and none of them blocks.
Problems are collected, not raised: an engine must start even next to a
broken container.
"""

from __future__ import annotations

import dataclasses
import os
import shutil

from runtime import client, errors
from runtime.engine import containers, layout, metadata, snapshots, tasks
from runtime.shim import policy
from runtime.shim import restore as shim_restore


@dataclasses.dataclass
class Report:
    reattached: list[str] = dataclasses.field(default_factory=list)  # names
    recorded: list[str] = dataclasses.field(default_factory=list)  # exits recorded
    lost: list[str] = dataclasses.field(default_factory=list)
    restarted: list[str] = dataclasses.field(default_factory=list)
    removed: list[str] = dataclasses.field(default_factory=list)  # orphan paths and keys
    problems: list[str] = dataclasses.field(default_factory=list)


def restore_all(
    paths: layout.Layout,
    store: metadata.MetadataStore,
    snapshotter: snapshots.OverlaySnapshotter,
    ctrs: containers.Containers,
) -> Report:
    report = Report()
    rows = {row.id: row for row in store.list_containers()}
    bundles_dir = os.path.join(paths.run_root, "containers")
    try:
        names = sorted(os.listdir(bundles_dir))
    except FileNotFoundError:
        names = []
    for name in names:
        shim_dir = os.path.join(bundles_dir, name)
        row = rows.get(name)
        try:
            if row is None:
                _remove_orphan_bundle(paths, store, shim_dir, name, report)
            elif shim_restore.shim_alive(shim_dir):
                report.reattached.append(row.name)
            else:
                _settle(store, ctrs, row, report)
        except errors.RuntimeError_ as exc:
            report.problems.append(f"container {row.name if row else name}: {exc}")
    for row in rows.values():
        if row.id not in names and tasks.was_running(row):
            try:
                _settle(store, ctrs, row, report)  # its bundle vanished under it
            except errors.RuntimeError_ as exc:
                report.problems.append(f"container {row.name}: {exc}")
    _remove_orphan_snapshots(store, snapshotter, rows, report)
    _remove_orphan_dirs(paths, store, rows, report)
    return report


def _settle(
    store: metadata.MetadataStore,
    ctrs: containers.Containers,
    row: metadata.ContainerRow,
    report: Report,
) -> None:
    # Never wait: a process holding the lock (a start, stop or remove, another
    # engine start) is dealing with this container, and an engine must start.
    with ctrs.locks.hold(row.id, wait=False) as held:
        if not held:
            return
        info = ctrs.tasks.observe(row)
        if info.status == "dead":
            report.lost.append(row.name)
        elif info.status == "exited":
            report.recorded.append(row.name)
        if info.status != "dead" or not _should_restart(info):
            return
        # a restart by policy, as the shim would have done: it counts
        store.update_container(row.id, restart_count=info.restart_count + 1)
        ctrs.start(row.name)
        report.restarted.append(row.name)


def _should_restart(info: client.ContainerInfo) -> bool:
    """Whether a lost container's policy asks for another run (Docker, at daemon start)."""
    if info.operator_stopped:
        return False
    try:
        parsed = policy.parse(info.config.restart_policy)
    except ValueError:
        return False
    if parsed.name == policy.ON_FAILURE and parsed.max_retries:
        return info.restart_count < parsed.max_retries
    return parsed.name != policy.NO


def _has_row(store: metadata.MetadataStore, container_id: str) -> bool:
    """Asked again, not from the listing: a create may have made the row since."""
    try:
        store.get_container(container_id)
    except errors.NotFound:
        return False
    return True


def _remove_orphan_bundle(
    paths: layout.Layout,
    store: metadata.MetadataStore,
    shim_dir: str,
    container_id: str,
    report: Report,
) -> None:
    if shim_restore.shim_alive(shim_dir) or _has_row(store, container_id):
        return  # a removal in another process, still stopping it; or a new container
    tasks.clean_up_bundle(shim_dir, paths.oci_root, container_id)
    shutil.rmtree(shim_dir, ignore_errors=True)
    report.removed.append(shim_dir)


def _remove_orphan_snapshots(
    store: metadata.MetadataStore,
    snapshotter: snapshots.OverlaySnapshotter,
    rows: dict[str, metadata.ContainerRow],
    report: Report,
) -> None:
    used = {row.snapshot_key for row in rows.values()}
    for snap in store.list_snapshots():
        if snap.kind != "active" or not snap.key.startswith("container-") or snap.key in used:
            continue
        if _has_row(store, snap.key[len("container-") :]):
            continue
        try:
            snapshotter.remove(snap.key)
            report.removed.append(snap.key)
        except errors.RuntimeError_ as exc:
            report.problems.append(f"snapshot {snap.key}: {exc}")


def _remove_orphan_dirs(
    paths: layout.Layout,
    store: metadata.MetadataStore,
    rows: dict[str, metadata.ContainerRow],
    report: Report,
) -> None:
    parent = os.path.join(paths.root, "containers")
    try:
        names = os.listdir(parent)
    except FileNotFoundError:
        return
    for name in names:
        if name in rows or _has_row(store, name):
            continue
        directory = os.path.join(parent, name)
        shutil.rmtree(directory, ignore_errors=True)
        report.removed.append(directory)
