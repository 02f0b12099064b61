"""Network test lab: free subnets, namespaces that stand in for other hosts, and
small servers run inside a namespace.

Rules the network tests keep (tests/integration/test_net_*.py): traffic goes
only to loopback or to namespaces and containers the test made; subnets are
chosen at random from 10.128.0.0/9 and checked against the host's routes at
run time (never assumed); every namespace, link and process is removed by the
test, by path, name or pid.
"""

from __future__ import annotations

import contextlib
import ipaddress
import random
import signal
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

from runtime.net import netns, subnets

POOL = ipaddress.IPv4Network("10.128.0.0/9")


def free_subnet(prefix: int = 24) -> str:
    """A random subnet of 10.128.0.0/9 that overlaps no route or address of the host."""
    with netns.iproute() as ipr:
        routes = subnets.host_routes(ipr)
    candidates = list(POOL.subnets(new_prefix=16))
    for _ in range(200):
        big = random.choice(candidates)
        net = random.choice(list(big.subnets(new_prefix=prefix)))
        if subnets.conflict(str(net), routes, ()) is None:
            return str(net)
    raise AssertionError("no free subnet found in 10.128.0.0/9")


def host(net: str, n: int) -> str:
    """The ``n``-th address of ``net``."""
    return str(ipaddress.IPv4Network(net).network_address + n)


def ip(*args: str, namespace: str | None = None, check: bool = True) -> str:
    """``ip`` here, or in the namespace at ``namespace`` (nsenter --net)."""
    cmd = ["ip", *args]
    if namespace:
        cmd = ["nsenter", f"--net={namespace}", *cmd]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=30)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)}: {proc.stderr.strip()}")
    return proc.stdout


def link_name(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}"


class Peer:
    """A network namespace wired to this one by a veth pair: another host on a
    private /30 (``here`` is our end's address, ``there`` the peer's)."""

    def __init__(self, base: Path, name: str) -> None:
        self.path = str(base / f"ns-{name}")
        self.subnet = free_subnet(30)
        self.here = host(self.subnet, 1)
        self.there = host(self.subnet, 2)
        self.link = link_name("tph")
        self.processes: list[subprocess.Popen[bytes]] = []

    def __enter__(self) -> Peer:
        netns.create(self.path)
        peer = link_name("tpp")
        try:
            ip("link", "add", self.link, "type", "veth", "peer", "name", peer)
            ip("link", "set", peer, "netns", self.path)
            ip("addr", "add", f"{self.here}/30", "dev", self.link)
            ip("link", "set", self.link, "up")
            ip("link", "set", "lo", "up", namespace=self.path)
            ip("link", "set", peer, "name", "eth0", namespace=self.path)
            ip("addr", "add", f"{self.there}/30", "dev", "eth0", namespace=self.path)
            ip("link", "set", "eth0", "up", namespace=self.path)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def run(self, *cmd: str, timeout: float = 20) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["nsenter", f"--net={self.path}", *cmd],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def serve_http(self, directory: Path, port: int) -> None:
        """busybox httpd in this namespace, serving ``directory``."""
        cmd = ["busybox", "httpd", "-f", "-p", str(port), "-h", str(directory)]
        proc = subprocess.Popen(
            ["nsenter", f"--net={self.path}", *cmd],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.processes.append(proc)

    def __exit__(self, *exc: object) -> None:
        for proc in self.processes:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
        ip("link", "del", self.link, check=False)
        netns.remove(self.path)


DNS_RESPONDER = textwrap.dedent(
    """
    import socket, struct, sys
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("0.0.0.0", int(sys.argv[1])))
    answer = bytes(int(x) for x in sys.argv[2].split("."))
    print("ready", flush=True)
    while True:
        data, peer = s.recvfrom(512)
        ident, flags, qd = struct.unpack("!HHH", data[:6])
        end = 12
        while data[end]:
            end += data[end] + 1
        question = data[12 : end + 5]
        qtype = struct.unpack("!H", data[end + 1 : end + 3])[0]
        print("query from", peer[0], flush=True)
        if qtype == 1:
            header = struct.pack("!HHHHHH", ident, 0x8180, 1, 1, 0, 0)
            rr = struct.pack("!HHHIH", 0xC00C, 1, 1, 60, 4) + answer
            s.sendto(header + question + rr, peer)
        else:
            s.sendto(struct.pack("!HHHHHH", ident, 0x8180, 1, 0, 0, 0) + question, peer)
    """
)


@contextlib.contextmanager
def udp_responder(namespace: str, port: int, answer: str) -> Iterator[subprocess.Popen[str]]:
    """A tiny DNS server on UDP ``port`` in the namespace at ``namespace`` that answers
    every A query with ``answer``: busybox has no UDP server, and ``nslookup`` is its
    UDP client that sends and receives."""
    proc = subprocess.Popen(
        ["nsenter", f"--net={namespace}", sys.executable, "-c", DNS_RESPONDER, str(port), answer],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.strip() == "ready", proc.stderr.read() if proc.stderr else line
        yield proc
    finally:
        proc.kill()
        proc.wait(timeout=10)


def in_container(pid: int, *cmd: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    """Run ``cmd`` in the network and mount namespaces of the container whose init
    is ``pid`` (its binaries, its /etc/hosts), as ``exec`` would."""
    return subprocess.run(
        ["nsenter", "-t", str(pid), "-n", "-m", *cmd],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def wget(url: str, timeout: int = 3) -> list[str]:
    """busybox ``wget -qO- url`` bounded by busybox ``timeout`` (its own ``-T``
    crashes the Debian 1.35 static build)."""
    return ["timeout", str(timeout), "wget", "-qO-", url]


def fetch(pid: int, url: str, timeout: int = 3) -> str | None:
    """``wget -qO- url`` inside the container; its body, or None when it failed."""
    proc = in_container(pid, *wget(url, timeout), timeout=timeout + 10)
    return proc.stdout if proc.returncode == 0 else None


def fetch_here(url: str, timeout: int = 3) -> str | None:
    """``wget -qO- url`` from the host itself."""
    proc = subprocess.run(
        ["busybox", *wget(url, timeout)],
        capture_output=True,
        text=True,
        timeout=timeout + 10,
        check=False,
    )
    return proc.stdout if proc.returncode == 0 else None
