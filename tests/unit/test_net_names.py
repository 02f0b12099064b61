"""Names of links and tables, /etc/hosts lines of peers, subnet choice, port choice."""

from __future__ import annotations

import ipaddress
import os
import socket
from pathlib import Path

import pytest

from runtime import client, errors
from runtime.net import endpoints, hostsfile, names, ports, subnets


def test_engine_tag_and_link_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(names.TABLE_ENV, raising=False)
    assert names.engine_tag("pyreconcile") == "pyreconcile"
    assert names.engine_tag("pyreconcile-test-0a1b") == "pyreconcile_test_0a1b"
    assert names.engine_tag("/system.slice/x") == "system_slice_x"
    assert names.engine_tag("9x") == "p9x"  # a table name starts with a letter
    assert names.engine_tag("pyreconcile", "/var/lib/pyreconcile") == "pyreconcile"
    other = names.engine_tag("pyreconcile", "/srv/engine-b")
    assert other.startswith("pyreconcile_") and len(other) == len("pyreconcile_") + 8
    assert other != names.engine_tag("pyreconcile", "/srv/engine-c")
    monkeypatch.setenv(names.TABLE_ENV, "mine")
    assert names.engine_tag("whatever") == "mine"
    monkeypatch.setenv(names.TABLE_ENV, "bad name")
    with pytest.raises(ValueError, match="not a valid nftables table name"):
        names.engine_tag("x")
    bridge = names.bridge_name("t", "n" * 64)
    assert len(bridge) == 15 and bridge.startswith("prb")
    assert bridge != names.bridge_name("u", "n" * 64)  # another engine, another name
    assert len(names.veth_name("t", "n" * 64, "c" * 64)) == 15
    alias = names.alias("t", "n" * 64, "c" * 64)
    assert alias == f"pyreconcile:t:{'n' * 12}:{'c' * 12}"
    assert names.is_ours(alias, "t") and not names.is_ours(alias, "tt")


def _record(cid: str, name: str, *eps: tuple[str, str, tuple[str, ...]]) -> endpoints.Record:
    return endpoints.Record(
        container_id=cid * 64,
        name=f"demo_{name}",
        hostname=name,
        namespace=f"/run/x/{cid}",
        endpoints=tuple(
            endpoints.Endpoint(net, net, "bridge", "eth0", None, addr, 24, None, False, aliases)
            for net, addr, aliases in eps
        ),
    )


def test_hosts_lines_list_peers_on_shared_networks_only() -> None:
    web = _record("a", "web", ("front", "10.0.0.2", ("www",)), ("back", "10.0.1.2", ()))
    client_ = _record("b", "client", ("front", "10.0.0.10", ()))
    db = _record("c", "db", ("back", "10.0.1.3", ("database",)))
    stranger = _record("d", "other", ("elsewhere", "10.0.9.2", ()))
    everyone = [web, client_, db, stranger]
    assert hostsfile.lines_for(client_, everyone) == (
        ("10.0.0.10", f"client demo_client {'b' * 12}"),
        ("10.0.0.2", f"web demo_web www {'a' * 12}"),
    )
    lines = hostsfile.lines_for(web, everyone)
    assert lines[:2] == (
        ("10.0.0.2", f"web demo_web www {'a' * 12}"),
        ("10.0.1.2", f"web demo_web {'a' * 12}"),
    )
    assert ("10.0.1.3", f"db demo_db database {'c' * 12}") in lines
    assert not any("other" in names_ for _, names_ in lines)


def test_hosts_file_is_rewritten_in_place(tmp_path: Path) -> None:
    path = tmp_path / "hosts"
    path.write_text("old content that is rather long\n" * 20)
    inode = os.stat(path).st_ino
    assert hostsfile.rewrite(str(tmp_path), "web", (("10.0.0.2", "web"),))
    text = path.read_text()
    assert os.stat(path).st_ino == inode  # a bind mount of it sees the new text
    assert text.startswith("127.0.0.1\tlocalhost\n") and text.endswith("10.0.0.2\tweb\n")
    assert "127.0.1.1" not in text
    assert not hostsfile.rewrite(str(tmp_path / "absent"), "web", ())


def test_subnet_conflicts_and_the_default_pool() -> None:
    routes = [
        subnets.Route(ipaddress.IPv4Network("10.89.0.0/24"), "docker0"),
        subnets.Route(ipaddress.IPv4Network("192.0.2.0/24"), "eth0"),
    ]
    assert subnets.conflict("10.89.0.0/16", routes, ()) == "the host route 10.89.0.0/24 dev docker0"
    assert subnets.conflict("10.89.0.0/24", routes, (), own_device="docker0") is None
    assert "network 'x'" in str(subnets.conflict("10.89.1.0/24", [], [("x", "10.89.1.0/25")]))
    assert subnets.choose(routes, [("x", "10.89.1.0/24")]) == "10.89.2.0/24"
    with pytest.raises(errors.FailedPrecondition, match=r"overlaps the host route 192\.0\.2\.0/24"):
        subnets.check_free("n", "192.0.2.128/25", routes, ())
    assert subnets.default_gateway("10.89.3.0/24") == "10.89.3.1"


def _gateway() -> endpoints.Endpoint:
    return endpoints.Endpoint("n" * 64, "n", "bridge", "eth0", "prv", "10.0.0.2", 24, None, True)


def test_ports_fixed_ephemeral_and_conflicting() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken_port = busy.getsockname()[1]
        asked = (
            client.PortConfig(80),
            client.PortConfig(53, "udp", None, "127.0.0.1"),
        )
        got = ports.choose("web", asked, _gateway(), [])
        assert [(b.container_port, b.protocol, b.host_ip) for b in got] == [
            (80, "tcp", "0.0.0.0"),
            (53, "udp", "127.0.0.1"),
        ]
        assert all(b.host_port > 0 and b.address == "10.0.0.2" for b in got)
        again = ports.choose("web", asked, _gateway(), [], previous=got)
        assert [b.host_port for b in again] == [b.host_port for b in got]  # kept
        with pytest.raises(errors.FailedPrecondition, match="in use by a program"):
            ports.choose(
                "web", (client.PortConfig(80, "tcp", taken_port, "127.0.0.1"),), _gateway(), []
            )
        other = [("demo_db", got[0])]
        fixed = client.PortConfig(80, "tcp", got[0].host_port, "127.0.0.1")
        with pytest.raises(
            errors.FailedPrecondition, match="already published by container demo_db"
        ):
            ports.choose("web", (fixed,), _gateway(), other)
    assert ports.choose("web", (client.PortConfig(80),), None, []) == ()  # no gateway network
