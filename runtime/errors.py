"""The error categories that cross the runtime boundary.

Foreign errors (``OSError`` errno values, ``sqlite3`` errors, pyroute2's
``NetlinkError``, ``requests`` exceptions) are mapped into these once, at the
edge where they happen, by :func:`map_os_errors` or an equivalent helper.
Callers branch on the type, never on the message text (containerd's errdefs).

This module is stdlib-only: the shim and the OCI runtime import it with
``python -I -S``.
"""

from __future__ import annotations

import contextlib
import errno
from collections.abc import Iterator

__all__ = [
    "AlreadyExists",
    "FailedPrecondition",
    "InvalidSpec",
    "NotFound",
    "RuntimeError_",
    "Terminal",
    "Transient",
    "Unavailable",
    "map_os_errors",
]


class RuntimeError_(Exception):
    """Base of every categorised runtime error.

    The trailing underscore keeps it apart from the builtin ``RuntimeError``.
    Messages are lowercase, name the object or path, and say what to do.
    """

    #: Whether retrying the same operation later may succeed.
    retryable: bool = False


class NotFound(RuntimeError_):
    """The named object does not exist (deletes treat this as success)."""


class AlreadyExists(RuntimeError_):
    """An object of that name exists already (creates check its spec hash)."""


class InvalidSpec(RuntimeError_):
    """The request or the document is invalid; fix the input."""


class FailedPrecondition(RuntimeError_):
    """The object is not in a state that allows the operation (in use, running…)."""


class Unavailable(RuntimeError_):
    """A dependency (kernel feature, binary, registry, shim) is not reachable."""

    retryable = True


class Transient(RuntimeError_):
    """A passing failure: retry with backoff."""

    retryable = True


class Terminal(RuntimeError_):
    """A failure that will not go away by retrying: report it, do not retry."""


_ERRNO_CATEGORY: dict[int, type[RuntimeError_]] = {
    errno.ENOENT: NotFound,
    errno.ESRCH: NotFound,
    errno.EEXIST: AlreadyExists,
    errno.EINVAL: InvalidSpec,
    errno.ENOTDIR: InvalidSpec,
    errno.EISDIR: InvalidSpec,
    errno.EBUSY: FailedPrecondition,
    errno.ENOTEMPTY: FailedPrecondition,
    errno.EPERM: FailedPrecondition,
    errno.EACCES: FailedPrecondition,
    errno.EROFS: FailedPrecondition,
    errno.EAGAIN: Transient,
    errno.EINTR: Transient,
    errno.ENOSPC: Terminal,
    errno.ENOSYS: Unavailable,
    errno.EOPNOTSUPP: Unavailable,
}


def category_for_errno(code: int | None) -> type[RuntimeError_]:
    """The category an ``errno`` value belongs to (``Terminal`` when unknown)."""
    if code is None:
        return Terminal
    return _ERRNO_CATEGORY.get(code, Terminal)


@contextlib.contextmanager
def map_os_errors(what: str) -> Iterator[None]:
    """Turn an ``OSError`` raised inside the block into a categorised error.

    ``what`` names the operation and its object ("mount overlay at /x"); it
    becomes the start of the message, followed by the OS's own words.
    """
    try:
        yield
    except RuntimeError_:
        raise
    except OSError as exc:
        category = category_for_errno(exc.errno)
        detail = exc.strerror or str(exc)
        raise category(f"{what}: {detail.lower()}") from exc
