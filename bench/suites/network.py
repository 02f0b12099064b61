"""``network``: attaching a running container to a bridge network, and TCP
throughput between two containers on one bridge — pyreconcile against dockerd.

Attach: a container runs on one bridge network; each cycle connects it to a
second one and disconnects it again (the connect is the case, the disconnect a
phase). Contestants: pyreconcile's engine API in this warm process (as
``apply`` drives it), ``pyreconcile network connect`` (the CLI, a new process
each time), and ``docker network connect`` against the private dockerd.

Throughput: two containers on one bridge; ``iperf3 -s`` in one's network
namespace and ``iperf3 -c`` in the other's, for a few seconds per sample. The
iperf3 binaries are the host's, entered into the containers' namespaces with
``nsenter --net`` (the busybox image has no iperf3): the data path measured is
the veth pairs, the bridge and the host's netfilter hooks, which is what the
engines set up differently. Both networks get the same MTU (pyreconcile's
default, the host uplink's). The case is the time to move 1 GiB (lower is
better, like every other case), computed from iperf3's received bits per
second.

The private dockerd runs with ``--iptables=false`` (it never touches this
host's firewall); containers on one bridge need no iptables rule.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import time
from collections.abc import Callable

from bench import context, images, proc, results
from bench.engines import pyrec
from bench.suites import common
from runtime import client

__all__ = ["run"]

SUITE = "network"
PYR_API = "pyreconcile connect (engine API)"
PYR_CLI = "pyreconcile network connect"
DOCKER_CONNECT = "docker network connect"
PYR_BRIDGE = "pyreconcile bridge"
DOCKER_BRIDGE = "docker bridge"
ATTACH_CASE = "attach a running container to a bridge network"
THROUGHPUT_CASE = "TCP throughput container → container, one bridge: time per GiB"
GIB_BITS = 8 * 1024**3


def _free_subnets(n: int) -> list[str]:
    """``n`` /24s that overlap nothing routed on this host now."""
    from runtime.net import netns, subnets

    with netns.iproute() as ipr:
        routes = subnets.host_routes(ipr)
    chosen: list[tuple[str, str]] = []
    for i in range(n):
        chosen.append((f"bench-{i}", subnets.choose(routes, chosen)))
    return [s for _, s in chosen]


class _Engine:
    """A pyreconcile engine with bridge networks ``home`` (and ``second``)."""

    def __init__(self, ctx: context.Context, label: str, second: str | None) -> None:
        self.engine = pyrec.Pyreconcile(ctx.ws, label)
        self.rt = self.engine.api()
        try:
            self.engine.import_image(ctx.rootfs.tar, images.IMAGE)
            self.rt.create_network(client.NetworkConfig(name="home"))
            if second:
                self.rt.create_network(client.NetworkConfig(name=second))
        except BaseException as exc:
            _closing(self, exc)
            raise

    def start(self, name: str, network: str = "home") -> client.ContainerInfo:
        self.rt.create_container(
            client.ContainerConfig(
                name=name,
                image=images.IMAGE,
                command=("sleep", "100000"),
                networks=(client.NetworkAttachmentConfig(network),),
                stop_grace_period=1.0,
            )
        )
        return self.rt.start_container(name)

    def netns(self, info: client.ContainerInfo) -> str:
        return os.path.join(self.engine.run_root, "netns", info.id)

    def close(self) -> list[str]:
        """Containers, then networks (their bridges and nftables table), then the rest."""
        problems: list[str] = []
        rt = self.engine.api()
        for c in rt.list_containers():
            try:
                rt.remove_container(c.name, force=True)
            except Exception as exc:
                problems.append(f"pyreconcile: remove container {c.name}: {exc}")
        for net in rt.list_networks():
            try:
                rt.remove_network(net.name)
            except Exception as exc:
                problems.append(f"pyreconcile: remove network {net.name}: {exc}")
        return problems + self.engine.close()


def _closing(made: object, error: BaseException) -> None:
    """Close a contestant whose preparation failed half-way (keeping both errors)."""
    close = getattr(made, "close", None)
    if close is None:
        return
    try:
        for problem in close():
            error.add_note(f"closing it: {problem}")
    except Exception as exc:
        error.add_note(f"closing it failed too: {exc}")


def _docker_remove(docker: Callable[..., str], boxes: list[str], networks: list[str]) -> list[str]:
    problems = []
    if boxes:
        try:
            docker("rm", "-f", *boxes)
        except proc.CommandFailed as exc:
            problems.append(f"docker rm: {exc}")
    if networks:
        try:
            docker("network", "rm", *networks)
        except proc.CommandFailed as exc:
            problems.append(f"docker network rm: {exc}")
    return problems


class PyrAttach:
    """connect/disconnect through the warm engine API."""

    name = PYR_API

    def __init__(self, ctx: context.Context, label: str = "net-api") -> None:
        self._e = _Engine(ctx, label, "extra")
        try:
            self._e.start("target")
        except BaseException as exc:
            _closing(self._e, exc)
            raise

    def cycle(self) -> dict[str, float]:
        t0 = time.perf_counter()
        self._e.rt.connect_network("extra", "target")
        t1 = time.perf_counter()
        self._e.rt.disconnect_network("extra", "target")
        t2 = time.perf_counter()
        return {"connect": t1 - t0, "disconnect": t2 - t1}

    def close(self) -> list[str]:
        return self._e.close()


class PyrAttachCli(PyrAttach):
    """connect/disconnect through the CLI (an interpreter start per command)."""

    name = PYR_CLI

    def __init__(self, ctx: context.Context) -> None:
        super().__init__(ctx, "net-cli")

    def _cli(self, *args: str) -> float:
        return proc.timed(self._e.engine.cli(*args), env=self._e.engine.env(), timeout=120)

    def cycle(self) -> dict[str, float]:
        return {
            "connect": self._cli("network", "connect", "extra", "target"),
            "disconnect": self._cli("network", "disconnect", "extra", "target"),
        }


class DockerAttach:
    name = DOCKER_CONNECT

    def __init__(self, ctx: context.Context) -> None:
        self._d = ctx.dockerd()
        self._env = self._d.env()
        self._networks: list[str] = []
        self._boxes: list[str] = []
        try:
            for net, subnet in zip(("bench-home", "bench-extra"), _free_subnets(2), strict=True):
                self._docker("network", "create", "--subnet", subnet, net)
                self._networks.append(net)
            self._boxes.append("bench-target")
            self._docker(
                "run", "-d", "--name", "bench-target", "--network", "bench-home",
                images.IMAGE, "sleep", "100000",
            )  # fmt: skip
        except BaseException as exc:
            _closing(self, exc)
            raise

    def _docker(self, *args: str) -> str:
        return proc.run(self._d.cli(*args), env=self._env, timeout=120).stdout

    def cycle(self) -> dict[str, float]:
        connect = proc.timed(
            self._d.cli("network", "connect", "bench-extra", "bench-target"), env=self._env
        )
        disconnect = proc.timed(
            self._d.cli("network", "disconnect", "bench-extra", "bench-target"), env=self._env
        )
        return {"connect": connect, "disconnect": disconnect}

    def close(self) -> list[str]:
        return _docker_remove(self._docker, self._boxes, self._networks)


class _Iperf:
    """An iperf3 server in one namespace, clients from another."""

    def __init__(self, ctx: context.Context, label: str, server_ns: str, client_ns: str) -> None:
        binary = shutil.which("iperf3")
        if binary is None:
            raise context.Unavailable("iperf3 is not installed (scripts/setup.sh --bench)")
        self._binary = binary
        self._client_ns = client_ns
        self.seconds = "2" if ctx.sizes.start_runs < 10 else "3"
        self._server = proc.Daemon(
            ["nsenter", f"--net={server_ns}", binary, "-s", "--forceflush"],
            log_path=os.path.join(ctx.ws.path("iperf3"), f"{label}.log"),
        )

    def sample(self, address: str) -> dict[str, float]:
        argv = [self._binary, "-c", address, "-t", self.seconds, "-J"]
        out = proc.run(["nsenter", f"--net={self._client_ns}", *argv], timeout=60).stdout
        bps = float(json.loads(out)["end"]["sum_received"]["bits_per_second"])
        return {"per GiB": GIB_BITS / bps, "Gbit/s": bps / 1e9}

    def wait_ready(self, address: str) -> None:
        def ready() -> bool:
            if not self._server.alive():
                raise proc.CommandFailed(f"iperf3 -s exited: {self._server.log_tail()}")
            return "Server listening" in self._server.log_tail(20)

        proc.poll(ready, 20.0, f"iperf3 -s on {address}", interval=0.02)

    def close(self) -> None:
        self._server.stop(grace=5)


class PyrThroughput:
    name = PYR_BRIDGE

    def __init__(self, ctx: context.Context) -> None:
        self._e = _Engine(ctx, "net-tput", None)
        self._iperf: _Iperf | None = None
        try:
            server = self._e.start("server")
            client_ = self._e.start("client")
            net = next(n for n in self._e.rt.list_networks() if n.name == "home")
            self.mtu = _mtu(self._e.netns(server))
            self._address = next(
                str(e.ipv4_address) for e in net.endpoints if e.container == "server"
            )
            self._iperf = _Iperf(ctx, "pyr", self._e.netns(server), self._e.netns(client_))
            self._iperf.wait_ready(self._address)
        except BaseException as exc:
            _closing(self, exc)
            raise

    def cycle(self) -> dict[str, float]:
        assert self._iperf is not None
        return self._iperf.sample(self._address)

    def close(self) -> list[str]:
        if self._iperf is not None:
            self._iperf.close()
        return self._e.close()


class DockerThroughput:
    name = DOCKER_BRIDGE

    def __init__(self, ctx: context.Context, mtu: int | None) -> None:
        self._d = ctx.dockerd()
        self._env = self._d.env()
        self._iperf: _Iperf | None = None
        self._networks: list[str] = []
        self._boxes: list[str] = []
        try:
            (subnet,) = _free_subnets(1)
            options = ["-o", f"com.docker.network.driver.mtu={mtu}"] if mtu else []
            self._docker("network", "create", "--subnet", subnet, *options, "bench-tput")
            self._networks.append("bench-tput")
            pids = {}
            for name in ("bench-server", "bench-client"):
                self._boxes.append(name)
                self._docker(
                    "run", "-d", "--name", name, "--network", "bench-tput",
                    images.IMAGE, "sleep", "100000",
                )  # fmt: skip
                pids[name] = self._docker("inspect", "-f", "{{.State.Pid}}", name).strip()
            self._address = self._docker(
                "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
                "bench-server",
            ).strip()  # fmt: skip
            self._iperf = _Iperf(
                ctx,
                "docker",
                f"/proc/{pids['bench-server']}/ns/net",
                f"/proc/{pids['bench-client']}/ns/net",
            )
            self._iperf.wait_ready(self._address)
        except BaseException as exc:
            _closing(self, exc)
            raise

    def _docker(self, *args: str) -> str:
        return proc.run(self._d.cli(*args), env=self._env, timeout=120).stdout

    def cycle(self) -> dict[str, float]:
        assert self._iperf is not None
        return self._iperf.sample(self._address)

    def close(self) -> list[str]:
        if self._iperf is not None:
            self._iperf.close()
        return _docker_remove(self._docker, self._boxes, self._networks)


def _mtu(namespace: str) -> int:
    out = proc.run(["nsenter", f"--net={namespace}", "cat", "/sys/class/net/eth0/mtu"]).stdout
    return int(out.strip())


def run(ctx: context.Context) -> list[results.CaseResult]:
    v = functools.partial(common.versions, ctx)
    runs, warmup = ctx.sizes.start_runs, ctx.sizes.start_warmup
    attach = common.run_entries(
        ctx,
        [
            common.Entry(PYR_API, True, lambda: PyrAttach(ctx)),
            common.Entry(PYR_CLI, True, lambda: PyrAttachCli(ctx)),
            common.Entry(DOCKER_CONNECT, False, lambda: DockerAttach(ctx), v("dockerd")),
        ],
        runs,
        warmup,
        SUITE,
    )
    cases = [
        common.case(SUITE, ATTACH_CASE, "s", attach, "connect"),
        common.case(SUITE, "detach (disconnect) again", "s", attach, "disconnect"),
    ]
    ours: list[PyrThroughput] = []

    def pyr() -> PyrThroughput:
        made = PyrThroughput(ctx)
        ours.append(made)
        return made

    def docker() -> DockerThroughput:
        return DockerThroughput(ctx, ours[0].mtu if ours else None)

    tput = common.run_entries(
        ctx,
        [
            common.Entry(PYR_BRIDGE, True, pyr),
            common.Entry(DOCKER_BRIDGE, False, docker, v("dockerd")),
        ],
        max(3, runs // 6),
        1 if warmup else 0,
        SUITE,
    )
    rates = {
        name: sorted(r.samples.get("Gbit/s", []))[len(r.samples.get("Gbit/s", [])) // 2]
        for name, r in tput.items()
        if r.samples.get("Gbit/s")
    }
    note = "iperf3, median " + ", ".join(f"{n}: {g:.2f} Gbit/s" for n, g in rates.items())
    cases.append(common.case(SUITE, THROUGHPUT_CASE, "s", tput, "per GiB", note=note))
    return cases
