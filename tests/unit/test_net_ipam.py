"""IPAM: allocation order, static addresses, conflicts, release, dead owners, and
the JSON file that keeps it across restarts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from runtime import errors
from runtime.net import ipam


def test_hands_out_in_a_circle_after_the_gateway() -> None:
    pool = ipam.new_pool("10.9.0.0/29", None, "10.9.0.1")
    got = [ipam.allocate(pool, f"c{i}") for i in range(5)]
    assert got == ["10.9.0.2", "10.9.0.3", "10.9.0.4", "10.9.0.5", "10.9.0.6"]
    with pytest.raises(errors.Unavailable, match=r"no free address left in 10\.9\.0\.0/29"):
        ipam.allocate(pool, "c5")
    assert ipam.release(pool, "c1") == ["10.9.0.3"]
    # the next one after the last handed out, wrapping: the freed .3 comes back only now
    assert ipam.allocate(pool, "c6") == "10.9.0.3"


def test_a_released_address_is_not_reused_at_once() -> None:
    pool = ipam.new_pool("10.9.0.0/24", None, "10.9.0.1")
    first = ipam.allocate(pool, "a")
    ipam.release(pool, "a")
    assert ipam.allocate(pool, "b") != first


def test_range_limits_dynamic_addresses_but_not_static_ones() -> None:
    pool = ipam.new_pool("10.9.0.0/24", "10.9.0.128/30", "10.9.0.1")
    assert [ipam.allocate(pool, x) for x in "ab"] == ["10.9.0.129", "10.9.0.130"]
    with pytest.raises(errors.Unavailable):
        ipam.allocate(pool, "c")
    assert ipam.allocate(pool, "c", "10.9.0.7") == "10.9.0.7"


def test_static_addresses_are_checked() -> None:
    pool = ipam.new_pool("10.9.0.0/24", None, "10.9.0.1")
    assert ipam.allocate(pool, "a", "10.9.0.50") == "10.9.0.50"
    assert ipam.allocate(pool, "a", "10.9.0.50") == "10.9.0.50"  # its own: idempotent
    ipam.allocate(pool, "b", "10.9.0.9")
    with pytest.raises(errors.FailedPrecondition, match="in use by container b"):
        ipam.allocate(pool, "a", "10.9.0.9")
    with pytest.raises(errors.FailedPrecondition, match="in use by the gateway"):
        ipam.allocate(pool, "x", "10.9.0.1")
    for bad in ("10.9.1.5", "10.9.0.0", "10.9.0.255"):
        with pytest.raises(errors.InvalidSpec, match="not a usable address"):
            ipam.allocate(pool, "x", bad)
    with pytest.raises(errors.InvalidSpec, match="not an IPv4 address"):
        ipam.allocate(pool, "x", "fd00::1")


def test_dead_owners_give_their_addresses_back() -> None:
    pool = ipam.new_pool("10.9.0.0/30", None, "10.9.0.1")
    ipam.allocate(pool, "gone")
    with pytest.raises(errors.Unavailable):
        ipam.allocate(pool, "new")
    assert ipam.allocate(pool, "new", alive={"new"}.__contains__) == "10.9.0.2"
    assert pool.allocations == {"10.9.0.1": ipam.GATEWAY, "10.9.0.2": "new"}


def test_the_pool_round_trips_through_its_file(tmp_path: Path) -> None:
    assert ipam.load(str(tmp_path)) is None
    pool = ipam.new_pool("10.9.0.0/24", "10.9.0.0/25", "10.9.0.1")
    ipam.allocate(pool, "a")
    ipam.save(str(tmp_path), pool)
    again = ipam.load(str(tmp_path))
    assert again == pool
    raw = json.loads((tmp_path / ipam.FILE).read_text())
    assert raw["version"] == 1 and raw["allocations"]["10.9.0.2"] == "a"
    assert [p.name for p in tmp_path.iterdir()] == [ipam.FILE]  # no temp file left
    (tmp_path / ipam.FILE).write_text("{broken")
    with pytest.raises(errors.Terminal, match="remove the network and create it again"):
        ipam.load(str(tmp_path))
