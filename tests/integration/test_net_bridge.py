"""Bridge networks end to end through the CLI: real namespaces, veths, bridges,
nftables rules and packets.

Traffic goes only to loopback, to the test's containers and to namespaces the
test made (``netlab.Peer``: another "host" on a private /30). Probes run inside
a container with ``nsenter`` into its network and mount namespaces, so they
use the container's own binaries and /etc/hosts.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

from tests.conftest import Roots
from tests.integration.test_apply_e2e import ps, run, wait_until, write_stack
from tests.support import netlab

PAGE = "hello-from-web"


def container(name: str, command: str, networks: str, extra: str = "") -> str:
    return f"""\
---
apiVersion: pyreconcile/v1
kind: Container
metadata: {{name: {name}}}
spec:
  image: bb
  command: [sh, -c, '{command}']
  networks: {networks}
  stopGracePeriod: 1s
{extra}"""


def network(name: str, spec: str = "{}") -> str:
    return f"""\
---
apiVersion: pyreconcile/v1
kind: Network
metadata: {{name: {name}}}
spec: {spec}
"""


WEB = f"echo {PAGE} > /tmp/index.html; exec httpd -f -p 8080 -h /tmp"
SLEEP = "exec sleep 1000"


def running(roots: Roots, *names: str) -> dict[str, dict[str, Any]]:
    def ready() -> dict[str, dict[str, Any]] | None:
        seen = ps(roots)
        if all(seen.get(n, {}).get("status") == "running" for n in names):
            return seen
        return None

    result: dict[str, dict[str, Any]] = wait_until(ready, what=f"{', '.join(names)} running")
    return result


def inspect(roots: Roots, name: str) -> dict[str, Any]:
    data: list[dict[str, Any]] = json.loads(run(roots, "network", "inspect", name).stdout)
    return data[0]


def address_of(net: dict[str, Any], container: str) -> str:
    for e in net["endpoints"]:
        if e["container"].endswith("_" + container):
            return str(e["ipv4_address"])
    raise AssertionError(f"{container} is not on {net['name']}: {net['endpoints']}")


def serving(pid: int, url: str) -> bool:
    return netlab.fetch(pid, url) == PAGE + "\n"


def test_containers_on_one_bridge_talk_tcp_and_udp_by_name(roots: Roots, busybox_tar: Path) -> None:
    docs = (
        network("front")
        + container("server", WEB, "[front]")
        + container("client", SLEEP, "[{name: front, aliases: [cl]}]")
    )
    stack = write_stack(roots.base / "net1", busybox_tar, docs)
    run(roots, "apply", "-f", str(stack))
    try:
        seen = running(roots, "server", "client")
        client_pid = seen["client"]["pid"]
        net = inspect(roots, "net1/front")
        assert net["driver"] == "bridge" and net["healthy"], net
        server_ip, client_ip = address_of(net, "server"), address_of(net, "client")
        # TCP by name (and by the container's runtime name)
        assert wait_until(lambda: serving(client_pid, "http://server:8080/"), what="TCP by name")
        assert serving(client_pid, "http://net1_server:8080/")
        hosts = netlab.in_container(client_pid, "cat", "/etc/hosts").stdout
        assert f"{server_ip}\tserver net1_server" in hosts, hosts
        assert f"{client_ip}\tclient net1_client cl" in hosts, hosts
        # UDP by name: busybox's nslookup asks a responder in the server's namespace
        netns = roots.run_root / "netns" / seen["server"]["id"]
        with netlab.udp_responder(str(netns), 5353, "10.1.2.3") as responder:
            answer = netlab.in_container(
                client_pid, "nslookup", "-port=5353", "probe.test", "server"
            )
            assert "10.1.2.3" in answer.stdout, answer
            responder.kill()
            out, _ = responder.communicate(timeout=10)
        assert f"query from {client_ip}" in out, out
        # the server sees the client's own address (no NAT within a network)
        server_pid = seen["server"]["pid"]
        assert "cl" in netlab.in_container(server_pid, "cat", "/etc/hosts").stdout
    finally:
        run(roots, "delete", "-f", str(stack))


def test_networks_are_isolated_and_internal_has_no_way_out(roots: Roots, busybox_tar: Path) -> None:
    docs = (
        network("a")
        + network("b")
        + network("sealed", "{internal: true}")
        + container("web", WEB, "[a]")
        + container("same", SLEEP, "[a]")
        + container("other", SLEEP, "[b]")
        + container("inside", SLEEP, "[sealed]")
    )
    stack = write_stack(roots.base / "net2", busybox_tar, docs)
    with netlab.Peer(roots.base, "outside") as outside:
        www = roots.base / "outside-www"
        www.mkdir()
        (www / "index.html").write_text(PAGE + "\n")
        outside.serve_http(www, 8080)
        run(roots, "apply", "-f", str(stack))
        try:
            seen = running(roots, "web", "same", "other", "inside")
            web_ip = address_of(inspect(roots, "net2/a"), "web")
            same, other, inside = (seen[n]["pid"] for n in ("same", "other", "inside"))
            url = f"http://{web_ip}:8080/"
            assert wait_until(lambda: serving(same, url), what="web from its own network")
            assert netlab.fetch(other, url, timeout=2) is None, "b reached a container on a"
            assert netlab.fetch(inside, url, timeout=2) is None, "internal reached network a"
            # the way out: masqueraded to the other host; none from the internal network
            out = f"http://{outside.there}:8080/"
            assert wait_until(lambda: serving(same, out), what="the outside from network a")
            routes = netlab.in_container(inside, "ip", "route").stdout
            assert "default" not in routes, routes
            assert netlab.fetch(inside, out, timeout=2) is None
            sealed = inspect(roots, "net2/sealed")
            assert sealed["internal"] is True
        finally:
            run(roots, "delete", "-f", str(stack))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_published_ports_answer_from_the_host_loopback_other_hosts_and_containers(
    roots: Roots, busybox_tar: Path
) -> None:
    fixed = _free_port()
    docs = (
        network("front")
        + network("back")
        + container(
            "web",
            WEB.replace("8080", "80"),
            "[front]",
            f'  ports: ["80", "127.0.0.1:{fixed}:80", "8125/udp"]\n',
        )
        + container("neighbour", SLEEP, "[front]")
        + container("stranger", SLEEP, "[back]")
    )
    stack = write_stack(roots.base / "net3", busybox_tar, docs)
    with netlab.Peer(roots.base, "client") as other_host:
        run(roots, "apply", "-f", str(stack))
        try:
            seen = running(roots, "web", "neighbour", "stranger")
            ports = {
                (p["containerPort"], p["protocol"], p["hostIP"]): p for p in seen["web"]["ports"]
            }
            ephemeral = ports[(80, "tcp", "0.0.0.0")]["hostPort"]
            assert ephemeral > 0 and ephemeral != 80
            assert ports[(80, "tcp", "127.0.0.1")]["hostPort"] == fixed
            assert ports[(8125, "udp", "0.0.0.0")]["hostPort"] > 0
            table = run(roots, "ps").stdout
            assert f"0.0.0.0:{ephemeral}->80/tcp" in table, table
            # from the host, loopback included
            url = f"http://127.0.0.1:{ephemeral}/"
            assert wait_until(lambda: netlab.fetch_here(url) == PAGE + "\n", what="loopback")
            assert netlab.fetch_here(f"http://127.0.0.1:{fixed}/") == PAGE + "\n"
            front_gw = inspect(roots, "net3/front")["gateway"]
            assert netlab.fetch_here(f"http://{front_gw}:{ephemeral}/") == PAGE + "\n"
            # from another host, through DNAT; the loopback-only port is not published there
            there = other_host.run(
                "busybox", *netlab.wget(f"http://{other_host.here}:{ephemeral}/")
            )
            assert there.stdout == PAGE + "\n", there
            refused = other_host.run(
                "busybox", *netlab.wget(f"http://{other_host.here}:{fixed}/", 2)
            )
            assert refused.returncode != 0
            # from containers, through a host address (hairpin), on the same network or not
            neighbour, stranger = seen["neighbour"]["pid"], seen["stranger"]["pid"]
            assert serving(neighbour, f"http://{front_gw}:{ephemeral}/")
            back_gw = inspect(roots, "net3/back")["gateway"]
            assert serving(stranger, f"http://{back_gw}:{ephemeral}/")
        finally:
            run(roots, "delete", "-f", str(stack))
    assert not (roots.run_root / "netns").exists() or not list((roots.run_root / "netns").iterdir())


def test_connect_and_disconnect_a_running_container(roots: Roots, busybox_tar: Path) -> None:
    docs = (
        network("a")
        + network("b")
        + container("web", WEB, "[b]")
        + container("roamer", SLEEP, "[a]")
    )
    stack = write_stack(roots.base / "net4", busybox_tar, docs)
    run(roots, "apply", "-f", str(stack))
    try:
        seen = running(roots, "web", "roamer")
        roamer, web = seen["roamer"]["pid"], seen["web"]["pid"]
        assert netlab.fetch(roamer, "http://web:8080/", timeout=2) is None
        run(roots, "network", "connect", "net4/b", "net4/roamer", "--alias", "wanderer")
        b = inspect(roots, "net4/b")
        assert address_of(b, "roamer")
        links = netlab.in_container(roamer, "ip", "-o", "link").stdout
        assert "eth1" in links, links
        assert wait_until(lambda: serving(roamer, "http://web:8080/"), what="web after connect")
        # the peers learnt the new name at once (their /etc/hosts is rewritten in place)
        assert "wanderer" in netlab.in_container(web, "cat", "/etc/hosts").stdout
        assert ps(roots)["roamer"]["id"] == seen["roamer"]["id"]  # not recreated
        # out of band for the stack: diff says so, and apply puts it back
        assert run(roots, "diff", "-f", str(stack), check=False).returncode == 2
        run(roots, "network", "disconnect", "net4/b", "net4/roamer")
        assert "eth1" not in netlab.in_container(roamer, "ip", "-o", "link").stdout
        assert "wanderer" not in netlab.in_container(web, "cat", "/etc/hosts").stdout
        assert netlab.fetch(roamer, "http://web:8080/", timeout=2) is None
    finally:
        run(roots, "delete", "-f", str(stack))
