"""Markdown rendering of a results document: one table per suite, then the goals.

Each case lists every contestant with median, min, max and the number of
samples, and for peers the ratio pyreconcile / peer (the case's first
pyreconcile contestant over the peer's median; below 1 means pyreconcile takes
less time or memory). A contestant that did not run says why in place of its
numbers.
"""

from __future__ import annotations

from collections.abc import Iterable

from bench import goals, results, stats

__all__ = ["format_value", "render", "render_suite"]


def format_value(value: float, unit: results.Unit) -> str:
    """Seconds as ms or s, bytes as KiB or MiB, three significant digits."""
    if unit == "s":
        if value < 1.0:
            return f"{value * 1000:.3g} ms"
        return f"{value:.3g} s"
    if value < 1024 * 1024:
        return f"{value / 1024:.3g} KiB"
    return f"{value / (1024 * 1024):.3g} MiB"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _rows(case: results.CaseResult) -> Iterable[str]:
    ref = case.reference()
    ref_summary = ref.summary if ref is not None else None
    first = True
    for c in case.contestants:
        label = _cell(case.case) if first else ""
        first = False
        name = _cell(c.name + (f" ({c.version})" if c.version else ""))
        summary = c.summary
        if summary is None:
            what = c.status if c.status != "ok" else "no samples"
            reason = f": {c.reason}" if c.reason else ""
            yield f"| {label} | {name} | {_cell(what + reason)} | | | | |"
            continue
        if c.ours:
            ratio_text = "—"
        elif ref_summary is None:
            ratio_text = "n/a"
        else:
            r = stats.ratio(ref_summary.median, summary.median)
            ratio_text = f"{r:.2f}x" if r is not None else "n/a"
        yield (
            f"| {label} | {name} | {format_value(summary.median, case.unit)} | "
            f"{format_value(summary.min, case.unit)} | {format_value(summary.max, case.unit)} | "
            f"{summary.n} | {ratio_text} |"
        )


def render_suite(doc: results.Document, suite: str) -> str:
    cases = [c for c in doc.cases if c.suite == suite]
    lines = [
        "| case | contestant | median | min | max | n | pyreconcile / peer |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    notes = []
    for case in cases:
        lines.extend(_rows(case))
        if case.note:
            notes.append(f"- {case.case}: {case.note}")
    return "\n".join(lines + (["", *notes] if notes else []))


def render(doc: results.Document) -> str:
    host = doc.host
    out = [
        f"Run {doc.started_at} → {doc.finished_at}"
        + (" (`--quick`: fewer runs)" if doc.quick else "")
        + f" on {host.get('cpus', '?')} CPUs, {host.get('memory', '?')}, "
        f"kernel {host.get('kernel', '?')}, cgroups {host.get('cgroups', '?')}, "
        f"Python {host.get('python', '?')}.",
        "",
    ]
    src = host.get("source")
    if isinstance(src, dict):
        line = (
            f"Code measured: commit `{str(src.get('commit', '?'))[:12]}` ({src.get('tree', '?')})"
        )
        edited = src.get("uncommitted") or []
        if edited:
            line += (
                f" with uncommitted changes in {len(edited)} files: "
                + ", ".join(f"`{e}`" for e in edited[:10])
                + ("…" if len(edited) > 10 else "")
            )
        out += [line + ".", ""]
    for suite in doc.suites:
        out += [f"### {suite}", "", render_suite(doc, suite), ""]
    out += [
        "### goals (issue [2]; [5] marks issue [5]'s)",
        "",
        "| goal | measured | verdict |",
        "|---|---|---|",
    ]
    for v in goals.evaluate(doc):
        out.append(f"| {_cell(v.goal.text)} | {_cell(v.measured)} | {v.state} |")
    out.append("")
    if doc.notes:
        out += ["Notes:", ""] + [f"- {_cell(n)}" for n in doc.notes] + [""]
    if doc.leaks:
        out += ["**Left behind (and removed by the harness):**", ""]
        out += [f"- {_cell(leak)}" for leak in doc.leaks] + [""]
    return "\n".join(out)
