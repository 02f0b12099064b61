"""Running a suite's contestants interleaved and turning outcomes into cases.

A suite lists ``Entry`` objects: a name, whether it is pyreconcile, and a
factory that builds the contestant (which may raise ``context.Unavailable``
for a missing peer, or fail preparing). Contestants that could be built run
interleaved; every one is closed afterwards, whatever happened.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

from bench import context, interleave, results

__all__ = ["Contestant", "Entry", "Ran", "case", "run_entries", "versions"]


class Contestant(Protocol):
    @property
    def name(self) -> str: ...

    def cycle(self) -> Mapping[str, float]: ...

    def close(self) -> list[str]:
        """Remove what it made; return problems for the report."""
        ...


@dataclasses.dataclass(frozen=True)
class Entry:
    name: str
    ours: bool
    make: Callable[[], Contestant]
    version: str = ""


@dataclasses.dataclass
class Ran:
    """One entry after the run: its status and its samples by metric."""

    entry: Entry
    status: results.Status
    reason: str = ""
    samples: dict[str, list[float]] = dataclasses.field(default_factory=dict)


def run_entries(
    ctx: context.Context, entries: Sequence[Entry], runs: int, warmup: int, title: str
) -> dict[str, Ran]:
    ran: dict[str, Ran] = {}
    built: list[Contestant] = []
    try:
        for entry in entries:
            try:
                built.append(entry.make())
                ran[entry.name] = Ran(entry, "ok")
            except context.Unavailable as exc:
                ran[entry.name] = Ran(entry, "missing", str(exc))
                ctx.log(f"  {entry.name}: missing ({exc})")
            except Exception as exc:
                ran[entry.name] = Ran(entry, "failed", f"preparing: {exc}")
                ctx.log(f"  {entry.name}: failed preparing ({exc})")

        def progress(slot: interleave.Slot, values: Mapping[str, float] | None) -> None:
            kind = "warm-up" if slot.warmup else "run"
            if values is None:
                ctx.log(f"  {title} {kind} {slot.round + 1}: {slot.contestant} failed")
                return
            shown = ", ".join(f"{k} {v:.4g}" for k, v in values.items())
            ctx.log(f"  {title} {kind} {slot.round + 1}: {slot.contestant}: {shown}")

        outcomes = interleave.run(built, runs, warmup, progress)
        for name, outcome in outcomes.items():
            ran[name].samples = outcome.samples
            if outcome.error is not None:
                ran[name].status = "failed"
                ran[name].reason = outcome.error
    finally:
        for contestant in built:
            try:
                ctx.problems.extend(contestant.close())
            except Exception as exc:
                ctx.problems.append(f"closing {contestant.name}: {exc}")
    return ran


def case(
    suite: str,
    title: str,
    unit: results.Unit,
    ran: Mapping[str, Ran],
    metric: str,
    names: Sequence[str] | None = None,
    note: str = "",
    not_applicable: Mapping[str, str] | None = None,
) -> results.CaseResult:
    """One case (one metric) over the entries named (all, in order, by default)."""
    contestants = []
    for name in names if names is not None else list(ran):
        r = ran[name]
        status: results.Status = r.status
        reason = r.reason
        samples = r.samples.get(metric, [])
        if not_applicable and name in not_applicable:
            status, reason, samples = "skipped", not_applicable[name], []
        elif status == "ok" and not samples:
            status, reason = "failed", "no samples"
        elif status == "failed" and samples:
            reason = f"{reason} (after {len(samples)} samples)"
        contestants.append(
            results.ContestantResult(
                name=name,
                ours=r.entry.ours,
                status=status,
                samples=samples if status == "ok" else [],
                reason=reason,
                version=r.entry.version,
            )
        )
    return results.CaseResult(suite, title, unit, contestants, note)


def versions(ctx: context.Context, first: str, *others: str) -> str:
    """``"1.29.2, dockerd 20.10.24"``: the first peer's version, then the others' by name
    (only those found)."""
    parts = []
    for i, name in enumerate((first, *others)):
        peer = ctx.peers.get(name)
        if peer is None or not peer.ok:
            continue
        parts.append(peer.version if i == 0 else f"{name} {peer.version}")
    return ", ".join(parts)
