"""Address allocation for one network, persisted as JSON.

``<root>/networks/<network id>/ipam.json``::

    {"version": 1, "subnet": "10.89.0.0/24", "range": "10.89.0.128/25" | null,
     "gateway": "10.89.0.1" | null, "last": "10.89.0.5" | null,
     "allocations": {"10.89.0.1": "gateway", "10.89.0.2": "<container id>", …}}

Written atomically (temp file, fsync, rename, fsync dir) by the caller's
process while it holds the engine's network lock (``runtime.engine.networks``),
so concurrent applies, threads and CLI commands never hand out one address
twice. The allocation survives restarts of pyreconcile because it is on disk.

Choice of address: a requested one (``ipv4Address``) must be in the subnet and
free; otherwise the next free address after the last one handed out, wrapping
around, within ``range`` (or the subnet), skipping the network and broadcast
addresses. Handing addresses out in a circle, as Docker does, means an address
just released is not reused at once, while peers may still cache it.

Owners that no longer exist (a container removed while its engine crashed) are
dropped when the caller says which owners are alive.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import os
import threading
from collections.abc import Callable

from runtime import errors

FILE = "ipam.json"
GATEWAY = "gateway"
VERSION = 1


@dataclasses.dataclass
class Pool:
    subnet: str
    range: str | None = None
    gateway: str | None = None
    last: str | None = None
    allocations: dict[str, str] = dataclasses.field(default_factory=dict)

    @property
    def network(self) -> ipaddress.IPv4Network:
        return ipaddress.IPv4Network(self.subnet)

    def owner_of(self, address: str) -> str | None:
        return self.allocations.get(address)

    def addresses_of(self, owner: str) -> list[str]:
        return sorted(
            (a for a, o in self.allocations.items() if o == owner), key=ipaddress.IPv4Address
        )


def new_pool(subnet: str, ip_range: str | None, gateway: str | None) -> Pool:
    pool = Pool(subnet=subnet, range=ip_range, gateway=gateway)
    if gateway:
        pool.allocations[gateway] = GATEWAY
    return pool


def _hosts(net: ipaddress.IPv4Network) -> tuple[int, int]:
    """First and last usable address of ``net`` as integers."""
    first, last = int(net.network_address), int(net.broadcast_address)
    if net.prefixlen < 31:
        first, last = first + 1, last - 1
    return first, last


def allocate(
    pool: Pool,
    owner: str,
    requested: str | None = None,
    alive: Callable[[str], bool] | None = None,
) -> str:
    """Hand an address to ``owner`` and return it (the pool is changed in place).

    ``alive(owner)`` says whether a recorded owner still exists; dead owners'
    addresses are reclaimed first. Raises InvalidSpec (outside the subnet),
    FailedPrecondition (in use) or Unavailable (the range is full).
    """
    if alive is not None:
        for address, holder in list(pool.allocations.items()):
            if holder != GATEWAY and holder != owner and not alive(holder):
                del pool.allocations[address]
    net = pool.network
    if requested is not None:
        try:
            wanted = ipaddress.IPv4Address(requested)
        except ValueError:
            raise errors.InvalidSpec(f"ipv4Address {requested!r} is not an IPv4 address") from None
        first, last = _hosts(net)
        if not first <= int(wanted) <= last:
            raise errors.InvalidSpec(
                f"ipv4Address {requested} is not a usable address of subnet {pool.subnet}"
            )
        taken_by = pool.allocations.get(str(wanted))
        if taken_by is not None and taken_by != owner:
            what = "the gateway" if taken_by == GATEWAY else f"container {taken_by[:12]}"
            raise errors.FailedPrecondition(
                f"address {requested} of subnet {pool.subnet} is in use by {what}; "
                "choose another ipv4Address"
            )
        pool.allocations[str(wanted)] = owner
        return str(wanted)
    span = ipaddress.IPv4Network(pool.range) if pool.range else net
    first, last = _hosts(span)
    sub_first, sub_last = _hosts(net)
    first, last = max(first, sub_first), min(last, sub_last)
    size = last - first + 1
    if size <= 0:
        raise errors.InvalidSpec(f"subnet {pool.subnet} has no addresses to hand out")
    start = int(ipaddress.IPv4Address(pool.last)) + 1 if pool.last else first
    for step in range(size):
        candidate = first + (start - first + step) % size
        text = str(ipaddress.IPv4Address(candidate))
        if text not in pool.allocations:
            pool.allocations[text] = owner
            pool.last = text
            return text
    raise errors.Unavailable(
        f"no free address left in {pool.range or pool.subnet}: remove a container from the "
        "network or give it a larger subnet or ipRange"
    )


def release(pool: Pool, owner: str) -> list[str]:
    """Free every address of ``owner``; return them."""
    freed = pool.addresses_of(owner)
    for address in freed:
        del pool.allocations[address]
    return freed


def load(directory: str) -> Pool | None:
    path = os.path.join(directory, FILE)
    try:
        with open(path) as f:
            raw = json.load(f)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise errors.Terminal(
            f"cannot read {path}: {exc}; remove the network and create it again"
        ) from None
    return Pool(
        subnet=str(raw["subnet"]),
        range=raw.get("range"),
        gateway=raw.get("gateway"),
        last=raw.get("last"),
        allocations={str(k): str(v) for k, v in dict(raw.get("allocations", {})).items()},
    )


def save(directory: str, pool: Pool) -> None:
    data = {"version": VERSION, **dataclasses.asdict(pool)}
    write_atomic(os.path.join(directory, FILE), json.dumps(data, indent=1, sort_keys=True))


def write_atomic(path: str, text: str) -> None:
    """temp file, fsync, rename, fsync the directory (DESIGN.md §4)."""
    directory = os.path.dirname(path)
    tmp = os.path.join(
        directory, f".{os.path.basename(path)}.{os.getpid()}.{threading.get_native_id()}.tmp"
    )
    with errors.map_os_errors(f"write {path}"):
        os.makedirs(directory, mode=0o700, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            view = memoryview(text.encode())
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        dfd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
