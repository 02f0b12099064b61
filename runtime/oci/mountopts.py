"""Translate an OCI mount's ``options`` into ``mount(2)`` flags and data.

``ro``/``nosuid``/… become ``MS_*`` flags, ``bind``/``rbind`` make it a bind
mount, propagation words (``rprivate``, ``slave`` …) are kept apart because
the kernel takes them in a separate ``mount`` call, and everything else
(``size=64m``, ``mode=755``, ``newinstance`` …) is filesystem data, passed
through in order. Pure: no I/O.
"""

from __future__ import annotations

import runtime.sys as rsys

__all__ = ["MountOptions", "PROPAGATION", "parse"]

# word -> (clears the flag?, flag)
_FLAGS: dict[str, tuple[bool, int]] = {
    "defaults": (False, 0),
    "ro": (False, rsys.MS_RDONLY),
    "rw": (True, rsys.MS_RDONLY),
    "suid": (True, rsys.MS_NOSUID),
    "nosuid": (False, rsys.MS_NOSUID),
    "dev": (True, rsys.MS_NODEV),
    "nodev": (False, rsys.MS_NODEV),
    "exec": (True, rsys.MS_NOEXEC),
    "noexec": (False, rsys.MS_NOEXEC),
    "sync": (False, rsys.MS_SYNCHRONOUS),
    "async": (True, rsys.MS_SYNCHRONOUS),
    "dirsync": (False, rsys.MS_DIRSYNC),
    "mand": (False, rsys.MS_MANDLOCK),
    "nomand": (True, rsys.MS_MANDLOCK),
    "atime": (True, rsys.MS_NOATIME),
    "noatime": (False, rsys.MS_NOATIME),
    "diratime": (True, rsys.MS_NODIRATIME),
    "nodiratime": (False, rsys.MS_NODIRATIME),
    "relatime": (False, rsys.MS_RELATIME),
    "norelatime": (True, rsys.MS_RELATIME),
    "strictatime": (False, rsys.MS_STRICTATIME),
    "nostrictatime": (True, rsys.MS_STRICTATIME),
    "nosymfollow": (False, rsys.MS_NOSYMFOLLOW),
    "symfollow": (True, rsys.MS_NOSYMFOLLOW),
}

#: Propagation words, for mounts and for ``linux.rootfsPropagation``.
PROPAGATION: dict[str, int] = {
    "private": rsys.MS_PRIVATE,
    "rprivate": rsys.MS_PRIVATE | rsys.MS_REC,
    "shared": rsys.MS_SHARED,
    "rshared": rsys.MS_SHARED | rsys.MS_REC,
    "slave": rsys.MS_SLAVE,
    "rslave": rsys.MS_SLAVE | rsys.MS_REC,
    "unbindable": rsys.MS_UNBINDABLE,
    "runbindable": rsys.MS_UNBINDABLE | rsys.MS_REC,
}


class MountOptions:
    """The parsed options of one mount."""

    __slots__ = ("bind", "data", "flags", "propagation", "recursive")

    def __init__(self) -> None:
        self.flags = 0
        self.data = ""
        self.propagation: list[int] = []
        self.bind = False
        self.recursive = False


def parse(options: list[str], fstype: str) -> MountOptions:
    """Parse ``options``; a ``bind`` type counts as the ``bind`` option."""
    out = MountOptions()
    data: list[str] = []
    if fstype == "bind":
        out.bind = True
    for word in options:
        if word in ("bind", "rbind"):
            out.bind = True
            out.recursive = out.recursive or word == "rbind"
        elif word in PROPAGATION:
            out.propagation.append(PROPAGATION[word])
        elif word in _FLAGS:
            clear, flag = _FLAGS[word]
            if clear:
                out.flags &= ~flag
            else:
                out.flags |= flag
        elif word == "remount":
            pass  # meaningless for a fresh mount; runc ignores it too
        else:
            data.append(word)
    out.data = ",".join(data)
    return out
