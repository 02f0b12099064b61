"""The results document (``bench/results/latest.json``): what was measured, where, how.

Plain dataclasses with an explicit JSON form (camelCase keys, a schema
version), so that later issues can read old results and the Markdown report is
rendered from the document alone. Samples are stored raw (seconds or bytes) next
to their summary: a reader can recompute anything.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any, Literal

from bench import stats

__all__ = [
    "SCHEMA_VERSION",
    "CaseResult",
    "ContestantResult",
    "Document",
    "Status",
    "Unit",
    "load",
    "merge",
    "save",
]

SCHEMA_VERSION = 1

Unit = Literal["s", "bytes"]
Status = Literal["ok", "missing", "failed", "skipped"]


@dataclasses.dataclass
class ContestantResult:
    name: str
    ours: bool
    status: Status = "ok"
    samples: list[float] = dataclasses.field(default_factory=list)
    reason: str = ""  # why missing, failed or skipped
    version: str = ""

    @property
    def summary(self) -> stats.Summary | None:
        if self.status != "ok" or not self.samples:
            return None
        return stats.summarize(self.samples)


@dataclasses.dataclass
class CaseResult:
    suite: str
    case: str
    unit: Unit
    contestants: list[ContestantResult]
    note: str = ""

    def reference(self) -> ContestantResult | None:
        """The pyreconcile contestant that ratios are taken from: the first of ours."""
        for c in self.contestants:
            if c.ours:
                return c
        return None

    def get(self, name: str) -> ContestantResult | None:
        for c in self.contestants:
            if c.name == name:
                return c
        return None


@dataclasses.dataclass
class Document:
    started_at: str
    finished_at: str
    quick: bool
    suites: list[str]
    host: dict[str, Any]
    peers: dict[str, dict[str, str]]
    cases: list[CaseResult] = dataclasses.field(default_factory=list)
    leaks: list[str] = dataclasses.field(default_factory=list)
    notes: list[str] = dataclasses.field(default_factory=list)
    # suite -> the run its cases come from, for documents made by ``merge``
    origins: dict[str, str] = dataclasses.field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        cases = []
        for case in self.cases:
            contestants = []
            for c in case.contestants:
                entry: dict[str, Any] = {
                    "name": c.name,
                    "ours": c.ours,
                    "status": c.status,
                    "reason": c.reason,
                    "version": c.version,
                    "samples": c.samples,
                }
                summary = c.summary
                if summary is not None:
                    entry["summary"] = dataclasses.asdict(summary)
                contestants.append(entry)
            cases.append(
                {
                    "suite": case.suite,
                    "case": case.case,
                    "unit": case.unit,
                    "note": case.note,
                    "contestants": contestants,
                }
            )
        return {
            "schemaVersion": SCHEMA_VERSION,
            "startedAt": self.started_at,
            "finishedAt": self.finished_at,
            "quick": self.quick,
            "suites": self.suites,
            "host": self.host,
            "peers": self.peers,
            "cases": cases,
            "leaks": self.leaks,
            "notes": self.notes,
            **({"origins": self.origins} if self.origins else {}),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Document:
        version = data.get("schemaVersion")
        if version != SCHEMA_VERSION:
            raise ValueError(
                f"results document has schemaVersion {version!r}, this harness reads "
                f"{SCHEMA_VERSION}: re-run `python -m bench run`"
            )
        cases = [
            CaseResult(
                suite=c["suite"],
                case=c["case"],
                unit=c["unit"],
                note=c.get("note", ""),
                contestants=[
                    ContestantResult(
                        name=x["name"],
                        ours=x["ours"],
                        status=x["status"],
                        samples=[float(v) for v in x["samples"]],
                        reason=x.get("reason", ""),
                        version=x.get("version", ""),
                    )
                    for x in c["contestants"]
                ],
            )
            for c in data["cases"]
        ]
        return cls(
            started_at=data["startedAt"],
            finished_at=data["finishedAt"],
            quick=data["quick"],
            suites=list(data["suites"]),
            host=dict(data["host"]),
            peers=dict(data["peers"]),
            cases=cases,
            leaks=list(data.get("leaks", [])),
            notes=list(data.get("notes", [])),
            origins=dict(data.get("origins", {})),
        )


def save(doc: Document, path: str) -> None:
    """Write atomically (temp file, then rename): a crashed run never leaves half a file."""
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(doc.to_json(), f, indent=1)
        f.write("\n")
    os.replace(tmp, path)


def load(path: str) -> Document:
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: not a results document (expected a JSON object)")
    return Document.from_json(data)


def _provenance(doc: Document) -> str:
    src = doc.host.get("source")
    code = ""
    if isinstance(src, dict):
        code = f", commit {str(src.get('commit', '?'))[:12]} ({src.get('tree', '?')})"
    return f"the run of {doc.started_at}{' (--quick)' if doc.quick else ''}{code}"


def merge(previous: Document, current: Document) -> Document:
    """``current`` with the cases of ``previous``'s other suites kept (``run --merge``).

    The suites ``current`` ran replace theirs in ``previous``; every other
    suite keeps its cases and the run it came from (``origins``, also said in
    the first note). ``previous``'s own notes are kept, marked with its run.
    Host, peers, times and leaks are ``current``'s.
    """
    kept = [s for s in previous.suites if s not in current.suites]
    if not kept:
        return current
    earlier = _provenance(previous)
    origins = {s: previous.origins.get(s) or earlier for s in kept}
    origins.update({s: _provenance(current) for s in current.suites})
    by_origin: dict[str, list[str]] = {}
    for suite, origin in origins.items():
        by_origin.setdefault(origin, []).append(suite)
    summary = "; ".join(f"{', '.join(names)} from {origin}" for origin, names in by_origin.items())
    live = set(origins.values())
    old_notes = []
    for note in previous.notes:
        if _MERGED in note:
            continue
        origin = next(
            (o for o in {earlier, *previous.origins.values()} if note.startswith(f"(from {o}) ")),
            earlier,
        )
        if origin in live:  # a note of a run whose suites were all replaced goes with them
            old_notes.append(note if note.startswith("(from ") else f"(from {earlier}) {note}")
    return dataclasses.replace(
        current,
        suites=kept + list(current.suites),
        cases=[c for c in previous.cases if c.suite in kept] + list(current.cases),
        origins=origins,
        notes=[
            f"{_MERGED} {summary}",
            *current.notes,
            *old_notes,
        ],
    )


_MERGED = "merged results:"
