"""macvlan and overlay networks through the CLI, with namespaces as the other hosts.

- macvlan: the parent is our end of a veth pair whose other end is in a
  namespace acting as the LAN's router (the kernel here has no ``dummy``
  driver; a veth is a real wire, so traffic can be checked on both sides).
- overlay: two namespaces joined by a veth are two hosts; a whole pyreconcile
  engine runs in each (``nsenter --net``) with its own roots, and their
  containers talk over VXLAN on a shared subnet.
"""

from __future__ import annotations

import json
import random
import subprocess
from pathlib import Path
from typing import Any

from runtime.net import netns
from tests.conftest import Roots, force_cleanup
from tests.integration.test_apply_e2e import PYRECONCILE, run, wait_until, write_stack
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


def test_macvlan_on_a_parent_reaches_its_segment(roots: Roots, busybox_tar: Path) -> None:
    with netlab.Peer(roots.base, "lan") as lan:
        segment = netlab.free_subnet()
        router = netlab.host(segment, 1)
        netlab.ip("addr", "add", f"{router}/24", "dev", "eth0", namespace=lan.path)
        www = roots.base / "lan-www"
        www.mkdir()
        (www / "index.html").write_text(PAGE + "\n")
        lan.serve_http(www, 8080)
        spec = f"{{driver: macvlan, parent: {lan.link}, subnet: {segment}, gateway: {router}}}"
        docs = network("lan", spec) + container("a", SLEEP, "[lan]") + container("b", WEB, "[lan]")
        stack = write_stack(roots.base / "mv", busybox_tar, docs)
        run(roots, "apply", "-f", str(stack))
        try:
            seen = running(roots, "a", "b")
            a = seen["a"]["pid"]
            net = inspect(roots, "mv/lan")
            assert net["driver"] == "macvlan" and net["healthy"], net
            a_ip = address_of(net, "a")
            own = str(roots.run_root / "netns" / seen["a"]["id"])  # its namespace, our ip(8)
            links = netlab.ip("-d", "link", "show", "eth0", namespace=own)
            assert "macvlan mode bridge" in links, links
            assert f"default via {router}" in netlab.in_container(a, "ip", "route").stdout
            # the segment's other host, and a sibling by name
            router_url = f"http://{router}:8080/"
            assert wait_until(lambda: serving(a, router_url), what="the LAN router")
            assert wait_until(lambda: serving(a, "http://b:8080/"), what="sibling by name")
            arp = lan.run("ip", "neigh", "show", a_ip).stdout
            assert a_ip in arp, arp  # the router saw the container itself on the wire
        finally:
            run(roots, "delete", "-f", str(stack))
        assert netlab.ip("link", "show", "type", "macvlan").strip() == ""
        assert list((roots.run_root / "netns").iterdir()) == []


class Host:
    """A namespace acting as another host, running its own pyreconcile engine."""

    def __init__(self, roots: Roots, path: str) -> None:
        self.roots = roots
        self.path = path

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            ["nsenter", f"--net={self.path}", *PYRECONCILE, *args],
            env=self.roots.env(),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"{args} exited {proc.returncode}:\n{proc.stdout}{proc.stderr}")
        return proc

    def ps(self) -> dict[str, dict[str, Any]]:
        return {c["object"]: c for c in json.loads(self.run("ps", "-o", "json").stdout)}

    def ip(self, *args: str) -> str:
        return netlab.ip(*args, namespace=self.path)


def test_overlay_joins_containers_on_two_hosts(roots: Roots, busybox_tar: Path) -> None:
    other = Roots(roots.base / "b")
    a_ns, b_ns = str(roots.base / "ns-host-a"), str(roots.base / "ns-host-b")
    underlay = netlab.free_subnet(30)
    a_addr, b_addr = netlab.host(underlay, 1), netlab.host(underlay, 2)
    subnet = netlab.free_subnet()
    vni = random.randrange(5000, 9000)
    netns.create(a_ns)
    netns.create(b_ns)
    a, b = Host(roots, a_ns), Host(other, b_ns)
    end_a, end_b = netlab.link_name("tpa"), netlab.link_name("tpb")
    stacks = {}
    try:
        netlab.ip("link", "add", end_a, "type", "veth", "peer", "name", end_b)
        netlab.ip("link", "set", end_a, "netns", a_ns)
        netlab.ip("link", "set", end_b, "netns", b_ns)
        for host, end, addr in ((a, end_a, a_addr), (b, end_b, b_addr)):
            host.ip("link", "set", "lo", "up")
            host.ip("addr", "add", f"{addr}/30", "dev", end)
            host.ip("link", "set", end, "up")
        for host, name, peer, part, box in (
            (a, "ovl-a", b_addr, 0, container("srv", WEB, "[ov]")),
            (b, "ovl-b", a_addr, 64, container("cli", SLEEP, "[ov]")),
        ):
            ip_range = f"{netlab.host(subnet, part)}/26"
            spec = (
                f"{{driver: overlay, subnet: {subnet}, ipRange: {ip_range}, "
                f"peers: [{peer}], vni: {vni}}}"
            )
            stacks[host] = write_stack(
                host.roots.base / name, busybox_tar, network("ov", spec) + box
            )
            host.run("apply", "-f", str(stacks[host]))
        # each host hands out addresses from its own part of the shared subnet
        wait_until(lambda: a.ps().get("srv", {}).get("pid"), what="srv on host a")
        cli = wait_until(lambda: b.ps().get("cli", {}).get("pid"), what="cli on host b")
        nets = json.loads(a.run("network", "inspect", "ovl-a/ov").stdout)
        srv_ip = address_of(nets[0], "srv")
        assert srv_ip == netlab.host(subnet, 1)
        mtu = netlab.in_container(cli, "cat", "/sys/class/net/eth0/mtu").stdout.strip()
        assert mtu == "1450", mtu  # the underlay's 1500 minus VXLAN's 50
        url = f"http://{srv_ip}:8080/"
        assert wait_until(lambda: serving(cli, url), what="srv from host b over VXLAN")
        assert "vxlan id" in a.ip("-d", "link", "show", "type", "vxlan")
    finally:
        for host, stack in stacks.items():
            host.run("delete", "-f", str(stack), check=False)
    try:
        for host in (a, b):
            # deleting the network took its bridge, VXLAN link, routes and rules
            left = [line for line in host.ip("-br", "link").splitlines() if line[:2] == "pr"]
            assert left == [], left
            tables = subprocess.run(
                ["nsenter", f"--net={host.path}", "nft", "list", "tables"],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            assert host.roots.nft_table not in tables, tables
        assert leaks.cgroup_children(other.cgroup_parent) == []
    finally:
        netns.remove(a_ns)
        netns.remove(b_ns)
        # the second engine is not the fixture's: its leftovers are checked and
        # removed here (its cgroup parent, left by every run before this)
        left = other.leftovers()
        force_cleanup(other)
        assert left == [], left
