"""Container lifecycle: create, start, stop, kill, restart, remove, exec, logs — through shims.

A container is a metadata row, an active snapshot on its image's layers, a
persistent directory (``<root>/containers/<id>``: logs, /etc files) and, while
it has been started, a bundle in the run root that its shim owns. Its state is
never remembered here: every ``info`` asks the shim, or reads the exit record
it left (:mod:`runtime.engine.tasks`, which also writes the last run into the
row), so a container started by an earlier process, or while pyreconcile was
down, is seen as it is.

Order of creation and removal, so that the restore scan
(:mod:`runtime.engine.restore`) may delete what has no row: the row comes
first and goes last (create: row, snapshot, directory; remove: bundle,
directory, snapshot, row). The two rows are written in one transaction
each way: one commit, so one fsync of the database, instead of two.

Start, stop, restart and remove hold the container's lock (a flock shared by
every pyreconcile process), so two processes never mount a rootfs or spawn a
shim for the same container at once.

``kill`` only sends a signal: what follows is the restart policy's call (a
killed ``always`` container is restarted by its shim). ``stop`` is for good.
``restart`` is ``stop`` then ``start``.

Shims are forked by the run root's fork server (:mod:`runtime.shim.forkserver`:
about half the memory per container, and no interpreter start), or exec'd
when it cannot be had or ``PYRECONCILE_SHIM_FORKSERVER=0``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import secrets
import select
import shutil
import time
from collections.abc import Iterator

from runtime import client, errors
from runtime.engine import (
    bundle,
    container_io,
    etcfiles,
    images,
    layout,
    metadata,
    mounts,
    objects,
    records,
    snapshots,
    tasks,
    volume_fs,
    volume_mounts,
    volumes,
)
from runtime.shim import client as shim_client
from runtime.shim import health, launch, restore, statedir

LOG_FILE = container_io.LOG_FILE
DEFAULT_STOP_TIMEOUT = 10.0


class Containers:
    def __init__(
        self,
        paths: layout.Layout,
        store: metadata.MetadataStore,
        image_store: images.ImageStore,
        snapshotter: snapshots.OverlaySnapshotter,
        volumes: volumes.Volumes,
        networks: objects.Networks,
    ) -> None:
        self._layout = paths
        self._store = store
        self._images = image_store
        self._snapshots = snapshotter
        self._volumes = volumes
        self._networks = networks
        self.locks = tasks.ContainerLocks(paths.locks_dir)
        self.tasks = tasks.Tasks(paths, store, self.locks)
        # network hook (issue 6): a container's networks go with its task
        self.tasks.after_clean_up = networks.detach

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
        return self.tasks.observe_all(self._store.list_containers())

    def get(self, name_or_id: str) -> client.ContainerInfo:
        return self._info(self._row(name_or_id))

    def _bundle(self, row: metadata.ContainerRow) -> str:
        return self._layout.bundle_dir(row.id)

    def _info(self, row: metadata.ContainerRow) -> client.ContainerInfo:
        return self.tasks.observe(row)

    # -- create --------------------------------------------------------------

    def create(self, config: client.ContainerConfig) -> client.ContainerInfo:
        objects.check_name("container", config.name)
        image = self._images.get(config.image)
        # volumes (issue 7): named ones exist, anonymous ones are made, bind sources exist
        volume_mounts.check(config, images.image_config(image), self._volumes)
        self._networks.check_attachments(config)
        if config.oci_runtime and not os.access(config.oci_runtime, os.X_OK):
            raise errors.NotFound(f"OCI runtime {config.oci_runtime} is not an executable")
        container_id = secrets.token_hex(32)
        key = f"container-{container_id}"
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
        top = self._images.top_snapshot(image)
        # the row, then the snapshot (a snapshot without a row is garbage: the restore
        # scan), in one transaction: one commit (one fsync) for both, and a snapshot
        # that cannot be made takes the row back with it
        with self._store.transaction(f"create container {config.name}"):
            try:
                self._store.insert_container(row)
            except errors.AlreadyExists:
                raise errors.AlreadyExists(f"container {config.name!r} already exists") from None
            self._snapshots.prepare(key, top)
        with errors.map_os_errors(f"create {self._layout.container_dir(container_id)}"):
            os.makedirs(self._layout.container_dir(container_id), mode=0o710, exist_ok=True)
        return self._info(row)

    # -- start ----------------------------------------------------------------

    def start(self, name: str) -> client.ContainerInfo:
        row = self._row(name)
        with self.locks.hold(row.id):
            return self._start_locked(self._store.get_container(row.id))

    def _start_locked(self, row: metadata.ContainerRow) -> client.ContainerInfo:
        info = self._info(row)
        row = self._store.get_container(row.id)  # as observation left it
        if info.status in ("running", "restarting"):
            if row.operator_stopped:
                self._store.update_container(row.id, operator_stopped=False)
            return self._info(self._store.get_container(row.id))
        config = records.config_from_json(row.config_json)
        self.tasks.clean_up(row)
        shim_dir = self._bundle(row)
        statedir.remove(shim_dir, *statedir.SHIM_FILES)
        rootfs = os.path.join(shim_dir, "rootfs")
        with errors.map_os_errors(f"create bundle {shim_dir}"):
            os.makedirs(rootfs, mode=0o711, exist_ok=True)
        assert row.snapshot_key is not None
        if row.started_at is None:
            # a create cut short after its record (the creating process was killed)
            # left no snapshot or no directory: the container never ran, so its
            # writable layer was empty and making them now loses nothing
            if not self._snapshots.exists(row.snapshot_key):
                top = self._images.top_snapshot(self._images.get(row.image_id))
                self._snapshots.prepare(row.snapshot_key, top)
            with errors.map_os_errors(f"create {self._layout.container_dir(row.id)}"):
                os.makedirs(self._layout.container_dir(row.id), mode=0o710, exist_ok=True)
        mounts.mount_all(self._snapshots.mounts(row.snapshot_key), rootfs)
        try:
            image = self._images.get(row.image_id)
            image_config = images.image_config(image)
            hostname = config.hostname or row.id[:12]
            # network hooks (issue 6): the namespace, links and addresses before the start,
            # detached again by the tasks' clean-up (see __init__)
            attachment = self._networks.attach(row.id, config)
            netns = attachment.namespace
            etc = etcfiles.write_all(
                self._layout.container_dir(row.id),
                hostname,
                host_network=netns == "host",
                extra_hosts=attachment.hosts,
            )
            # a peer may have attached since attach(): rewrite /etc/hosts with the peers now
            self._networks.refresh_hosts(row.id)
            spec = bundle.build_config(
                bundle.BundleInputs(
                    container_id=row.id,
                    config=dataclasses.replace(config, hostname=hostname),
                    image=image_config,
                    rootfs=rootfs,
                    cgroups_path=f"/{self._layout.cgroup_parent}/{row.id}",
                    etc_files=etc,
                    network_namespace=netns,
                    # volumes (issue 7): mounted, copied up, subPaths staged
                    user_mounts=tuple(
                        volume_mounts.resolve(
                            config,
                            image_config,
                            self._volumes,
                            rootfs=rootfs,
                            bundle_dir=shim_dir,
                            container_dir=self._layout.container_dir(row.id),
                        )
                    ),
                    rootfs_propagation=volume_mounts.rootfs_propagation(config),
                )
            )
            # compact: json's C encoder (indent= takes the pure-Python one, ~1.5 ms here)
            statedir.write_atomic(
                os.path.join(shim_dir, "config.json"),
                json.dumps(spec, separators=(",", ":")).encode(),
            )
            write_health_check(shim_dir, config.healthcheck)
            shim = launch.spawn_shim(
                launch.ShimOptions(
                    container_id=row.id,
                    bundle=shim_dir,
                    runtime_root=self._layout.oci_root,
                    log_path=container_io.log_path(self._layout.container_dir(row.id)),
                    runtime_binary=config.oci_runtime,
                    restart_policy=config.restart_policy,
                    stop_signal=bundle.stop_signal(config, image_config),
                    stop_timeout=(
                        config.stop_grace_period
                        if config.stop_grace_period is not None
                        else DEFAULT_STOP_TIMEOUT
                    ),
                    restart_count=row.restart_count,
                    fork_server=(
                        None
                        if os.environ.get("PYRECONCILE_SHIM_FORKSERVER") == "0"
                        else self._layout.run_root
                    ),
                )
            )
        except BaseException as exc:
            try:
                volume_mounts.release(shim_dir)
            except errors.RuntimeError_ as cleanup:
                exc.add_note(f"unmounting its subPath mounts failed too: {cleanup}")
            try:
                mounts.unmount(rootfs)
            except errors.RuntimeError_ as cleanup:
                exc.add_note(f"unmounting {rootfs} failed too: {cleanup}")
            try:
                self._networks.detach(row.id)
            except errors.RuntimeError_ as cleanup:
                exc.add_note(f"detaching its networks failed too: {cleanup}")
            raise
        return self.tasks.started(row, shim.state)

    # -- stop and remove -------------------------------------------------------

    def stop(
        self,
        name: str,
        timeout: float | None = None,
        *,
        operator: bool = False,
        sig: str | None = None,
    ) -> client.ContainerInfo:
        """Stop for good: the stop signal, ``timeout`` seconds, then SIGKILL."""
        row = self._row(name)
        with self.locks.hold(row.id):
            self._stop_locked(row, timeout, sig)
            if operator:
                self._store.update_container(row.id, operator_stopped=True)
            return self._info(self._store.get_container(row.id))

    def _stop_locked(
        self, row: metadata.ContainerRow, timeout: float | None, sig: str | None
    ) -> None:
        shim_dir = self._bundle(row)
        socket_path = statedir.path(shim_dir, statedir.SOCKET)
        if restore.shim_alive(shim_dir) and os.path.exists(socket_path):
            try:
                shim = shim_client.ShimClient(socket_path)
                final = shim.stop(sig, timeout)
            except errors.Unavailable:
                pass  # it ended between the check and the call
            else:  # its exit recorded and its task cleaned up while it exits
                self.tasks.finished(self._store.get_container(row.id), final)
        # the reply comes a moment before the shim exits; its task is ours after that
        _wait_shim_exit(shim_dir)

    def kill(self, name: str, sig: str = "SIGKILL") -> client.ContainerInfo:
        """Send ``sig`` to the container's init; the restart policy decides what follows."""
        row = self._row(name)
        shim_dir = self._bundle(row)
        socket_path = statedir.path(shim_dir, statedir.SOCKET)
        if not restore.shim_alive(shim_dir):
            raise errors.FailedPrecondition(f"container {row.name!r} is not running")
        try:
            shim_client.ShimClient(socket_path).kill(sig)
        except errors.Unavailable:
            raise errors.FailedPrecondition(f"container {row.name!r} is not running") from None
        return self._info(self._store.get_container(row.id))

    def restart(self, name: str, timeout: float | None = None) -> client.ContainerInfo:
        """Stop (the stop signal, ``timeout``, SIGKILL) and start again; clears an operator stop."""
        row = self._row(name)
        with self.locks.hold(row.id):
            self._stop_locked(row, timeout, None)
            return self._start_locked(self._store.get_container(row.id))

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
                if "exit_code" in reply:  # its answer, not ours: record and clean up now
                    with self.locks.hold(row.id, wait=False) as held:
                        if held:  # else a stop or start in another process owns the task
                            self.tasks.finished(self._store.get_container(row.id), reply)
                _wait_shim_exit(shim_dir)
        return self._info(self._store.get_container(row.id))

    def rename(self, name: str, new_name: str) -> client.ContainerInfo:
        """Give a container another name (running or not); the name is only a record."""
        objects.check_name("container", new_name)
        row = self._row(name)
        config = dataclasses.replace(records.config_from_json(row.config_json), name=new_name)
        try:
            row = self._store.update_container(
                row.id, name=new_name, config_json=records.config_to_json(config)
            )
        except errors.AlreadyExists:
            raise errors.AlreadyExists(f"container name {new_name!r} is taken") from None
        self._networks.renamed(row.id, new_name)
        return self.tasks.observe(row)

    def remove(self, name: str, *, force: bool = False) -> None:
        row = self._row(name)
        with self.locks.hold(row.id):
            info = self._info(row)
            if info.status in ("running", "restarting", "paused") and not force:
                raise errors.FailedPrecondition(
                    f"container {row.name!r} is {info.status}: "
                    "stop it first or remove it with force"
                )
            shim_dir = self._bundle(row)
            # end a shim (one between restarts too) and wait for it to exit
            if info.status not in ("exited", "dead") or restore.shim_alive(shim_dir):
                self._stop_locked(row, 10.0, "SIGKILL")
            self.tasks.clean_up(row)
            # never through a mount (a subPath of a volume, the rootfs): refused instead
            volume_fs.remove_tree(shim_dir)
            directory = self._layout.container_dir(row.id)
            if os.path.lexists(directory):
                with errors.map_os_errors(f"remove {directory}"):
                    shutil.rmtree(directory)
            # the snapshot's row and the container's in one commit (one fsync)
            with self._store.transaction(f"remove container {row.name}"):
                if row.snapshot_key:
                    try:
                        self._snapshots.remove(row.snapshot_key)
                    except errors.NotFound:
                        pass
                self._store.delete_container(row.id)
            self.locks.forget(row.id)

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

    # -- I/O ---------------------------------------------------------------------

    def exec(
        self, name: str, config: client.ExecConfig, stdio: tuple[int, int, int] | None = None
    ) -> shim_client.ExecSession:
        row = self._row(name)
        if self._info(row).status != "running":
            raise errors.FailedPrecondition(
                f"container {row.name!r} is not running: start it before exec"
            )
        return container_io.exec_in(self._bundle(row), row.name, config, stdio)

    def logs(
        self,
        name: str,
        *,
        tail: int | None = None,
        follow: bool = False,
        since: float | str | None = None,
    ) -> Iterator[client.LogEntry]:
        row = self._row(name)
        running = follow and self._info(row).status in ("running", "restarting")
        return container_io.read(
            self._layout.container_dir(row.id),
            self._bundle(row),
            tail=tail,
            follow=follow,
            since=since,
            running=running,
        )


def _wait_shim_exit(shim_dir: str, timeout: float = 30.0) -> None:
    """Return once the shim has exited (it holds a lock on shim.pid until then).

    Woken by the shim's pidfd the moment it exits (a shim that has just said
    "final" exits within a millisecond, and a 5 ms poll cost half of that on
    average); the lock stays the proof, re-checked at least every 50 ms, so a
    pid reused meanwhile or a kernel without pidfds only makes it slower.
    """
    deadline = time.monotonic() + timeout
    pidfd = -1
    try:
        while restore.shim_alive(shim_dir):
            left = deadline - time.monotonic()
            if left <= 0:
                raise errors.Unavailable(
                    f"the shim of {shim_dir} did not exit within {timeout:.0f}s"
                )
            if pidfd < 0:
                pidfd = _pidfd_of(statedir.path(shim_dir, statedir.SHIM_PID))
            if pidfd >= 0:
                select.select([pidfd], [], [], min(left, 0.05))
            else:
                time.sleep(0.005)
    finally:
        if pidfd >= 0:
            os.close(pidfd)


def _pidfd_of(pid_file: str) -> int:
    """A pidfd for the pid in ``pid_file``, or -1 (no pid, gone, or no pidfd_open)."""
    pid = statedir.read_pid(pid_file)
    if pid is None:
        return -1
    try:
        return os.pidfd_open(pid)
    except (OSError, AttributeError):
        return -1


def write_health_check(shim_dir: str, check: client.HealthcheckConfig | None) -> None:
    """The check the shim runs (``health.json``, see :mod:`runtime.shim.health`)."""
    path = os.path.join(shim_dir, health.FILE)
    if check is None or not check.test or check.test[0] == "NONE":
        statedir.remove(shim_dir, health.FILE)
        return
    document = {
        "test": list(check.test),
        "interval": check.interval,
        "timeout": check.timeout,
        "retries": check.retries,
        "startPeriod": check.start_period,
        "startInterval": check.start_interval,
    }
    statedir.write_atomic(path, json.dumps(document).encode())
