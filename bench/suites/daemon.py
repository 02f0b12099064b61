"""``daemon``: the reconcile loop's latencies and cost, 50 containers under watch.

One daemon (``pyreconcile daemon --watch DIR``, resync an hour away so that only
the triggers under test act) keeps the apply suite's stack of 50 converged.
Each round measures:

1. edit → replaced: ``GEN`` of ``c000`` changed in the watched file (saved by
   rename, as editors do) until ``c000`` is a new container and running;
2. drift repaired: one container's process killed (SIGKILL; restart policy
   ``no``, so only self-heal brings it back) until it runs again — the shim's
   exit event, the loop's round, the start. Each round kills another container
   (``c001``, ``c002``…): killing the same one every round would measure the
   daemon's flap hold (a third start within a minute waits 10 s), not a repair;
3. idle CPU: the daemon's user+system CPU time over a quiet window divided by
   the window (``/proc/<pid>/stat``), nothing changing;
4. no-op re-apply: ``pyreconcile apply`` of the same 50 through the daemon's API
   (the CLI's start, one request, the daemon's load, observe and plan) against
   docker-compose's ``up -d`` of the same stack, already up.

Timings poll the daemon's API directly (``RemoteRuntime``), every 5 ms.
"""

from __future__ import annotations

import functools
import os
import signal
import subprocess
import time
from typing import Any

from bench import context, images, names, proc, results, stacks
from bench.engines import pyrec
from bench.suites import apply as apply_suite
from bench.suites import common

__all__ = ["run"]

SUITE = "daemon"
N = 50
IDLE_WINDOW = 10.0


class PyrDaemon:
    name = names.PYR_DAEMON

    def __init__(self, ctx: context.Context, quick: bool) -> None:
        self._ctx = ctx
        self._engine = pyrec.Pyreconcile(ctx.ws, "daemon")
        self._engine.import_image(ctx.rootfs.tar, images.IMAGE)
        self._dir = ctx.ws.path("daemon-watched", "bench")
        self._stack = "bench"
        self._file = os.path.join(self._dir, "stack.yaml")
        self._write(None)
        self._idle = IDLE_WINDOW / 2 if quick else IDLE_WINDOW
        self._log = open(os.path.join(self._engine.base, "daemon.log"), "ab")  # noqa: SIM115
        self._daemon = subprocess.Popen(
            self._engine.cli("daemon", "--watch", self._dir, "--resync", "3600s"),
            env=self._engine.env(),
            stdout=self._log,
            stderr=self._log,
        )
        self._rt = self._remote()
        self._gen = False
        self._kills = 0  # containers killed so far (each round kills the next one)
        proc.poll(self._all_running, 300, "the watched stack up")

    def _remote(self) -> Any:
        from reconciler.daemon import client as api_client
        from reconciler.daemon import remote

        path = os.path.join(self._engine.run_root, api_client.SOCKET_NAME)
        found: list[Any] = []

        def up() -> bool:
            if self._daemon.poll() is not None:
                raise proc.CommandFailed(f"the daemon exited ({self._daemon.returncode})")
            api = api_client.connect(path) if os.path.exists(path) else None
            if api is not None:
                found.append(api)
            return api is not None

        proc.poll(up, 60, "the daemon's socket")
        return remote.RemoteRuntime(found[0])

    def _write(self, changed: str | None) -> None:
        tmp = self._file + ".tmp"
        with open(tmp, "w") as f:
            f.write(stacks.pyreconcile(N, changed))
        os.replace(tmp, self._file)

    def _containers(self) -> dict[str, Any]:
        return {
            c.labels.get("io.pyreconcile.name"): c
            for c in self._rt.list_containers()
            if c.labels.get("io.pyreconcile.stack") == self._stack
        }

    def _all_running(self) -> bool:
        cs = self._containers()
        return len(cs) == N and all(c.status == "running" for c in cs.values())

    def _get(self, name: str) -> Any:
        from runtime import errors

        try:
            return self._rt.get_container(f"{self._stack}_{name}")
        except errors.NotFound:
            return None  # between the removal and the creation of a recreate

    def _cpu_seconds(self) -> float:
        with open(f"/proc/{self._daemon.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def cycle(self) -> dict[str, float]:
        try:
            return self._cycle()
        except Exception:
            # the workspace (and the daemon's log in it) is gone after the run: show its end
            self._log.flush()
            with open(self._log.name, "rb") as f:
                tail = f.read()[-3000:].decode(errors="replace")
            self._ctx.log(f"  the daemon's log ends:\n{tail}")
            raise

    def _cycle(self) -> dict[str, float]:
        before = self._containers()["c000"].id
        self._gen = not self._gen
        start = time.perf_counter()
        self._write("c000" if self._gen else None)

        def replaced() -> bool:
            c = self._get("c000")
            return bool(c is not None and c.id != before and c.status == "running")

        proc.poll(replaced, 60, "c000 replaced", interval=0.005)
        edit = time.perf_counter() - start

        self._kills += 1
        name = f"c{1 + (self._kills - 1) % 49:03d}"  # another one every round (not c000)
        victim = self._rt.get_container(f"{self._stack}_{name}")
        start = time.perf_counter()
        os.kill(victim.pid, signal.SIGKILL)

        def repaired() -> bool:
            c = self._get(name)
            return bool(c is not None and c.status == "running" and c.pid != victim.pid)

        proc.poll(repaired, 60, f"{name} running again", interval=0.005)
        repair = time.perf_counter() - start

        time.sleep(1.0)  # let the verify rounds and exit events settle
        cpu, wall = self._cpu_seconds(), time.perf_counter()
        time.sleep(self._idle)
        idle = (self._cpu_seconds() - cpu) / (time.perf_counter() - wall)

        env = dict(self._engine.env(), PYRECONCILE_DAEMON="always")
        argv = self._engine.cli("apply", "-q", "--stack", self._stack, "-f", self._dir)
        start = time.perf_counter()
        proc.run(argv, env=env, timeout=300)
        noop = time.perf_counter() - start
        if not self._all_running():
            raise proc.CommandFailed("the no-op apply left the stack changed")
        return {"edit": edit, "repair": repair, "idle": idle, "noop": noop}

    def close(self) -> list[str]:
        problems: list[str] = []
        self._rt.close()
        if self._daemon.poll() is None:
            self._daemon.send_signal(signal.SIGTERM)
            try:
                self._daemon.wait(30)
            except subprocess.TimeoutExpired:
                self._daemon.kill()
                self._daemon.wait()
                problems.append("pyreconcile daemon: did not stop on SIGTERM within 30 s")
        self._log.close()
        return problems + self._engine.close()


class ComposeNoop:
    """docker-compose ``up -d`` of the same 50, already up (the apply suite's file)."""

    name = names.COMPOSE

    def __init__(self, ctx: context.Context) -> None:
        self._inner = apply_suite.ComposeApply(ctx, N)
        self._inner._write(None)
        self._up = [*self._base(), "up", "-d"]
        proc.run(self._up, env=self._inner._env, timeout=900)
        proc.poll(self._inner._running, 300, "compose up")

    def _base(self) -> list[str]:
        i = self._inner
        return [i._compose, "-p", i._project, "-f", i._file, "--no-ansi"]

    def cycle(self) -> dict[str, float]:
        start = time.perf_counter()
        proc.run(self._up, env=self._inner._env, timeout=900)
        return {"noop": time.perf_counter() - start}

    def close(self) -> list[str]:
        proc.run([*self._base(), "down", "-v"], env=self._inner._env, timeout=900)
        return []


def run(ctx: context.Context) -> list[results.CaseResult]:
    quick = ctx.sizes.apply_runs <= 1
    entries = [
        common.Entry(names.PYR_DAEMON, True, functools.partial(PyrDaemon, ctx, quick)),
        common.Entry(
            names.COMPOSE,
            False,
            functools.partial(ComposeNoop, ctx),
            common.versions(ctx, "docker-compose", "dockerd"),
        ),
    ]
    ran = common.run_entries(ctx, entries, ctx.sizes.apply_runs, 0, "daemon N=50")
    ours = [names.PYR_DAEMON]
    return [
        common.case(SUITE, names.DAEMON_EDIT_CASE, "s", ran, "edit", ours),
        common.case(SUITE, names.DAEMON_REPAIR_CASE, "s", ran, "repair", ours),
        common.case(
            SUITE,
            names.DAEMON_IDLE_CASE,
            "s",
            ran,
            "idle",
            ours,
            note="the goal is under 0.01 (1% of one core)",
        ),
        common.case(
            SUITE, names.DAEMON_NOOP_CASE, "s", ran, "noop", [names.PYR_DAEMON, names.COMPOSE]
        ),
    ]
