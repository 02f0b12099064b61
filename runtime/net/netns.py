"""Network namespaces that outlive their processes, and work done inside one.

A container on a bridge, macvlan or overlay network gets a namespace made
before it starts and bind-mounted at ``<run root>/netns/<container id>``; its
config.json joins it by path. The shim restarts a container with the same
bundle (restart policies), so the namespace, its links and its addresses stay
with the container across restarts and are removed only when the engine
detaches it.

Namespaces are entered by a short-lived helper thread, never by forking: the
engine runs actions on several threads, and ``setns``/``unshare`` of the
network namespace act on the calling thread only. The thread creates the
namespace (``unshare``) and binds ``/proc/thread-self/ns/net`` at the path, or
joins one (``setns``) to open a netlink socket there: a socket belongs to the
namespace it was created in, whichever thread uses it afterwards. When the
thread ends, its namespace membership ends with it.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, TypeVar

import runtime.sys as rsys
from runtime import errors

if TYPE_CHECKING:
    from pyroute2 import IPRoute

T = TypeVar("T")

NSFS_MAGIC = 0x6E736673
NETLINK_ROUTE = 0


def run_in_thread(fn: Callable[[], T]) -> T:
    """``fn()`` on a fresh thread (whose namespace changes end with it)."""
    box: dict[str, object] = {}

    def target() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=target, name="pyreconcile-netns")
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]  # type: ignore[misc]
    return box["value"]  # type: ignore[return-value]


def is_namespace(path: str) -> bool:
    """Whether ``path`` is a mounted network namespace (an nsfs file)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        return rsys.fstatfs_type(fd) == NSFS_MAGIC
    except OSError:
        return False
    finally:
        os.close(fd)


def create(path: str) -> None:
    """A new network namespace with only ``lo`` (down), bound at ``path``.

    Idempotent: an existing namespace at ``path`` is kept.
    """
    if is_namespace(path):
        return
    with errors.map_os_errors(f"create network namespace file {path}"):
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o444)
        os.close(fd)

    def make() -> None:
        rsys.unshare(rsys.CLONE_NEWNET)
        rsys.mount(f"/proc/self/task/{threading.get_native_id()}/ns/net", path, None, rsys.MS_BIND)

    try:
        with errors.map_os_errors(f"create network namespace at {path}"):
            run_in_thread(make)
    except errors.RuntimeError_:
        with contextlib.suppress(OSError):
            os.unlink(path)
        raise


def remove(path: str) -> None:
    """Unmount and delete the namespace file (idempotent). The namespace itself
    goes when nothing else holds it."""
    if is_namespace(path):
        with errors.map_os_errors(f"unmount network namespace {path}"):
            rsys.umount2(path, rsys.MNT_DETACH)
    with contextlib.suppress(FileNotFoundError), errors.map_os_errors(f"remove {path}"):
        os.unlink(path)


def run_in(path: str, fn: Callable[[], T]) -> T:
    """``fn()`` on a helper thread that has joined the namespace at ``path``."""

    def inside() -> T:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            rsys.setns(fd, rsys.CLONE_NEWNET)
        finally:
            os.close(fd)
        return fn()

    with errors.map_os_errors(f"enter network namespace {path}"):
        return run_in_thread(inside)


def netlink_socket(path: str | None) -> socket.socket:
    """A NETLINK_ROUTE socket in the namespace at ``path`` (None: this one)."""

    def make() -> socket.socket:
        return socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC, 0)

    if path is None:
        return make()
    if not is_namespace(path):
        raise errors.NotFound(f"network namespace {path} does not exist")
    return run_in(path, make)


@contextlib.contextmanager
def iproute(path: str | None = None) -> Iterator[IPRoute]:
    """pyroute2's ``IPRoute`` on a socket in the namespace at ``path`` (None: the
    engine's own namespace, which is "the host" to the containers)."""
    from pyroute2 import IPRoute

    sock = netlink_socket(path)
    ipr = IPRoute(fileno=sock.detach())
    try:
        yield ipr
    finally:
        ipr.close()


def write_sysctl(name: str, value: str, path: str | None = None) -> None:
    """Set ``net.…`` sysctl ``name`` ("ipv4/conf/br0/route_localnet") in this
    namespace or the one at ``path``: /proc/sys/net is the opener's namespace's."""
    target = "/proc/sys/net/" + name

    def write() -> None:
        with open(target, "w") as f:
            f.write(value)

    with errors.map_os_errors(f"set sysctl {target}"):
        if path is None:
            write()
        else:
            run_in(path, write)
