"""``diff``: ``pyreconcile diff`` over a stack of N desired objects.

For N = 10, 100, 1000 objects (``--quick``: 10 and 100) — one Volume and N - 1
running Containers that mount it (1000 documents is also the loader's limit
per stack): apply the stack once (not timed), then time the CLI
``pyreconcile diff -f DIR`` interleaved in two states — in sync (the applied
manifests; exit code 0) and with drift (the same manifests with ``GEN``
changed on a tenth of the containers, at least one; exit code 2). The whole
CLI is timed, interpreter start included: that is what CI pays. Then the
stack is deleted (not timed). No peer here: the issue sets an absolute goal
(1000 in-sync objects under a second).
"""

from __future__ import annotations

import os
import time

from bench import context, images, names, proc, results, stacks
from bench.engines import pyrec
from bench.suites import common

__all__ = ["run"]

SUITE = "diff"
STATES = ("in sync", "drift")


def _drifted_manifest(n: int) -> str:
    """The stack with ``GEN`` changed on every tenth container (c000, c010, …)."""
    text = stacks.pyreconcile(n)
    docs = text.split("---\n")
    changed = {f"c{i:03d}" for i in range(0, n, 10)}
    out = []
    for doc in docs:
        name = next((c for c in changed if f"name: {c}}}" in doc), None)
        out.append(doc.replace('GEN: "0"', 'GEN: "1"') if name else doc)
    return "---\n".join(out)


class DiffCli:
    def __init__(self, engine: pyrec.Pyreconcile, name: str, directory: str, rc: int) -> None:
        self.name = name
        self._argv = engine.cli("diff", "--stack", "diff", "-f", directory)
        self._env = engine.env()
        self._rc = rc

    def cycle(self) -> dict[str, float]:
        start = time.perf_counter()
        out = proc.run(self._argv, env=self._env, check=False, timeout=600)
        seconds = time.perf_counter() - start
        if out.returncode != self._rc:
            raise proc.CommandFailed(
                f"pyreconcile diff exited {out.returncode}, expected {self._rc}: "
                f"{out.stderr.strip()[-300:]}"
            )
        return {"total": seconds}

    def close(self) -> list[str]:
        return []


def _one_size(ctx: context.Context, engine: pyrec.Pyreconcile, n: int) -> list[results.CaseResult]:
    in_sync = ctx.ws.path(f"diff{n}", "in-sync")
    drift = ctx.ws.path(f"diff{n}", "drift")
    with open(os.path.join(in_sync, "stack.yaml"), "w") as f:
        f.write(stacks.pyreconcile(n - 1))
    with open(os.path.join(drift, "stack.yaml"), "w") as f:
        f.write(_drifted_manifest(n - 1))
    ctx.log(f"  diff N={n}: applying the stack (not timed)")
    try:
        engine.run("apply", "-q", "--stack", "diff", "-f", in_sync, timeout=1800)
        entries = [
            common.Entry(STATES[0], True, lambda: DiffCli(engine, STATES[0], in_sync, 0)),
            common.Entry(STATES[1], True, lambda: DiffCli(engine, STATES[1], drift, 2)),
        ]
        ran = common.run_entries(ctx, entries, ctx.sizes.diff_runs, 1, f"diff N={n}")
    finally:
        engine.run("delete", "-q", "--stack", "diff", "--volumes", timeout=1800)
    cases = []
    for state in STATES:
        case = common.case(SUITE, names.diff_case(n, state), "s", ran, "total", names=[state])
        case.contestants[0].name = names.PYR_DIFF
        cases.append(case)
    return cases


def run(ctx: context.Context) -> list[results.CaseResult]:
    cases: list[results.CaseResult] = []
    engine = pyrec.Pyreconcile(ctx.ws, "diff")
    try:
        engine.import_image(ctx.rootfs.tar, images.IMAGE)
        for n in ctx.sizes.diff_sizes:
            try:
                cases += _one_size(ctx, engine, n)
            except proc.CommandFailed as exc:
                for state in STATES:
                    cases.append(
                        results.CaseResult(
                            SUITE,
                            names.diff_case(n, state),
                            "s",
                            [
                                results.ContestantResult(
                                    names.PYR_DIFF, True, "failed", [], str(exc)
                                )
                            ],
                        )
                    )
        if not ctx.sizes.diff_sizes or 1000 not in ctx.sizes.diff_sizes:
            ctx.notes.append("diff: N=1000 is not run with --quick")
    finally:
        ctx.problems.extend(engine.close())
    return cases
