"""Container lifecycle: create, start, stop, remove, observe — through shims.

A container is a metadata row, an active snapshot on its image's layers, a
persistent directory (``<root>/containers/<id>``: logs, /etc files) and, while
it has been started, a bundle in the run root that its shim owns. Its state is
never remembered here: every ``info`` asks the shim, or reads the exit record
it left (``runtime.shim.restore.probe``), so a container started by an earlier
process, or while pyreconcile was down, is seen as it is.

When a container has stopped for good its "task" is cleaned up as soon as it
is observed (the runtime's ``delete``: cgroups and runtime state; the rootfs
unmounted), as dockerd does on an exit event. The bundle's ``exit`` record
stays until the next start or the removal, so the exit code stays visible.
"""

from __future__ import annotations

import dataclasses
import json
import os
import secrets
import shutil
import time
from collections.abc import Iterator
from typing import Literal

from runtime import client, errors
from runtime.engine import (
    bundle,
    etcfiles,
    images,
    layout,
    metadata,
    mounts,
    objects,
    records,
    snapshots,
)
from runtime.shim import client as shim_client
from runtime.shim import launch, logs, restore, runtimes, statedir

LOG_FILE = "container-json.log"
DEFAULT_STOP_TIMEOUT = 10.0


class Containers:
    def __init__(
        self,
        paths: layout.Layout,
        store: metadata.MetadataStore,
        image_store: images.ImageStore,
        snapshotter: snapshots.OverlaySnapshotter,
        volumes: objects.Volumes,
        networks: objects.Networks,
    ) -> None:
        self._layout = paths
        self._store = store
        self._images = image_store
        self._snapshots = snapshotter
        self._volumes = volumes
        self._networks = networks

    # -- lookup and observation ------------------------------------------------

    def _row(self, name_or_id: str) -> metadata.ContainerRow:
        try:
            return self._store.get_container_by_name(name_or_id)
        except errors.NotFound:
            pass
        if len(name_or_id) >= 4:
            matches = [r for r in self._store.list_containers() if r.id.startswith(name_or_id)]
            if len(matches) == 1:
                return matches[0]
            if len(matches) > 1:
                raise errors.InvalidSpec(f"id prefix {name_or_id!r} names several containers")
        raise errors.NotFound(f"container {name_or_id!r} not found")

    def list(self) -> list[client.ContainerInfo]:
        return [self._info(row) for row in self._store.list_containers()]

    def get(self, name_or_id: str) -> client.ContainerInfo:
        return self._info(self._row(name_or_id))

    def _bundle(self, row: metadata.ContainerRow) -> str:
        return self._layout.bundle_dir(row.id)

    def _info(self, row: metadata.ContainerRow) -> client.ContainerInfo:
        config = records.config_from_json(row.config_json)
        base = client.ContainerInfo(
            id=row.id,
            name=row.name,
            config=config,
            image_id=row.image_id,
            image_digest=row.image_digest,
            status="created",
            pid=None,
            exit_code=None,
            created_at=row.created_at,
            started_at=None,
            finished_at=None,
            restart_count=row.restart_count,
            operator_stopped=row.operator_stopped,
        )
        shim_dir = self._bundle(row)
        if not os.path.exists(statedir.path(shim_dir, statedir.OPTIONS)):
            return base  # never started (or removed half-way): created
        status = self._probe(shim_dir)
        if status is None:  # alive but busy: say running, act on it later
            return dataclasses.replace(base, status="running")
        rec = status.record
        if status.kind == "running":
            shim_state = str(rec.get("status"))
            state: client.ContainerStatus = (
                "running"
                if shim_state in ("running", "created")
                else "restarting"
                if shim_state == "restarting"
                else "exited"
            )
            return dataclasses.replace(
                base,
                status=state,
                pid=_int(rec.get("pid")) if state == "running" else None,
                exit_code=None if state == "running" else _int(rec.get("exit_code")),
                started_at=_float(rec.get("started_at")),
                finished_at=None if state == "running" else _float(rec.get("finished_at")),
                restart_count=_int(rec.get("restart_count")) or 0,
            )
        self._clean_up_task(row)
        return dataclasses.replace(
            base,
            status="dead" if status.kind == "lost" or rec.get("lost") else "exited",
            exit_code=_int(rec.get("exit_code")),
            started_at=_float(rec.get("started_at")),
            finished_at=_float(rec.get("finished_at")),
            restart_count=_int(rec.get("restart_count")) or 0,
        )

    @staticmethod
    def _probe(shim_dir: str) -> restore.ShimStatus | None:
        for _ in range(3):
            try:
                return restore.probe(shim_dir)
            except errors.Unavailable:
                time.sleep(0.05)
            except errors.NotFound:
                return None
        return None

    # -- create --------------------------------------------------------------

    def create(self, config: client.ContainerConfig) -> client.ContainerInfo:
        objects.check_name("container", config.name)
        image = self._images.get(config.image)
        for m in config.mounts:
            if m.type == "volume":
                if not m.source:
                    raise errors.Unavailable(
                        f"container {config.name}: anonymous volumes (at {m.target}) are not "
                        "supported yet; name a Volume"
                    )
                self._volumes.get(m.source)
            elif m.type == "bind" and m.source and not os.path.exists(m.source):
                raise errors.NotFound(
                    f"container {config.name}: bind source {m.source} does not exist"
                )
        self._networks.check_attachments(config)
        if config.oci_runtime and not os.access(config.oci_runtime, os.X_OK):
            raise errors.NotFound(f"OCI runtime {config.oci_runtime} is not an executable")
        container_id = secrets.token_hex(32)
        key = f"container-{container_id}"
        self._snapshots.prepare(key, self._images.top_snapshot(image))
        row = metadata.ContainerRow(
            id=container_id,
            name=config.name,
            config_json=records.config_to_json(config),
            image_id=image.id,
            image_digest=image.manifest_digest,
            snapshot_key=key,
            oci_runtime=config.oci_runtime,
            created_at=time.time(),
        )
        try:
            self._store.insert_container(row)
        except errors.AlreadyExists:
            self._snapshots.remove(key)
            raise errors.AlreadyExists(f"container {config.name!r} already exists") from None
        with errors.map_os_errors(f"create {self._layout.container_dir(container_id)}"):
            os.makedirs(self._layout.container_dir(container_id), mode=0o710, exist_ok=True)
        return self._info(row)

    # -- start ----------------------------------------------------------------

    def start(self, name: str) -> client.ContainerInfo:
        row = self._row(name)
        info = self._info(row)
        if info.status in ("running", "restarting"):
            if row.operator_stopped:
                self._store.update_container(row.id, operator_stopped=False)
            return self._info(self._store.get_container(row.id))
        config = records.config_from_json(row.config_json)
        self._clean_up_task(row)
        shim_dir = self._bundle(row)
        statedir.remove(shim_dir, *statedir.SHIM_FILES)
        rootfs = os.path.join(shim_dir, "rootfs")
        with errors.map_os_errors(f"create bundle {shim_dir}"):
            os.makedirs(rootfs, mode=0o711, exist_ok=True)
        assert row.snapshot_key is not None
        mounts.mount_all(self._snapshots.mounts(row.snapshot_key), rootfs)
        try:
            image = self._images.get(row.image_id)
            image_config = images.image_config(image)
            hostname = config.hostname or row.id[:12]
            attachment = self._networks.attach(row.id, config)
            netns = attachment.namespace
            etc = etcfiles.write_all(
                self._layout.container_dir(row.id),
                hostname,
                host_network=netns == "host",
                extra_hosts=attachment.hosts,
            )
            spec = bundle.build_config(
                bundle.BundleInputs(
                    container_id=row.id,
                    config=dataclasses.replace(config, hostname=hostname),
                    image=image_config,
                    rootfs=rootfs,
                    cgroups_path=f"/{self._layout.cgroup_parent}/{row.id}",
                    etc_files=etc,
                    volume_sources={
                        m.source: self._volumes.get(m.source).mountpoint
                        for m in config.mounts
                        if m.type == "volume" and m.source
                    },
                    network_namespace=netns,
                )
            )
            statedir.write_atomic(
                os.path.join(shim_dir, "config.json"), json.dumps(spec, indent=1).encode()
            )
            stop_signal = config.stop_signal or image_config.stop_signal or "SIGTERM"
            launch.spawn_shim(
                launch.ShimOptions(
                    container_id=row.id,
                    bundle=shim_dir,
                    runtime_root=self._layout.oci_root,
                    log_path=os.path.join(self._layout.container_dir(row.id), LOG_FILE),
                    runtime_binary=config.oci_runtime,
                    restart_policy=config.restart_policy,
                    stop_signal=stop_signal,
                    stop_timeout=(
                        config.stop_grace_period
                        if config.stop_grace_period is not None
                        else DEFAULT_STOP_TIMEOUT
                    ),
                )
            )
        except BaseException as exc:
            try:
                mounts.unmount(rootfs)
            except errors.RuntimeError_ as cleanup:
                exc.add_note(f"unmounting {rootfs} failed too: {cleanup}")
            try:
                self._networks.detach(row.id)
            except errors.RuntimeError_ as cleanup:
                exc.add_note(f"detaching its networks failed too: {cleanup}")
            raise
        self._store.update_container(row.id, operator_stopped=False)
        return self._info(self._store.get_container(row.id))

    # -- stop and remove -------------------------------------------------------

    def stop(
        self,
        name: str,
        timeout: float | None = None,
        *,
        operator: bool = False,
        sig: str | None = None,
    ) -> client.ContainerInfo:
        row = self._row(name)
        shim_dir = self._bundle(row)
        socket_path = statedir.path(shim_dir, statedir.SOCKET)
        if restore.shim_alive(shim_dir) and os.path.exists(socket_path):
            try:
                shim = shim_client.ShimClient(socket_path)
                shim.stop(sig, timeout)
            except errors.Unavailable:
                pass  # it ended between the check and the call
        # the reply comes a moment before the shim exits; its task is ours after that
        _wait_shim_exit(shim_dir)
        if operator:
            self._store.update_container(row.id, operator_stopped=True)
        return self._info(self._store.get_container(row.id))

    def wait(self, name: str, timeout: float | None = None) -> client.ContainerInfo:
        """Block until the container has stopped for good (its shim decides: a
        restart policy may keep it going), or ``timeout`` passes; then observe."""
        row = self._row(name)
        shim_dir = self._bundle(row)
        socket_path = statedir.path(shim_dir, statedir.SOCKET)
        if restore.shim_alive(shim_dir) and os.path.exists(socket_path):
            try:
                reply = shim_client.ShimClient(socket_path).wait(timeout)
            except errors.Unavailable:
                reply = {"final": True}  # it ended between the check and the call
            if reply.get("final"):
                _wait_shim_exit(shim_dir)
        return self._info(self._store.get_container(row.id))

    def remove(self, name: str, *, force: bool = False) -> None:
        row = self._row(name)
        info = self._info(row)
        if info.status in ("running", "restarting", "paused") and not force:
            raise errors.FailedPrecondition(
                f"container {row.name!r} is {info.status}: stop it first or remove it with force"
            )
        # also ends a shim that is between restarts, and waits for it to exit
        self.stop(row.name, 10.0, sig="SIGKILL")
        self._clean_up_task(row)
        shim_dir = self._bundle(row)
        if os.path.lexists(shim_dir):
            with errors.map_os_errors(f"remove bundle {shim_dir}"):
                shutil.rmtree(shim_dir)
        if row.snapshot_key:
            try:
                self._snapshots.remove(row.snapshot_key)
            except errors.NotFound:
                pass
        directory = self._layout.container_dir(row.id)
        if os.path.lexists(directory):
            with errors.map_os_errors(f"remove {directory}"):
                shutil.rmtree(directory)
        self._store.delete_container(row.id)

    def _clean_up_task(self, row: metadata.ContainerRow) -> None:
        """Delete the runtime's container and unmount the rootfs, once its shim is gone.

        Idempotent; does nothing while a shim is alive (it owns the task then).
        """
        shim_dir = self._bundle(row)
        if restore.shim_alive(shim_dir):
            return
        rootfs = os.path.join(shim_dir, "rootfs")
        options = statedir.read_json(statedir.path(shim_dir, statedir.OPTIONS))
        if options is not None and os.path.exists(os.path.join(self._layout.oci_root, row.id)):
            binary = options.get("runtime_binary")
            runtime = runtimes.make(
                binary if isinstance(binary, str) else None,
                self._layout.oci_root,
                row.id,
                shim_dir,
            )
            try:
                runtime.delete(force=True)
            except errors.NotFound:
                pass
        if mounts.is_mounted(rootfs):
            mounts.unmount(rootfs)
        self._networks.detach(row.id)

    # -- in place ---------------------------------------------------------------

    def update(self, name: str, update: client.ContainerUpdate) -> client.ContainerInfo:
        """Labels, annotations, restart policy and resources, recorded now.

        A running container's shim keeps the restart policy and the cgroup keeps
        the limits it started with; they take effect at its next start.
        """
        row = self._row(name)
        config = records.config_from_json(row.config_json)
        changes = {
            k: v
            for k, v in (
                ("labels", update.labels),
                ("annotations", update.annotations),
                ("restart_policy", update.restart_policy),
                ("resources", update.resources),
            )
            if v is not None
        }
        config = dataclasses.replace(config, **changes)  # type: ignore[arg-type]
        self._store.update_container(row.id, config_json=records.config_to_json(config))
        return self._info(self._store.get_container(row.id))

    # -- logs -------------------------------------------------------------------

    def logs(
        self, name: str, *, tail: int | None = None, follow: bool = False
    ) -> Iterator[client.LogEntry]:
        row = self._row(name)
        path = os.path.join(self._layout.container_dir(row.id), LOG_FILE)
        exit_path = statedir.path(self._bundle(row), statedir.EXIT)
        if follow and self._info(row).status not in ("running", "restarting"):
            follow = False
        for record in logs.read_logs(path, tail=tail, follow=follow, exit_path=exit_path):
            stream: Literal["stdout", "stderr"] = (
                "stderr" if record.get("stream") == "stderr" else "stdout"
            )
            yield client.LogEntry(
                time=record.get("time", ""), stream=stream, log=record.get("log", "")
            )


def _wait_shim_exit(shim_dir: str, timeout: float = 30.0) -> None:
    """Poll until the shim has exited (it holds a lock on shim.pid until then)."""
    deadline = time.monotonic() + timeout
    while restore.shim_alive(shim_dir):
        if time.monotonic() > deadline:
            raise errors.Unavailable(f"the shim of {shim_dir} did not exit within {timeout:.0f}s")
        time.sleep(0.005)


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _float(value: object) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None
