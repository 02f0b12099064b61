"""``memory``: what each running container costs in its supervising process.

With 20 long-running containers up (the same ``stacks.COMMAND``), read
``/proc/PID/smaps_rollup`` of each container's supervisor: pyreconcile's shim,
containerd-shim-runc-v2 under the private dockerd, conmon under podman. The
supervisor is found from the container's init pid (its parent) for
pyreconcile and docker, and from ``ConmonPid`` for podman, and its name is
checked. PSS (proportional set size) shares each page among the processes that
map it, so 20 identical supervisors show what one more container really costs;
the sample of a round is the mean PSS of the 20 (their sum / 20). RSS is kept
as a second case. Rounds are interleaved (pyreconcile, docker, podman, …);
each round starts 20, measures, and removes them.

dockerd and containerd are not counted (they are shared by all containers);
their PSS is written in the notes for context.
"""

from __future__ import annotations

import json
import os
import statistics

from bench import context, host, images, names, proc, results, stacks
from bench.engines import pyrec
from bench.suites import common

__all__ = ["run"]

SUITE = "memory"


def _measure(pids: list[int]) -> dict[str, float]:
    rollups = [host.smaps_rollup(pid) for pid in pids]
    return {
        "pss": sum(r.get("Pss", 0) for r in rollups) / len(rollups),
        "rss": sum(r.get("Rss", 0) for r in rollups) / len(rollups),
        "threads": statistics.median(host.threads(pid) for pid in pids),
    }


def _check_names(pids: list[int], expected: tuple[str, ...], what: str) -> None:
    for pid in pids:
        comm = host.comm(pid)
        if not comm.startswith(expected):
            raise proc.CommandFailed(f"{what}: supervisor {pid} is {comm!r}, not {expected}")


class PyrShims:
    name = names.PYR_SHIM_PROC

    def __init__(self, ctx: context.Context, count: int) -> None:
        self._count = count
        self._engine = pyrec.Pyreconcile(ctx.ws, "memory")
        self._engine.import_image(ctx.rootfs.tar, images.IMAGE)
        self._dir = ctx.ws.path("memory-pyreconcile")
        with open(os.path.join(self._dir, "stack.yaml"), "w") as f:
            f.write(stacks.pyreconcile(count))

    def cycle(self) -> dict[str, float]:
        self._engine.run("apply", "-q", "--stack", "mem", "-f", self._dir)
        out = json.loads(self._engine.run("ps", "-o", "json"))
        pids = [c["pid"] for c in out if c["status"] == "running" and c.get("pid")]
        if len(pids) != self._count:
            raise proc.CommandFailed(f"{len(pids)} of {self._count} containers running")
        shims = [host.ppid(pid) for pid in pids]
        _check_names(shims, ("shim-",), "pyreconcile")
        values = _measure(shims)
        self._engine.run("delete", "-q", "--stack", "mem", "--volumes")
        return values

    def close(self) -> list[str]:
        return self._engine.close()


class DockerShims:
    name = names.CONTAINERD_SHIM

    def __init__(self, ctx: context.Context, count: int) -> None:
        self._count = count
        self._docker = ctx.dockerd()
        self._env = self._docker.env()
        self._ctx = ctx

    def _cli(self, *args: str) -> str:
        return proc.run(self._docker.cli(*args), env=self._env).stdout

    def cycle(self) -> dict[str, float]:
        ids = []
        try:
            for i in range(self._count):
                ids.append(
                    self._cli(
                        "run", "-d", "--network", "none", "--name", f"mem{i:02d}",
                        "--stop-timeout", "1", images.IMAGE, *stacks.COMMAND,
                    ).strip()
                )  # fmt: skip
            pids = [int(p) for p in self._cli("inspect", "-f", "{{.State.Pid}}", *ids).split()]
            shims = [host.ppid(pid) for pid in pids]
            _check_names(shims, ("containerd-shim",), "docker")
            values = _measure(shims)
            daemons = [p for p, _ in host.processes_mentioning(self._docker.base) if p not in shims]
            daemon_pss = sum(
                host.smaps_rollup(p).get("Pss", 0)
                for p in daemons
                if host.comm(p) in ("dockerd", "containerd")
            )
            values["daemons pss"] = float(daemon_pss)
            return values
        finally:
            if ids:
                self._cli("rm", "-f", *ids)

    def close(self) -> list[str]:
        return []


class Conmons:
    name = names.CONMON

    def __init__(self, ctx: context.Context, count: int) -> None:
        self._count = count
        self._podman = ctx.podman()

    def cycle(self) -> dict[str, float]:
        ids = []
        try:
            for i in range(self._count):
                ids.append(
                    self._podman.run(
                        "run", "-d", "--network", "none", "--name", f"mem{i:02d}",
                        "--cgroup-parent", f"/{self._podman.cgroup_parent}",
                        "--stop-timeout", "1", images.IMAGE, *stacks.COMMAND,
                    ).strip()
                )  # fmt: skip
            out = self._podman.run("inspect", "--format", "{{.State.ConmonPid}}", *ids)
            conmons = [int(p) for p in out.split()]
            _check_names(conmons, ("conmon",), "podman")
            return _measure(conmons)
        finally:
            if ids:
                self._podman.run("rm", "-f", "-t", "0", *ids)

    def close(self) -> list[str]:
        return []


def run(ctx: context.Context) -> list[results.CaseResult]:
    count = ctx.sizes.memory_containers
    entries = [
        common.Entry(names.PYR_SHIM_PROC, True, lambda: PyrShims(ctx, count)),
        common.Entry(
            names.CONTAINERD_SHIM,
            False,
            lambda: DockerShims(ctx, count),
            common.versions(ctx, "containerd", "dockerd"),
        ),
        common.Entry(
            names.CONMON,
            False,
            lambda: Conmons(ctx, count),
            common.versions(ctx, "conmon", "podman"),
        ),
    ]
    ran = common.run_entries(ctx, entries, ctx.sizes.memory_rounds, 0, SUITE)
    cases = [
        common.case(SUITE, names.MEMORY_PSS_CASE, "bytes", ran, "pss"),
        common.case(SUITE, names.MEMORY_RSS_CASE, "bytes", ran, "rss"),
    ]
    threads = {
        name: statistics.median(r.samples["threads"])
        for name, r in ran.items()
        if r.samples.get("threads")
    }
    if threads:
        ctx.notes.append(
            "memory: threads per supervising process: "
            + ", ".join(f"{name} {t:g}" for name, t in threads.items())
        )
    daemons = ran[names.CONTAINERD_SHIM].samples.get("daemons pss")
    if daemons:
        ctx.notes.append(
            f"memory: dockerd + containerd PSS with {count} containers running (shared by all, "
            f"not counted above): {statistics.median(daemons) / 1024 / 1024:.1f} MiB"
        )
    return cases
