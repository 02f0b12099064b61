"""Rendering of the results document: Markdown tables, ratios, missing peers,
the goals, and the JSON round trip."""

from __future__ import annotations

from pathlib import Path

from bench import goals, names, report, results


def _doc(cases: list[results.CaseResult]) -> results.Document:
    return results.Document(
        started_at="2026-01-01T00:00:00Z",
        finished_at="2026-01-01T00:01:00Z",
        quick=False,
        suites=sorted({c.suite for c in cases}),
        host={"cpus": 2, "kernel": "6.1", "cgroups": "hybrid", "python": "3.11", "memory": "x"},
        peers={"runc": {"path": "/usr/sbin/runc", "version": "1.1.5"}, "crun": {"missing": "no"}},
        cases=cases,
    )


def _start_case() -> results.CaseResult:
    return results.CaseResult(
        "start",
        names.START_CASE,
        "s",
        [
            results.ContestantResult(names.PYR_SHIM, True, samples=[0.050, 0.048, 0.060]),
            results.ContestantResult(
                names.RUNC, False, samples=[0.025, 0.020, 0.030], version="1.1.5"
            ),
            results.ContestantResult(names.CRUN, False, "missing", reason="crun not installed"),
        ],
    )


def test_format_value_picks_the_unit() -> None:
    assert report.format_value(0.0481, "s") == "48.1 ms"
    assert report.format_value(3.412, "s") == "3.41 s"
    assert report.format_value(4.5 * 1024 * 1024, "bytes") == "4.5 MiB"
    assert report.format_value(412 * 1024, "bytes") == "412 KiB"


def test_table_has_median_min_max_and_the_ratio() -> None:
    table = report.render_suite(_doc([_start_case()]), "start")
    lines = table.splitlines()
    assert lines[0] == "| case | contestant | median | min | max | n | pyreconcile / peer |"
    assert lines[2] == (
        f"| {names.START_CASE} | {names.PYR_SHIM} | 50 ms | 48 ms | 60 ms | 3 | — |"
    )
    assert lines[3] == f"|  | {names.RUNC} (1.1.5) | 25 ms | 20 ms | 30 ms | 3 | 2.00x |"
    assert lines[4] == f"|  | {names.CRUN} | missing: crun not installed | | | | |"


def test_pipes_in_reasons_do_not_break_the_table() -> None:
    case = _start_case()
    case.contestants[2].reason = "a | b"
    assert "missing: a \\| b" in report.render_suite(_doc([case]), "start")


def test_goals_are_evaluated_on_medians() -> None:
    verdicts = {v.goal.suite + v.goal.case: v for v in goals.evaluate(_doc([_start_case()]))}
    start = verdicts["start" + names.START_CASE]
    assert start.state == "missed"
    assert start.measured == "ratio 2.00 (limit 1.00)"
    assert verdicts["diff" + names.diff_case(1000, "in sync")].state == "not measured"


def test_absolute_goal() -> None:
    case = results.CaseResult(
        "diff",
        names.diff_case(1000, "in sync"),
        "s",
        [results.ContestantResult(names.PYR_DIFF, True, samples=[0.9, 0.8, 1.2])],
    )
    (verdict,) = [v for v in goals.evaluate(_doc([case])) if v.goal.suite == "diff"]
    assert verdict.state == "met"


def test_render_lists_goals_notes_and_leaks() -> None:
    doc = _doc([_start_case()])
    doc.notes = ["a note"]
    doc.leaks = ["mount /tmp/x"]
    text = report.render(doc)
    assert "### start" in text
    assert (
        "| start through the shim path: at most runc's median | ratio 2.00 (limit 1.00) | missed |"
        in text
    )
    assert "- a note" in text
    assert "- mount /tmp/x" in text


def test_json_round_trip(tmp_path: Path) -> None:
    doc = _doc([_start_case()])
    path = str(tmp_path / "latest.json")
    results.save(doc, path)
    again = results.load(path)
    assert again == doc
    assert report.render(again) == report.render(doc)


def test_render_names_the_code_measured() -> None:
    doc = _doc([_start_case()])
    doc.host["source"] = {
        "commit": "0123456789abcdef",
        "tree": "working tree",
        "uncommitted": ["runtime/local.py"],
    }
    text = report.render(doc)
    assert (
        "Code measured: commit `0123456789ab` (working tree) with uncommitted changes in 1 files: "
        "`runtime/local.py`." in text
    )


def _pull_case() -> results.CaseResult:
    return results.CaseResult(
        "pull",
        names.FETCH_CASE,
        "s",
        [
            results.ContestantResult(names.PYR_FETCH, True, samples=[0.1, 0.12, 0.11]),
            results.ContestantResult(names.SKOPEO_COPY, False, samples=[0.2, 0.21, 0.19]),
        ],
    )


def test_merge_keeps_the_other_suites_and_says_where_they_come_from() -> None:
    old = _doc([_start_case(), _pull_case()])
    old.notes = ["memory: a note of the old run"]
    old.host["source"] = {"commit": "f812c527d26cc96366e5", "tree": "exported commit"}
    new_pull = _pull_case()
    new_pull.contestants[0].samples = [0.05, 0.05, 0.05]
    new = _doc([new_pull])
    new.started_at = "2026-02-02T00:00:00Z"
    merged = results.merge(old, new)
    assert merged.suites == ["start", "pull"]
    assert [c.suite for c in merged.cases] == ["start", "pull"]
    assert merged.cases[1].contestants[0].samples == [0.05, 0.05, 0.05]  # the new run's
    assert merged.cases[0] is old.cases[0]
    assert "start from the run of 2026-01-01T00:00:00Z, commit f812c527d26c" in merged.notes[0]
    assert "(from the run of 2026-01-01T00:00:00Z" in merged.notes[-1]
    verdicts = {v.goal.text: v for v in goals.evaluate(merged)}
    fetch_goal = next(v for t, v in verdicts.items() if "download and verify" in t)
    assert fetch_goal.state == "met"
    assert results.merge(_doc([_pull_case()]), new) is new  # nothing else to keep


def test_merging_twice_keeps_each_suites_run() -> None:
    first = _doc([_start_case()])
    first.notes = ["a note of the first run"]
    second = _doc([_pull_case()])
    second.started_at = "2026-02-02T00:00:00Z"
    third = _doc([_pull_case()])
    third.started_at = "2026-03-03T00:00:00Z"
    merged = results.merge(results.merge(first, second), third)
    assert merged.origins == {
        "start": "the run of 2026-01-01T00:00:00Z",
        "pull": "the run of 2026-03-03T00:00:00Z",
    }
    assert merged.notes[0] == (
        "merged results: start from the run of 2026-01-01T00:00:00Z; "
        "pull from the run of 2026-03-03T00:00:00Z"
    )
    assert merged.notes.count("(from the run of 2026-01-01T00:00:00Z) a note of the first run") == 1
    second.notes = ["a note of the second run"]  # its only suite is replaced: its notes go
    again = results.merge(results.merge(first, second), third)
    assert not any("second run" in n for n in again.notes)
    assert results.Document.from_json(merged.to_json()).origins == merged.origins
