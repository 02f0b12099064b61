"""The local volume driver's options, as Docker's: ``type``, ``device``, ``o``.

What the options make of ``<root>/volumes/<name>/_data``:

* **directory** — no options: a plain directory on the root's filesystem.
* **tmpfs** — ``type: tmpfs`` (``device`` is ignored; Docker users write
  ``device: tmpfs``); ``o`` goes to tmpfs as is (``size=64m,mode=1777,uid=1000``).
* **bind** — ``o`` holds ``bind`` (or ``rbind``), ``type`` is absent or
  ``none``, ``device`` is an absolute path of an existing host directory.
* **filesystem** — any other ``type`` with a ``device``: a block device the
  user formatted, or an image file with ``o: loop`` (bound to a free loop
  device that the kernel frees when the volume is unmounted). The rest of
  ``o`` are mount options (``ro``, ``noatime`` become flags, anything else,
  such as ``data=ordered`` or ``addr=…`` for nfs, goes to the filesystem).

Every kind but *directory* is a mount: made when the volume is created (so a
wrong option fails at once and nothing is recorded), made again when the
volume is used or repaired and found unmounted (after a reboot: ``check``
reports it, ``observe`` shows it, ``apply`` and a container start repair it),
and undone when the volume is removed. Removing a bind or filesystem volume
never touches the data on the host directory or device: only the mount goes.

A mount that cannot be made is an error, never a silent fallback to the
directory underneath: a container must not write its data to the root's
filesystem where the mount would later hide it.
"""

from __future__ import annotations

import dataclasses
import os
import stat
from collections.abc import Sequence
from typing import Literal

from runtime import errors
from runtime.engine import mounts, volume_loop

Kind = Literal["directory", "tmpfs", "bind", "filesystem"]
OPTION_KEYS = ("type", "device", "o")


@dataclasses.dataclass(frozen=True)
class LocalOptions:
    kind: Kind
    fstype: str | None = None
    device: str | None = None
    options: tuple[str, ...] = ()  # the words of ``o`` left after bind/rbind/loop
    recursive: bool = False  # rbind
    loop: bool = False

    @property
    def mounted(self) -> bool:
        return self.kind != "directory"

    def describe(self) -> str:
        """Words for messages and ``volume ls``: ``tmpfs``, ``bind of /srv``…"""
        if self.kind == "directory":
            return "directory"
        if self.kind == "tmpfs":
            return "tmpfs"
        if self.kind == "bind":
            return f"bind of {self.device}"
        return f"{self.fstype} on {self.device}{' (loop)' if self.loop else ''}"


def parse(name: str, options: Sequence[tuple[str, str]]) -> LocalOptions:
    """The options of volume ``name``, checked; ``InvalidSpec`` says what is wrong."""
    opts = dict(options)
    unknown = sorted(set(opts) - set(OPTION_KEYS))
    if unknown:
        raise errors.InvalidSpec(
            f"volume {name}: unknown driver option {unknown[0]!r}; the local driver takes "
            "type, device and o"
        )
    fstype = opts.get("type", "").strip() or None
    device = opts.get("device", "").strip() or None
    words = [w.strip() for w in opts.get("o", "").split(",") if w.strip()]
    bind = [w for w in words if w in ("bind", "rbind")]
    loop = "loop" in words
    rest = tuple(w for w in words if w not in ("bind", "rbind", "loop"))
    if not opts or (fstype is None and device is None and not words):
        return LocalOptions("directory")
    if fstype == "tmpfs":
        if bind or loop:
            raise errors.InvalidSpec(f"volume {name}: a tmpfs volume takes no bind or loop in o")
        return LocalOptions("tmpfs", "tmpfs", "tmpfs", rest)
    if bind:
        if fstype not in (None, "none", "bind"):
            raise errors.InvalidSpec(
                f"volume {name}: o: bind goes with type: none (got type {fstype!r})"
            )
        if loop:
            raise errors.InvalidSpec(f"volume {name}: o cannot hold both bind and loop")
        if not device or not device.startswith("/"):
            raise errors.InvalidSpec(
                f"volume {name}: a bind volume needs device: an absolute host directory"
            )
        return LocalOptions("bind", None, os.path.normpath(device), rest, "rbind" in bind)
    if fstype in (None, "none"):
        raise errors.InvalidSpec(
            f"volume {name}: give type (tmpfs, or the filesystem on device such as ext4), "
            "or o: bind with device: a host directory"
        )
    if not device:
        raise errors.InvalidSpec(
            f"volume {name}: type {fstype} needs device: a block device or, with o: loop, "
            "an image file"
        )
    if loop and not device.startswith("/"):
        raise errors.InvalidSpec(f"volume {name}: device {device} must be an absolute path")
    return LocalOptions("filesystem", fstype, device, rest, loop=loop)


def check_device(name: str, opts: LocalOptions) -> None:
    """The host side the options name exists and has the right type (before mounting)."""
    if opts.kind == "bind":
        assert opts.device is not None
        if not os.path.isdir(opts.device):
            raise errors.NotFound(
                f"volume {name}: bind source {opts.device} is not an existing directory; "
                "create it first"
            )
    elif opts.kind == "filesystem" and opts.device and opts.device.startswith("/"):
        try:
            mode = os.stat(opts.device).st_mode
        except FileNotFoundError:
            raise errors.NotFound(f"volume {name}: device {opts.device} does not exist") from None
        except OSError as exc:
            raise errors.category_for_errno(exc.errno)(
                f"volume {name}: device {opts.device}: {(exc.strerror or '').lower()}"
            ) from exc
        if opts.loop and not stat.S_ISREG(mode):
            raise errors.InvalidSpec(
                f"volume {name}: o: loop needs an image file, and {opts.device} is not one"
            )
        if not opts.loop and stat.S_ISREG(mode):
            raise errors.InvalidSpec(
                f"volume {name}: device {opts.device} is a file; add loop to o to mount it"
            )


def mount(name: str, opts: LocalOptions, mountpoint: str) -> None:
    """Mount the volume's filesystem at ``mountpoint`` (nothing for a directory)."""
    if not opts.mounted:
        return
    check_device(name, opts)
    if opts.kind == "tmpfs":
        spec = mounts.Mount("tmpfs", "tmpfs", None, ("nosuid", "nodev", *opts.options))
    elif opts.kind == "bind":
        assert opts.device is not None
        how = "rbind" if opts.recursive else "bind"
        spec = mounts.Mount("bind", opts.device, None, (how, "rprivate", *opts.options))
    else:
        assert opts.fstype is not None and opts.device is not None
        if opts.loop:
            read_only = "ro" in opts.options
            fd, device = volume_loop.attach(opts.device, read_only=read_only)
            try:  # autoclear: the device goes with the mount, or at this close
                mounts.mount_all(
                    [mounts.Mount(opts.fstype, device, None, opts.options)], mountpoint
                )
            finally:
                os.close(fd)
            return
        spec = mounts.Mount(opts.fstype, opts.device, None, opts.options)
    mounts.mount_all([spec], mountpoint)


def is_mounted(mountpoint: str) -> bool:
    return mounts.is_mounted(mountpoint)


def unmount(mountpoint: str) -> None:
    """Detach whatever is mounted at ``mountpoint``; FailedPrecondition if it stays."""
    mounts.unmount(mountpoint)
    if mounts.is_mounted(mountpoint):
        raise errors.FailedPrecondition(f"{mountpoint} is still mounted after unmounting it")


def problems(name: str, opts: LocalOptions, mountpoint: str) -> list[str]:
    """What is wrong on the host now (drift): the directory or the mount gone."""
    if not os.path.isdir(mountpoint):
        return [f"its directory {mountpoint} is missing"]
    if not opts.mounted or is_mounted(mountpoint):
        return []
    found = [
        f"{opts.describe()} is not mounted at {mountpoint} (was the host rebooted?); "
        "apply or a container start mounts it again"
    ]
    try:
        check_device(name, opts)
    except errors.RuntimeError_ as exc:
        found.append(str(exc))
    return found
