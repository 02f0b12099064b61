"""Name resolution on user networks, through /etc/hosts.

Docker answers container names from an embedded DNS server in its daemon;
pyreconcile has no daemon yet (the CLI runs the engine in-process), so the
engine writes every container's peers into its /etc/hosts instead, and
rewrites the files of every container on a network when a peer attaches,
detaches or comes back with another address. A container is known on each of
its networks by its hostname, its runtime name, its aliases on that network
and its short id (Docker's names). Names that are not on a shared network
fall through to the host's resolvers: /etc/resolv.conf is the host's, without
its loopback servers (``runtime.engine.etcfiles``).

The file is a host file bind-mounted into the container
(``<root>/containers/<id>/hosts``), so it is rewritten *in place*: a rename
would leave the bind mount on the old inode. The new text is written over the
old from offset 0 and the file then truncated to its length, so a reader
never finds it empty.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable

from runtime import errors
from runtime.engine import etcfiles
from runtime.net import endpoints

Lines = tuple[tuple[str, str], ...]


def lines_for(record: endpoints.Record, everyone: Iterable[endpoints.Record]) -> Lines:
    """/etc/hosts lines (address, names) for ``record``'s container: its own
    addresses first, then its peers on each shared network, the most recently
    attached first — resolvers take the first line that names a host, so while a
    start-first update runs two copies, the name already points at the new one."""
    own: list[tuple[str, str]] = []
    for endpoint in record.endpoints:
        if endpoint.address:
            own.append((endpoint.address, " ".join(record.names_on(endpoint))))
    peers: list[tuple[str, str]] = []
    mine = {e.network_id for e in record.endpoints}
    newest_first = sorted(everyone, key=lambda r: (-r.attached_at, r.container_id))
    for other in newest_first:
        if other.container_id == record.container_id:
            continue
        for endpoint in other.endpoints:
            if endpoint.network_id in mine and endpoint.address:
                peers.append((endpoint.address, " ".join(other.names_on(endpoint))))
    seen: set[tuple[str, str]] = set()
    result = []
    for line in [*own, *peers]:
        if line not in seen:
            seen.add(line)
            result.append(line)
    return tuple(result)


def rewrite(container_dir: str, hostname: str, extra: Lines) -> bool:
    """Rewrite ``<container_dir>/hosts`` in place; False when it does not exist (the
    container was never started: its start writes it)."""
    target = os.path.join(container_dir, "hosts")
    text = etcfiles.hosts(hostname, False, extra).encode()
    try:
        with errors.map_os_errors(f"open {target}"):
            fd = os.open(target, os.O_RDWR | os.O_CLOEXEC | os.O_NOFOLLOW)
    except errors.NotFound:
        return False
    try:
        with errors.map_os_errors(f"rewrite {target}"):
            old = os.pread(fd, len(text) + 1, 0)
            if old == text:
                return True
            view = memoryview(text)
            offset = 0
            while offset < len(text):
                offset += os.pwrite(fd, view[offset:], offset)
            os.ftruncate(fd, len(text))
    finally:
        with contextlib.suppress(OSError):
            os.close(fd)
    return True
