"""A container's mounts: checked at create, resolved into OCI mounts at start.

What a ``client.MountConfig`` becomes (Docker's semantics unless said):

* ``volume`` with a source: the named volume, which must exist. Without a
  source: the container's anonymous volume for that target
  (:func:`runtime.engine.volumes.anonymous_name`), made at create and reused
  by the next container of the same owner (its name, unless labelled). Every
  image ``VOLUME`` that no mount covers gets one too.
* ``bind``: an absolute host path that must exist (an error names it), or is
  made as a directory with ``create_host_path``. ``propagation`` defaults to
  ``rprivate``; a ``shared``/``slave`` one makes the container's root
  ``rshared``/``rslave``, as Docker does, or nothing would propagate.
* ``tmpfs``: ``size`` and ``mode`` as tmpfs options, ``nosuid,nodev``.
* ``read_only`` adds ``ro`` (writes fail with EROFS), else ``rw``.
* ``sub_path``: a path inside the volume (or bind source), resolved without
  letting it escape (:func:`runtime.engine.volume_fs.open_inside`; missing
  directories are created, as Kubernetes does, rather than failing the start
  as Docker does) and bound *through its fd* onto a staging point in the
  bundle (``<bundle>/volumes/<n>``), which is what the runtime mounts: a
  container sharing the volume cannot swap a component for a symlink between
  the check and the mount. The staging mounts live as long as the task (a
  restart by the shim reuses them) and go with its clean-up
  (:func:`release`).

At start every volume is mounted if its mount went away (after a reboot), and
on the container's first start an empty volume is filled with the image's
content at its target (:mod:`runtime.engine.volume_copyup`) unless
``no_copy`` or ``sub_path`` is set. Mounts are ordered parents first (by the
depth of their target), so ``/data`` is mounted before ``/data/cache``.
"""

from __future__ import annotations

import dataclasses
import os
import stat
from typing import Any

from runtime import client, errors
from runtime.engine import mounts, volume_copyup, volume_fs, volumes

PROPAGATIONS = ("private", "rprivate", "shared", "rshared", "slave", "rslave")
STAGING_DIR = volume_fs.STAGING_DIR
COPIED_MARK = "volumes-copied"


@dataclasses.dataclass(frozen=True)
class VolumeUse:
    """A volume mount of a container with the volume it names."""

    mount: client.MountConfig
    volume: str
    anonymous: bool
    from_image: bool = False


def volume_uses(config: client.ContainerConfig, image: client.ImageConfig) -> list[VolumeUse]:
    """Every volume a container mounts: its volume mounts, then the image's ``VOLUME``s
    that no mount covers."""
    uses = []
    for m in config.mounts:
        if m.type == "volume":
            name = m.source or volumes.anonymous_name(volumes.owner_of(config), m.target)
            uses.append(VolumeUse(m, name, anonymous=not m.source))
    covered = {os.path.normpath(m.target) for m in config.mounts}
    for path in image.volumes:
        target = os.path.normpath(path)
        if not target.startswith("/") or target in covered:
            continue
        covered.add(target)
        mount = client.MountConfig(type="volume", target=target)
        uses.append(
            VolumeUse(
                mount,
                volumes.anonymous_name(volumes.owner_of(config), target),
                True,
                from_image=True,
            )
        )
    return uses


def check(
    config: client.ContainerConfig, image: client.ImageConfig, store: volumes.Volumes
) -> None:
    """At create: named volumes exist, anonymous ones are made, bind sources exist
    (or are made with ``create_host_path``), options make sense."""
    for m in config.mounts:
        _check_options(config.name, m)
        if m.type == "bind":
            _bind_source(config.name, m)
    for use in volume_uses(config, image):
        if use.anonymous:
            store.ensure_anonymous(volumes.owner_of(config), use.mount.target)
        else:
            try:
                store.options(use.volume)  # the record only: no look at its users
            except errors.NotFound:
                raise errors.NotFound(
                    f"container {config.name}: volume {use.volume!r} (for {use.mount.target}) "
                    "not found; create it first"
                ) from None


def _check_options(container: str, m: client.MountConfig) -> None:
    what = f"container {container}: mount at {m.target}"
    if not m.target.startswith("/"):
        raise errors.InvalidSpec(f"{what}: the target must be an absolute path")
    if m.propagation is not None:
        if m.type != "bind":
            raise errors.InvalidSpec(f"{what}: propagation applies to bind mounts only")
        if m.propagation not in PROPAGATIONS:
            raise errors.InvalidSpec(
                f"{what}: unknown propagation {m.propagation!r}; use one of "
                + ", ".join(PROPAGATIONS)
            )
    if m.sub_path is not None:
        if m.type == "tmpfs":
            raise errors.InvalidSpec(f"{what}: a tmpfs mount has no subPath")
        if m.sub_path.startswith("/") or ".." in m.sub_path.split("/"):
            raise errors.InvalidSpec(
                f"{what}: subPath {m.sub_path!r} must be relative and without '..'"
            )
    if m.type == "bind" and (not m.source or not m.source.startswith("/")):
        raise errors.InvalidSpec(f"{what}: a bind source must be an absolute host path")


def _bind_source(container: str, m: client.MountConfig) -> str:
    assert m.source is not None
    if not os.path.lexists(m.source):
        if not m.create_host_path:
            raise errors.NotFound(
                f"container {container}: bind source {m.source} (for {m.target}) does not exist; "
                "create it, fix the path, or set createHostPath: true"
            )
        with errors.map_os_errors(f"container {container}: create bind source {m.source}"):
            os.makedirs(m.source, mode=0o755, exist_ok=True)
    return m.source


def _depth(target: str) -> int:
    return len([p for p in os.path.normpath(target).split("/") if p])


def resolve(
    config: client.ContainerConfig,
    image: client.ImageConfig,
    store: volumes.Volumes,
    *,
    rootfs: str,
    bundle_dir: str,
    container_dir: str,
) -> list[dict[str, Any]]:
    """At start: the container's user mounts as OCI mounts, volumes mounted and
    copied up, subPaths staged. Call with the rootfs mounted; on failure the
    caller calls :func:`release`."""
    for m in config.mounts:
        _check_options(config.name, m)
    first_start = not os.path.exists(os.path.join(container_dir, COPIED_MARK))
    uses = {id(u.mount): u for u in volume_uses(config, image)}
    image_mounts = [u.mount for u in uses.values() if u.from_image]
    ordered = sorted([*config.mounts, *image_mounts], key=lambda m: _depth(m.target))
    staging = os.path.join(bundle_dir, STAGING_DIR)
    result = []
    for index, m in enumerate(ordered):
        if m.type == "tmpfs":
            result.append(_tmpfs(m))
            continue
        if m.type == "bind":
            source = _bind_source(config.name, m)
        else:
            use = uses[id(m)]
            if use.anonymous:
                store.ensure_anonymous(volumes.owner_of(config), m.target)
            source = store.ensure_mounted(use.volume)
            if first_start and not m.no_copy and not m.sub_path:
                with store.locked(use.volume):
                    volume_copyup.copy_up(rootfs, m.target, source)
        if m.sub_path:
            source = _stage_sub_path(config.name, m, source, staging, index)
        options = ["rbind", m.propagation or "rprivate", "ro" if m.read_only else "rw"]
        result.append(
            {"destination": m.target, "type": "bind", "source": source, "options": options}
        )
    if first_start:
        mark = os.path.join(container_dir, COPIED_MARK)
        with errors.map_os_errors(f"mark the volumes of {config.name} as copied"):
            os.close(os.open(mark, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600))
    return result


def rootfs_propagation(config: client.ContainerConfig) -> str:
    """``rshared``/``rslave`` when a bind asks for it (else binds could not propagate)."""
    words = {m.propagation for m in config.mounts if m.type == "bind" and m.propagation}
    if words & {"shared", "rshared"}:
        return "rshared"
    if words & {"slave", "rslave"}:
        return "rslave"
    return "rprivate"


def _tmpfs(m: client.MountConfig) -> dict[str, Any]:
    opts = ["nosuid", "nodev"]
    if m.size is not None:
        opts.append(f"size={m.size}")
    if m.mode is not None:
        opts.append(f"mode={m.mode:o}")
    if m.read_only:
        opts.append("ro")
    return {"destination": m.target, "type": "tmpfs", "source": "tmpfs", "options": opts}


def _stage_sub_path(
    container: str, m: client.MountConfig, source: str, staging: str, index: int
) -> str:
    """Bind ``source``/``sub_path`` through its fd onto ``<staging>/<index>``."""
    assert m.sub_path is not None
    what = f"container {container}: subPath {m.sub_path} of {m.source or m.target}"
    fd = volume_fs.open_inside(source, m.sub_path, what=what)
    try:
        point = os.path.join(staging, str(index))
        with errors.map_os_errors(f"{what}: staging point {point}"):
            os.makedirs(staging, mode=0o700, exist_ok=True)
            if stat.S_ISDIR(os.fstat(fd).st_mode):
                os.makedirs(point, mode=0o700, exist_ok=True)
            else:
                os.close(os.open(point, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600))
        mounts.mount_all(
            [mounts.Mount("bind", f"/proc/self/fd/{fd}", None, ("bind", "rprivate"))], point
        )
    finally:
        os.close(fd)
    return point


def release(bundle_dir: str) -> None:
    """Unmount and remove the subPath staging points of a bundle (idempotent)."""
    volume_fs.release_staging(bundle_dir)
