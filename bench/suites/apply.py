"""``apply``: a stack of N long-running containers and one named volume.

One cycle per contestant, timed phase by phase:

1. cold apply — from nothing until all N are running;
2. no-op re-apply — the same files again;
3. one-container change — ``GEN`` changed on ``c000`` (a recreate of that one);
4. teardown — everything removed, the volume included.

"Until" means: the command's own time when, right after it returns, the
engine's ``ps`` already shows the expected state (the usual case: every
contestant's command waits for it); otherwise the time until ``ps`` first shows
it. The ``ps`` check itself is not timed when it passes at once.

Peers: ``docker-compose up -d`` / ``down -v`` against the private dockerd, and
``podman kube play`` / ``kube down`` + ``volume rm`` (one Pod per container, each
with podman's infra container; kube play has no no-op re-apply or single
change — ``--replace`` recreates everything — so those phases say "skipped").
The network setup is the same for all and is not the issue's bridge; see
``bench.stacks``.
"""

from __future__ import annotations

import functools
import json
import os
import time
from collections.abc import Callable, Sequence

from bench import context, images, names, proc, results, stacks
from bench.engines import pyrec
from bench.suites import common

__all__ = ["run"]

SUITE = "apply"
PHASES = dict(zip(("cold", "noop", "change", "teardown"), names.APPLY_PHASES, strict=True))


def _timed_until(
    argv: Sequence[str], env: dict[str, str], done: Callable[[], bool], what: str
) -> float:
    start = time.perf_counter()
    proc.run(argv, env=env, timeout=900)
    returned = time.perf_counter()
    if done():
        return returned - start
    proc.poll(done, 300.0, what, interval=0.05)
    return time.perf_counter() - start


class PyrApply:
    name = names.PYR_APPLY

    def __init__(self, ctx: context.Context, n: int) -> None:
        self._n = n
        self._engine = pyrec.Pyreconcile(ctx.ws, f"apply{n}")
        self._engine.import_image(ctx.rootfs.tar, images.IMAGE)
        self._dir = ctx.ws.path(f"apply{n}-pyreconcile", "stack")
        self._stack = f"bench{n}"
        self._env = self._engine.env()

    def _write(self, changed: str | None) -> None:
        with open(os.path.join(self._dir, "stack.yaml"), "w") as f:
            f.write(stacks.pyreconcile(self._n, changed))

    def _ps(self) -> dict[str, tuple[str, str]]:
        out = json.loads(self._engine.run("ps", "-o", "json"))
        return {c["object"]: (c["status"], c["id"]) for c in out if c.get("stack") == self._stack}

    def _all_running(self) -> bool:
        ps = self._ps()
        return len(ps) == self._n and all(s == "running" for s, _ in ps.values())

    def cycle(self) -> dict[str, float]:
        apply = self._engine.cli("apply", "-q", "--stack", self._stack, "-f", self._dir)
        self._write(None)
        cold = _timed_until(apply, self._env, self._all_running, "all containers running")
        before = self._ps()["c000"][1]
        noop = _timed_until(apply, self._env, self._all_running, "all containers running")
        if self._ps()["c000"][1] != before:
            raise proc.CommandFailed("the no-op re-apply recreated c000")
        self._write("c000")

        def changed() -> bool:
            ps = self._ps()
            return ps.get("c000", ("", before))[1] != before and self._all_running()

        change = _timed_until(apply, self._env, changed, "c000 recreated")
        delete = self._engine.cli("delete", "-q", "--stack", self._stack, "--volumes")
        teardown = _timed_until(
            delete,
            self._env,
            lambda: (
                not self._ps() and not json.loads(self._engine.run("volume", "ls", "-o", "json"))
            ),
            "the stack gone",
        )
        return {"cold": cold, "noop": noop, "change": change, "teardown": teardown}

    def close(self) -> list[str]:
        return self._engine.close()


class ComposeApply:
    name = names.COMPOSE

    def __init__(self, ctx: context.Context, n: int) -> None:
        self._n = n
        self._docker = ctx.dockerd()
        self._compose = ctx.peer("docker-compose").path or "docker-compose"
        self._dir = ctx.ws.path(f"apply{n}-compose")
        self._file = os.path.join(self._dir, "docker-compose.yml")
        self._project = f"bench{n}"
        self._env = self._docker.env()

    def _write(self, changed: str | None) -> None:
        with open(self._file, "w") as f:
            f.write(stacks.compose(self._n, changed))

    def _ids(self, *filters: str) -> list[str]:
        args = [
            "ps",
            "-q",
            "--no-trunc",
            "--filter",
            f"label=com.docker.compose.project={self._project}",
        ]
        for flt in filters:
            args += ["--filter", flt]
        return proc.run(self._docker.cli(*args), env=self._env).stdout.split()

    def _running(self) -> bool:
        return len(self._ids("status=running")) == self._n

    def _c000(self) -> list[str]:
        return self._ids("status=running", "label=com.docker.compose.service=c000")

    def _gone(self) -> bool:
        if self._ids("status=created", "status=exited", "status=running"):
            return False
        volumes = proc.run(
            self._docker.cli(
                "volume",
                "ls",
                "-q",
                "--filter",
                f"label=com.docker.compose.project={self._project}",
            ),
            env=self._env,
        ).stdout.split()
        return not volumes

    def cycle(self) -> dict[str, float]:
        base = [self._compose, "-p", self._project, "-f", self._file, "--no-ansi"]
        up = [*base, "up", "-d"]
        self._write(None)
        cold = _timed_until(up, self._env, self._running, "all containers running")
        before = self._c000()
        noop = _timed_until(up, self._env, self._running, "all containers running")
        if self._c000() != before:
            raise proc.CommandFailed("the no-op up -d recreated c000")
        self._write("c000")
        change = _timed_until(
            up,
            self._env,
            lambda: bool(self._c000()) and self._c000() != before and self._running(),
            "c000 recreated",
        )
        teardown = _timed_until([*base, "down", "-v"], self._env, self._gone, "the project gone")
        return {"cold": cold, "noop": noop, "change": change, "teardown": teardown}

    def close(self) -> list[str]:
        return []


class KubePlay:
    name = names.PODMAN_KUBE

    def __init__(self, ctx: context.Context, n: int) -> None:
        self._n = n
        ctx.peer("catatonit")
        self._podman = ctx.podman()
        self._file = os.path.join(ctx.ws.path(f"apply{n}-podman"), "pods.yaml")
        self._env = self._podman.env()

    def _containers(self) -> list[dict[str, object]]:
        out = self._podman.run("ps", "-a", "--format", "json")
        return [c for c in json.loads(out or "[]") if not c.get("IsInfra")]

    def cycle(self) -> dict[str, float]:
        with open(self._file, "w") as f:
            f.write(stacks.kube(self._n))
        play = self._podman.cli("kube", "play", "--network", "none", self._file)

        def running() -> bool:
            cs = self._containers()
            return len(cs) == self._n and all(c.get("State") == "running" for c in cs)

        cold = _timed_until(play, self._env, running, "all containers running")
        start = time.perf_counter()
        proc.run(self._podman.cli("kube", "down", self._file), env=self._env, timeout=900)
        proc.run(self._podman.cli("volume", "rm", "data"), env=self._env)
        teardown = time.perf_counter() - start
        if self._containers():
            raise proc.CommandFailed("containers left after kube down")
        return {"cold": cold, "teardown": teardown}

    def close(self) -> list[str]:
        return []


def run(ctx: context.Context) -> list[results.CaseResult]:
    cases = []
    sizes = ctx.sizes
    for n in sizes.apply_sizes:
        entries = [
            common.Entry(names.PYR_APPLY, True, functools.partial(PyrApply, ctx, n)),
            common.Entry(
                names.COMPOSE,
                False,
                functools.partial(ComposeApply, ctx, n),
                common.versions(ctx, "docker-compose", "dockerd"),
            ),
            common.Entry(
                names.PODMAN_KUBE,
                False,
                functools.partial(KubePlay, ctx, n),
                common.versions(ctx, "podman"),
            ),
        ]
        ran = common.run_entries(ctx, entries, sizes.apply_runs, sizes.apply_warmup, f"apply N={n}")
        for key, phase in PHASES.items():
            skip = (
                {names.PODMAN_KUBE: "kube play has no no-op re-apply or single-container change"}
                if key in ("noop", "change")
                else None
            )
            cases.append(
                common.case(SUITE, names.apply_case(n, phase), "s", ran, key, not_applicable=skip)
            )
    return cases
