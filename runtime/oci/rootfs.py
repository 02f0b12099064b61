r"""Build the container's filesystem view; runs in the container's init, in
its new mount namespace, before ``pivot_root``.

Order (each step needs the previous one):

1. ``/`` gets ``linux.rootfsPropagation`` (default ``rslave``: host mounts
   still reach us, ours never reach the host), and the rootfs is bind-mounted
   on itself so that it is a mount point ``pivot_root`` accepts. ``pivot_root``
   refuses shared mounts (and a bind of an unbindable one fails), so for
   ``shared``/``unbindable`` the tree is ``rslave`` until after the pivot and
   the new ``/`` gets the requested type then: a shared root is shared among
   the container's own mounts and still a slave of the host, never a peer of
   the host (runc fails outright there, opencontainers/runc#1755).
2. ``mounts`` in config order. Every destination is resolved inside the
   rootfs by :mod:`runtime.oci.paths` and mounted onto through its fd
   (``/proc/self/fd/N`` of the *host's* procfs, which the container cannot
   touch); ``proc``/``sysfs`` destinations may not be symlinks. Flags that a
   bind mount ignores (``ro``, ``nosuid`` …) are applied with a remount of the
   re-resolved destination. When the config has no ``/dev`` mount a tmpfs is
   used, and ``/dev/pts`` (devpts newinstance) and ``/dev/shm`` are added when
   missing (with the options of ``runc spec``).
3. ``/dev``: the default nodes (null zero full random urandom tty) by mknod,
   ``linux.devices``, and the fd/stdin/stdout/stderr/ptmx/core symlinks —
   unless ``/dev`` is a bind mount (a privileged container sharing the host's).
4. ``readonlyPaths`` (bind on itself, remount ro) and ``maskedPaths``: a
   directory gets a read-only tmpfs, a file a bind of the ``/dev/null`` this
   init made, checked with ``fstat`` to be char 1:3 on our own /dev tmpfs and
   bound through its fd (CVE-2025-31133: never re-resolve the container's
   /dev/null by path).
5. ``pivot_root(".", ".")`` then a lazy unmount of the old root (made rslave
   first so the unmount does not propagate to the host), and ``root.readonly``.
   Only when the caller asks (``no_pivot``, runc's ``--no-pivot``, for a
   rootfs on a ramfs where pivot_root fails) the rootfs is moved onto ``/``
   (``MS_MOVE``) and ``chroot``\ ed into instead: weaker, since the old root
   stays reachable to a process that can escape a chroot (CAP_SYS_CHROOT).

Raises ``runtime.errors`` categories whose messages name the path.
"""

from __future__ import annotations

import errno
import os
import stat

import runtime.sys as rsys
from runtime import errors
from runtime.oci import cgroups, config, paths

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["DEFAULT_DEVICES", "prepare"]

#: (name, major, minor) of the nodes every container's /dev gets.
DEFAULT_DEVICES = (
    ("null", 1, 3),
    ("zero", 1, 5),
    ("full", 1, 7),
    ("random", 1, 8),
    ("urandom", 1, 9),
    ("tty", 5, 0),
)
_DEV_LINKS = (
    ("fd", "/proc/self/fd"),
    ("stdin", "/proc/self/fd/0"),
    ("stdout", "/proc/self/fd/1"),
    ("stderr", "/proc/self/fd/2"),
    ("ptmx", "pts/ptmx"),
)
_DEFAULT_DEV_MOUNTS = (
    config.Mount("/dev", "tmpfs", "tmpfs", ["nosuid", "strictatime", "mode=755", "size=65536k"]),
    config.Mount(
        "/dev/pts",
        "devpts",
        "devpts",
        ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"],
    ),
    config.Mount(
        "/dev/shm", "tmpfs", "shm", ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]
    ),
)
_PER_MOUNT_FLAGS = (
    rsys.MS_RDONLY
    | rsys.MS_NOSUID
    | rsys.MS_NODEV
    | rsys.MS_NOEXEC
    | rsys.MS_NOATIME
    | rsys.MS_NODIRATIME
    | rsys.MS_RELATIME
    | rsys.MS_STRICTATIME
    | rsys.MS_NOSYMFOLLOW
)
_LOCKED_FLAGS = rsys.MS_NOSUID | rsys.MS_NODEV | rsys.MS_NOEXEC  # statvfs f_flag uses the same bits
_ATIME_FLAGS = rsys.MS_NOATIME | rsys.MS_NODIRATIME | rsys.MS_RELATIME | rsys.MS_STRICTATIME
# statvfs f_flag bit -> mount flag (ST_NOATIME, ST_NODIRATIME, ST_RELATIME)
_ST_ATIME = ((1024, rsys.MS_NOATIME), (2048, rsys.MS_NODIRATIME), (4096, rsys.MS_RELATIME))


def prepare(
    spec: config.Spec,
    cg: cgroups.Cgroup,
    cgroupns: bool,
    before_pivot: Callable[[int], None] | None = None,
    no_pivot: bool = False,
) -> None:
    """Everything from step 1 to 5 above; on return ``/`` is the container's.

    ``before_pivot(root_fd)`` runs once the mounts are made, right before
    ``pivot_root`` (hooks, the console).
    """
    rootfs = spec.root_path
    early, late = spec.rootfs_propagation, 0
    if early & (rsys.MS_SHARED | rsys.MS_UNBINDABLE):
        early, late = rsys.MS_SLAVE | rsys.MS_REC, early
    own = spec.private_mounts
    if not own:
        early = late = 0  # never change the propagation of someone else's mounts
        no_pivot = True  # nor the root of their namespace: chroot
    if early:
        with errors.map_os_errors("make the mounts of / private to the container"):
            rsys.mount(None, "/", None, early)
    with errors.map_os_errors(f"bind the rootfs {rootfs} on itself"):
        rsys.mount(rootfs, rootfs, None, rsys.MS_BIND | rsys.MS_REC)
        root_fd = os.open(rootfs, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        mounts = _effective_mounts(spec.mounts)
        for m in mounts:
            if m.type in ("cgroup", "cgroup2"):
                _mount_cgroup(root_fd, m, cg, cgroupns)
            else:
                _mount(root_fd, m)
        dev_is_bind = any(m.destination == "/dev" and m.options.bind for m in mounts)
        if not dev_is_bind:
            _populate_dev(root_fd, spec.devices)
        _ensure_dir(root_fd, spec.process.cwd)
        for path in spec.readonly_paths:
            _readonly(root_fd, path)
        if spec.masked_paths:
            _mask(root_fd, spec.masked_paths, check_dev=not dev_is_bind)
        if before_pivot is not None:
            before_pivot(root_fd)
        if not own:
            with errors.map_os_errors(f"chroot to {rootfs} (no mount namespace of its own)"):
                os.fchdir(root_fd)
                os.chroot(".")
                os.chdir("/")
        elif no_pivot:
            with errors.map_os_errors(f"move {rootfs} onto / and chroot (no_pivot)"):
                os.fchdir(root_fd)
                rsys.mount(".", "/", None, rsys.MS_MOVE)
                os.chroot(".")
                os.chdir("/")
        else:
            with errors.map_os_errors(f"pivot_root to {rootfs}"):
                os.fchdir(root_fd)
                rsys.pivot_root(".", ".")
                rsys.mount(None, ".", None, rsys.MS_SLAVE | rsys.MS_REC)
                rsys.umount2(".", rsys.MNT_DETACH)
                os.chdir("/")
    finally:
        os.close(root_fd)
    if late:
        with errors.map_os_errors("set linux.rootfsPropagation on the container's /"):
            rsys.mount(None, "/", None, late)
    if spec.root_readonly:
        with errors.map_os_errors("remount the container's / read-only"):
            _remount("/", rsys.MS_RDONLY)


def _effective_mounts(mounts: list[config.Mount]) -> list[config.Mount]:
    dests = {m.destination for m in mounts}
    if any(m.destination == "/dev" and m.options.bind for m in mounts):
        return mounts
    extra = [d for d in _DEFAULT_DEV_MOUNTS if d.destination not in dests]
    if not extra:
        return mounts
    if "/dev" not in dests:
        return extra + mounts
    at = next(i for i, m in enumerate(mounts) if m.destination == "/dev") + 1
    return mounts[:at] + extra + mounts[at:]


def _open(root_fd: int, path: str, *, create: str | None = None, no_symlinks: bool = False) -> int:
    try:
        return paths.open_in_root(root_fd, path, create=create, no_symlinks=no_symlinks)
    except OSError as exc:
        if no_symlinks and exc.errno == errno.ELOOP:
            raise errors.InvalidSpec(
                f"mount destination {path} is a symlink in the rootfs ({exc.filename}): "
                "proc and sysfs must be mounted on an ordinary directory"
            ) from None
        with errors.map_os_errors(f"resolve {path} in the container's rootfs"):
            raise


def _mount(root_fd: int, m: config.Mount) -> None:
    opts = m.options
    what = f"mount {m.type or 'bind'} {m.source} at {m.destination}"
    create = "dir"
    if opts.bind:
        with errors.map_os_errors(f"{what}: source"):
            create = "dir" if stat.S_ISDIR(os.stat(m.source).st_mode) else "file"
    fd = _open(root_fd, m.destination, create=create, no_symlinks=m.type in ("proc", "sysfs"))
    host_sys = False
    try:
        with errors.map_os_errors(what):
            if opts.bind:
                flags = rsys.MS_BIND | (rsys.MS_REC if opts.recursive else 0)
                rsys.mount(m.source, paths.fd_path(fd), None, flags)
            else:
                try:
                    rsys.mount(m.source, paths.fd_path(fd), m.type, opts.flags, opts.data or None)
                except PermissionError:
                    if m.type != "sysfs":
                        raise
                    # a user namespace that does not own the network namespace may
                    # not mount sysfs: show the host's, read-only (runc does the same)
                    rsys.mount("/sys", paths.fd_path(fd), None, rsys.MS_BIND | rsys.MS_REC)
                    host_sys = True
    finally:
        os.close(fd)
    if host_sys:
        with errors.map_os_errors(what):
            _remount_at(root_fd, m.destination, rsys.MS_RDONLY | (opts.flags & _PER_MOUNT_FLAGS))
    if (opts.bind and opts.flags & _PER_MOUNT_FLAGS) or opts.propagation:
        fd = _open(root_fd, m.destination)  # resolved afresh: now the new mount's root
        try:
            with errors.map_os_errors(what):
                if opts.bind and opts.flags & _PER_MOUNT_FLAGS:
                    _remount(paths.fd_path(fd), opts.flags & _PER_MOUNT_FLAGS)
                for prop in opts.propagation:
                    rsys.mount(None, paths.fd_path(fd), None, prop)
        finally:
            os.close(fd)


def _remount(target: str, flags: int) -> None:
    """Bind-remount ``target`` with ``flags``, keeping its nosuid/nodev/noexec
    and, unless ``flags`` name one, its atime mode (in a user namespace the
    kernel refuses a remount that would clear any of these, "locked" flags)."""
    current = os.statvfs(target).f_flag
    keep = current & _LOCKED_FLAGS
    if not flags & _ATIME_FLAGS:
        for st_flag, ms_flag in _ST_ATIME:
            if current & st_flag:
                keep |= ms_flag
    rsys.mount(None, target, None, rsys.MS_REMOUNT | rsys.MS_BIND | flags | keep)


def _mount_cgroup(root_fd: int, m: config.Mount, cg: cgroups.Cgroup, cgroupns: bool) -> None:
    """/sys/fs/cgroup showing only the container's own cgroup.

    v2 with a private cgroup namespace mounts a fresh cgroup2 (rooted at the
    namespace); otherwise the container's directories are bind-mounted, on v1
    one per hierarchy inside a tmpfs, so the host's tree is never visible.
    """
    flags = m.options.flags & _PER_MOUNT_FLAGS
    what = f"mount cgroup at {m.destination}"
    fd = _open(root_fd, m.destination, create="dir", no_symlinks=True)
    try:
        target = paths.fd_path(fd)
        with errors.map_os_errors(what):
            if cg.is_v2:
                if cgroupns:
                    rsys.mount("cgroup2", target, "cgroup2", flags)
                else:
                    rsys.mount(cg.dirs[0], target, None, rsys.MS_BIND)
                    _remount_at(root_fd, m.destination, flags)
                return
            rsys.mount("tmpfs", target, "tmpfs", flags & ~rsys.MS_RDONLY, "mode=755")
    finally:
        os.close(fd)
    for name, directory in cg.hierarchies():
        path = f"{m.destination}/{name}"
        sub = _open(root_fd, path, create="dir")
        try:
            with errors.map_os_errors(f"{what}: bind {directory} at {path}"):
                rsys.mount(directory, paths.fd_path(sub), None, rsys.MS_BIND)
        finally:
            os.close(sub)
        with errors.map_os_errors(f"{what}: remount {path}"):
            _remount_at(root_fd, path, flags)
    if flags & rsys.MS_RDONLY:
        top = _open(root_fd, m.destination)
        try:
            with errors.map_os_errors(f"{what}: read-only"):
                rsys.mount(None, paths.fd_path(top), None, rsys.MS_REMOUNT | flags)
        finally:
            os.close(top)


def _remount_at(root_fd: int, path: str, flags: int) -> None:
    """Remount the mount now at ``path`` (resolved afresh, so that it is the
    new mount's root and not the directory under it)."""
    fd = _open(root_fd, path)
    try:
        _remount(paths.fd_path(fd), flags)
    finally:
        os.close(fd)


def _populate_dev(root_fd: int, devices: list[config.Device]) -> None:
    wanted = {d.path for d in devices}
    dev = _open(root_fd, "/dev", create="dir")
    try:
        for name, major, minor in DEFAULT_DEVICES:
            if f"/dev/{name}" not in wanted:
                _mknod(dev, name, stat.S_IFCHR | 0o666, major, minor, 0, 0, f"/dev/{name}")
        for d in devices:
            parent_path, name = d.path.rsplit("/", 1)
            parent = _open(root_fd, parent_path, create="dir")
            try:
                kind = {"c": stat.S_IFCHR, "u": stat.S_IFCHR, "b": stat.S_IFBLK, "p": stat.S_IFIFO}
                mode = kind[d.type] | d.file_mode
                _mknod(parent, name, mode, d.major, d.minor, d.uid, d.gid, d.path)
            finally:
                os.close(parent)
        links = list(_DEV_LINKS)
        if os.path.exists("/proc/kcore"):
            links.append(("core", "/proc/kcore"))
        for name, target in links:
            if f"/dev/{name}" in wanted:
                continue
            with errors.map_os_errors(f"symlink /dev/{name} -> {target}"):
                try:
                    os.symlink(target, name, dir_fd=dev)
                except FileExistsError:
                    pass
    finally:
        os.close(dev)


def _mknod(
    dir_fd: int, name: str, mode: int, major: int, minor: int, uid: int, gid: int, host: str
) -> None:
    """mknod ``name`` in ``dir_fd``; where mknod is not allowed (a user namespace)
    bind-mount the host's node ``host`` on an empty file instead, as runc does."""
    with errors.map_os_errors(f"create device {host}"):
        try:
            try:
                os.mknod(name, mode, os.makedev(major, minor), dir_fd=dir_fd)
            except FileExistsError:
                os.unlink(name, dir_fd=dir_fd)
                os.mknod(name, mode, os.makedev(major, minor), dir_fd=dir_fd)
        except PermissionError:
            if stat.S_ISFIFO(mode):
                raise
            st = os.stat(host)
            if st.st_rdev != os.makedev(major, minor):
                raise errors.FailedPrecondition(
                    f"cannot mknod {host} here (user namespace?) and the host's {host} is "
                    f"another device"
                ) from None
            flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
            os.close(os.open(name, flags, 0o600, dir_fd=dir_fd))
            target = paths.open_in_root(dir_fd, name)
            try:
                rsys.mount(host, paths.fd_path(target), None, rsys.MS_BIND)
            finally:
                os.close(target)
            return
        os.chmod(name, stat.S_IMODE(mode), dir_fd=dir_fd, follow_symlinks=False)
        if uid or gid:
            os.chown(name, uid, gid, dir_fd=dir_fd, follow_symlinks=False)


def _ensure_dir(root_fd: int, path: str) -> None:
    """Create ``path`` (the process cwd) inside the rootfs if missing, as runc does."""
    os.close(_open(root_fd, path, create="dir"))


def _readonly(root_fd: int, path: str) -> None:
    try:
        fd = paths.open_in_root(root_fd, path)
    except FileNotFoundError:
        return  # nothing to protect (runc skips missing paths too)
    try:
        with errors.map_os_errors(f"make {path} read-only"):
            target = paths.fd_path(fd)
            rsys.mount(target, target, None, rsys.MS_BIND | rsys.MS_REC)
    finally:
        os.close(fd)
    with errors.map_os_errors(f"make {path} read-only"):
        _remount_at(root_fd, path, rsys.MS_RDONLY | rsys.MS_REC)


def _mask(root_fd: int, masked: list[str], *, check_dev: bool) -> None:
    null = _open(root_fd, "/dev/null")
    try:
        _check_null(root_fd, null, check_dev)
        for path in masked:
            try:
                fd = paths.open_in_root(root_fd, path)
            except FileNotFoundError:
                continue
            try:
                with errors.map_os_errors(f"mask {path}"):
                    target = paths.fd_path(fd)
                    if stat.S_ISDIR(os.fstat(fd).st_mode):
                        rsys.mount("tmpfs", target, "tmpfs", rsys.MS_RDONLY)
                    else:
                        rsys.mount(paths.fd_path(null), target, None, rsys.MS_BIND)
            finally:
                os.close(fd)
    finally:
        os.close(null)


def _check_null(root_fd: int, null: int, check_dev: bool) -> None:
    """The inode bound over masked files must be the null device we made (or,
    in a user namespace, the host's /dev/null that we bound there)."""
    st = os.fstat(null)
    dev = _open(root_fd, "/dev")
    try:
        dev_st = os.fstat(dev)
    finally:
        os.close(dev)
    ours = st.st_dev == dev_st.st_dev
    if not ours:
        host = os.stat("/dev/null")
        ours = (st.st_dev, st.st_ino) == (host.st_dev, host.st_ino)
    if not stat.S_ISCHR(st.st_mode) or st.st_rdev != os.makedev(1, 3) or (check_dev and not ours):
        raise errors.FailedPrecondition(
            "/dev/null in the container is not the char device 1:3 this runtime created: "
            "refusing to mask paths with it"
        )
