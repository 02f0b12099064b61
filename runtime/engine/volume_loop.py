"""Loop devices for volumes backed by an image file (``o: loop``), with ioctls only.

``attach`` binds a regular file to a free loop device and returns an open fd
of the device; the caller mounts the device and then closes the fd. The
device is configured with ``LO_FLAGS_AUTOCLEAR``: the kernel detaches it on
its own once it is unmounted and no fd is open, so unmounting the volume is
all it takes to free it (as ``mount -o loop`` does), and a failed mount frees
it at the close.

``LOOP_CONFIGURE`` (Linux 5.8) binds and configures in one call; older
kernels get ``LOOP_SET_FD`` then ``LOOP_SET_STATUS64``. A device that another
process grabs between ``LOOP_CTL_GET_FREE`` and the bind answers ``EBUSY``:
we ask for another one. ``fcntl.ioctl`` is stdlib, not a libc call through
ctypes, so this lives here rather than in ``runtime.sys``.
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat
import struct

from runtime import errors

LOOP_CONTROL = "/dev/loop-control"
LOOP_SET_FD = 0x4C00
LOOP_CLR_FD = 0x4C01
LOOP_SET_STATUS64 = 0x4C04
LOOP_CONFIGURE = 0x4C0A
LOOP_CTL_GET_FREE = 0x4C82
LO_FLAGS_READ_ONLY = 1
LO_FLAGS_AUTOCLEAR = 4

# struct loop_info64: device, inode, rdevice, offset, sizelimit (u64); number,
# encrypt_type, encrypt_key_size, flags (u32); file_name[64], crypt_name[64],
# encrypt_key[32]; init[2] (u64) — 232 bytes.
_INFO64 = struct.Struct("=QQQQQIIII64s64s32sQQ")
# struct loop_config: fd, block_size (u32); info (loop_info64); reserved[8] (u64).
_CONFIG = struct.Struct(f"=II{_INFO64.size}s64s")
_ATTEMPTS = 16


def _info(path: str, read_only: bool) -> bytes:
    flags = LO_FLAGS_AUTOCLEAR | (LO_FLAGS_READ_ONLY if read_only else 0)
    name = os.fsencode(path)[:63]
    return _INFO64.pack(0, 0, 0, 0, 0, 0, 0, 0, flags, name, b"", b"", 0, 0)


def attach(path: str, *, read_only: bool = False) -> tuple[int, str]:
    """Bind the file ``path`` to a free loop device: ``(fd of the device, its path)``.

    Close the fd once the device is mounted (or not needed): autoclear frees it.
    """
    what = f"attach {path} to a loop device"
    with errors.map_os_errors(what):
        st = os.stat(path)
    if not stat.S_ISREG(st.st_mode):
        raise errors.InvalidSpec(f"{what}: it is not a regular file (o: loop needs an image file)")
    access = os.O_RDONLY if read_only else os.O_RDWR
    with errors.map_os_errors(what):
        backing = os.open(path, access | os.O_CLOEXEC)
    try:
        with errors.map_os_errors(f"{what}: open {LOOP_CONTROL}"):
            control = os.open(LOOP_CONTROL, os.O_RDWR | os.O_CLOEXEC)
        try:
            for _ in range(_ATTEMPTS):
                with errors.map_os_errors(f"{what}: find a free loop device"):
                    number = fcntl.ioctl(control, LOOP_CTL_GET_FREE)
                device = f"/dev/loop{number}"
                with errors.map_os_errors(f"{what}: open {device}"):
                    fd = os.open(device, access | os.O_CLOEXEC)
                try:
                    _bind(fd, backing, path, read_only)
                except OSError as exc:
                    os.close(fd)
                    if exc.errno == errno.EBUSY:
                        continue  # taken by someone else meanwhile: another one
                    raise errors.category_for_errno(exc.errno)(
                        f"{what}: {device}: {(exc.strerror or str(exc)).lower()}"
                    ) from exc
                return fd, device
        finally:
            os.close(control)
    finally:
        os.close(backing)
    raise errors.Transient(f"{what}: every free loop device was taken by others; try again")


def _bind(fd: int, backing: int, path: str, read_only: bool) -> None:
    info = _info(path, read_only)
    try:
        fcntl.ioctl(fd, LOOP_CONFIGURE, _CONFIG.pack(backing, 0, info, b""))
        return
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOTTY):
            raise
    fcntl.ioctl(fd, LOOP_SET_FD, backing)
    try:
        fcntl.ioctl(fd, LOOP_SET_STATUS64, info)
    except OSError:
        fcntl.ioctl(fd, LOOP_CLR_FD, 0)
        raise


def backing_file(device: str) -> str | None:
    """The file a loop device is bound to (from sysfs), or None when it is free."""
    name = os.path.basename(device)
    try:
        with open(f"/sys/block/{name}/loop/backing_file", encoding="utf-8") as f:
            return f.read().strip() or None
    except OSError:
        return None
