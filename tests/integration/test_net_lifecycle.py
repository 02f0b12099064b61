"""Network lifecycle through the CLI: addresses kept across restarts of
pyreconcile, subnets that clash with the host refused, nothing left after a
delete, and drift (a bridge deleted, our nftables table flushed) seen by
``diff`` and repaired by ``apply``."""

from __future__ import annotations

import ipaddress
import json
import os
import subprocess
from pathlib import Path

from runtime.net import names
from tests.conftest import Roots
from tests.integration.test_apply_e2e import run, wait_until, write_stack
from tests.integration.test_net_bridge import (
    PAGE,
    SLEEP,
    WEB,
    address_of,
    container,
    inspect,
    network,
    running,
    serving,
)
from tests.support import leaks, netlab


def our_links(roots: Roots) -> list[str]:
    return leaks.links_with_alias(roots.link_alias_prefix)


def test_addresses_survive_restarts_and_are_not_reused(roots: Roots, busybox_tar: Path) -> None:
    subnet = netlab.free_subnet()
    static = netlab.host(subnet, 10)
    base = network("n", f"{{subnet: {subnet}}}")
    a = container("a", SLEEP, "[n]")
    b = container("b", SLEEP, f"[{{name: n, ipv4Address: {static}}}]")
    c = container("c", SLEEP, "[n]")
    d = container("d", SLEEP, "[n]")
    stack = write_stack(roots.base / "ipam", busybox_tar, base + a + b)
    run(roots, "apply", "-f", str(stack))
    try:
        running(roots, "a", "b")
        net = inspect(roots, "ipam/n")
        assert net["subnet"] == subnet and net["gateway"] == netlab.host(subnet, 1)
        assert address_of(net, "a") == netlab.host(subnet, 2)
        assert address_of(net, "b") == static
        # every command is a new pyreconcile process: what it knows is on disk
        write_stack(stack, busybox_tar, base + a + b + c)
        run(roots, "apply", "-f", str(stack))
        running(roots, "c")
        assert address_of(inspect(roots, "ipam/n"), "c") == netlab.host(subnet, 3)
        # a released address is not handed out again at once
        write_stack(stack, busybox_tar, base + b + c + d)
        run(roots, "apply", "-f", str(stack))
        running(roots, "d")
        net = inspect(roots, "ipam/n")
        assert address_of(net, "d") == netlab.host(subnet, 4)
        assert {e["container"] for e in net["endpoints"]} == {"ipam_b", "ipam_c", "ipam_d"}
        # an address in use is refused, clearly
        taken = container("e", SLEEP, f"[{{name: n, ipv4Address: {netlab.host(subnet, 3)}}}]")
        write_stack(stack, busybox_tar, base + b + c + d + taken)
        failed = run(roots, "apply", "-f", str(stack), check=False)
        assert failed.returncode != 0
        assert f"address {netlab.host(subnet, 3)}" in failed.stderr, failed.stderr
        assert "in use by container" in failed.stderr
    finally:
        run(roots, "delete", "-f", str(stack))


def test_a_subnet_that_overlaps_a_host_route_is_refused(roots: Roots, busybox_tar: Path) -> None:
    with netlab.Peer(roots.base, "routed") as peer:
        # the peer's /30 is routed on the host now: a /24 around it overlaps that route
        wider = str(ipaddress.IPv4Network(peer.subnet).supernet(new_prefix=24))
        stack = write_stack(roots.base / "clash", busybox_tar, network("n", f"{{subnet: {wider}}}"))
        failed = run(roots, "apply", "-f", str(stack), check=False)
        assert failed.returncode == 1
        assert f"subnet {wider} overlaps the host route {peer.subnet} dev {peer.link}" in (
            failed.stderr
        ), failed.stderr
        assert "choose a subnet that is not in use on this host" in failed.stderr
        assert json.loads(run(roots, "network", "ls", "-o", "json").stdout) == []
        assert our_links(roots) == []
        run(roots, "delete", "-f", str(stack))


def test_deleting_everything_leaves_no_link_rule_or_namespace(
    roots: Roots, busybox_tar: Path
) -> None:
    docs = (
        network("a")
        + network("b", "{internal: true}")
        + container("web", WEB, "[a, b]", '  ports: ["8080"]\n')
        + container("other", SLEEP, "[b]")
    )
    stack = write_stack(roots.base / "gone", busybox_tar, docs)
    run(roots, "apply", "-f", str(stack))
    seen = running(roots, "web", "other")
    a = inspect(roots, "gone/a")
    bridge = names.bridge_name(roots.nft_table, a["id"])
    links = our_links(roots)
    assert bridge in links and len(links) == 2 + 3, links  # 2 bridges, 3 veths
    assert leaks.nft_table_exists("inet", roots.nft_table)
    routes = netlab.ip("-4", "route")
    assert a["subnet"] in routes
    netns_dir = roots.run_root / "netns"
    assert sorted(os.listdir(netns_dir)) == sorted([seen["web"]["id"], seen["other"]["id"]])
    # removing the network's users first, then the network: its links, route and rules go
    run(roots, "delete", "-f", str(stack))
    assert our_links(roots) == []
    assert not leaks.nft_table_exists("inet", roots.nft_table)
    assert a["subnet"] not in netlab.ip("-4", "route")
    assert list(netns_dir.iterdir()) == []
    assert leaks.mounts_under(str(roots.run_root)) == []
    assert list((roots.root / "networks" / "containers").iterdir()) == []


def test_drift_is_reported_by_diff_and_repaired_by_apply(roots: Roots, busybox_tar: Path) -> None:
    docs = (
        network("front")
        + container("web", WEB, "[front]", '  ports: ["8080"]\n')
        + container("client", SLEEP, "[front]")
    )
    stack = write_stack(roots.base / "drift", busybox_tar, docs)
    run(roots, "apply", "-f", str(stack))
    try:
        seen = running(roots, "web", "client")
        client = seen["client"]["pid"]
        port = seen["web"]["ports"][0]["hostPort"]
        url = f"http://127.0.0.1:{port}/"
        assert wait_until(lambda: serving(client, "http://web:8080/"), what="web by name")
        assert wait_until(lambda: netlab.fetch_here(url) == PAGE + "\n", what="published")
        assert run(roots, "diff", "-f", str(stack)).returncode == 0
        net = inspect(roots, "drift/front")
        bridge = names.bridge_name(roots.nft_table, net["id"])

        # the bridge deleted out of band: its address and route go with it
        netlab.ip("link", "del", bridge)
        assert netlab.fetch(client, "http://web:8080/", timeout=2) is None
        diff = run(roots, "diff", "-f", str(stack), check=False)
        assert diff.returncode == 2, diff.stdout + diff.stderr
        assert "network/front" in diff.stdout and f"bridge {bridge} is missing" in diff.stdout
        assert "container/" not in diff.stdout, diff.stdout  # no recreate for this
        listed = {
            n["name"]: n for n in json.loads(run(roots, "network", "ls", "-o", "json").stdout)
        }
        assert listed["drift_front"]["healthy"] is False
        run(roots, "apply", "-f", str(stack))
        assert run(roots, "diff", "-f", str(stack)).returncode == 0
        assert wait_until(lambda: serving(client, "http://web:8080/"), what="repaired bridge")
        assert wait_until(lambda: netlab.fetch_here(url) == PAGE + "\n", what="port again")
        assert ps_ids(roots) == {seen["web"]["id"], seen["client"]["id"]}  # not recreated

        # our nftables table flushed out of band: the published port stops answering
        subprocess.run(["nft", "flush", "table", "inet", roots.nft_table], check=True)
        assert netlab.fetch_here(url, timeout=2) is None
        diff = run(roots, "diff", "-f", str(stack), check=False)
        assert diff.returncode == 2
        assert f"nftables table inet {roots.nft_table}" in diff.stdout, diff.stdout
        run(roots, "apply", "-f", str(stack))
        assert run(roots, "diff", "-f", str(stack)).returncode == 0
        assert wait_until(lambda: netlab.fetch_here(url) == PAGE + "\n", what="rules again")

        # a container's veth deleted: repaired in place, with its address and route
        veth = names.veth_name(roots.nft_table, net["id"], seen["client"]["id"])
        netlab.ip("link", "del", veth)
        diff = run(roots, "diff", "-f", str(stack), check=False)
        assert diff.returncode == 2 and f"veth {veth}" in diff.stdout, diff.stdout
        run(roots, "apply", "-f", str(stack))
        assert wait_until(lambda: serving(client, "http://web:8080/"), what="repaired veth")
    finally:
        run(roots, "delete", "-f", str(stack))


def ps_ids(roots: Roots) -> set[str]:
    return {c["id"] for c in json.loads(run(roots, "ps", "-o", "json").stdout)}


def test_network_commands_create_inspect_rm_and_prune(roots: Roots, busybox_tar: Path) -> None:
    subnet = netlab.free_subnet()
    stack = write_stack(
        roots.base / "cmds", busybox_tar, network("used") + container("c", SLEEP, "[used]")
    )
    run(roots, "apply", "-f", str(stack))
    try:
        running(roots, "c")
        out = run(roots, "network", "create", "loose", "--subnet", subnet, "--internal").stdout
        assert out.strip() == f"loose: bridge {subnet}"
        again = run(roots, "network", "create", "loose", check=False)
        assert again.returncode == 1 and "already exists" in again.stderr
        bad = run(roots, "network", "create", "odd", "-o", "vni=7", check=False)
        assert bad.returncode == 1 and "for overlay networks only" in bad.stderr
        (loose,) = json.loads(run(roots, "network", "inspect", "loose").stdout)
        assert loose["internal"] is True and loose["endpoints"] == [] and loose["healthy"]
        table = run(roots, "network", "ls").stdout
        assert "loose" in table and "cmds_used" in table
        busy = run(roots, "network", "rm", "cmds/used", check=False)
        assert busy.returncode == 1 and "in use by container cmds_c" in busy.stderr
        pruned = run(roots, "network", "prune", "-f").stdout.split()
        assert pruned == ["loose"]  # the stack's network is in use: kept
        assert [
            n["name"] for n in json.loads(run(roots, "network", "ls", "-o", "json").stdout)
        ] == ["cmds_used"]
    finally:
        run(roots, "delete", "-f", str(stack))
