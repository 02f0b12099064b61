"""``python -m bench``: run suites, show the peers, re-render a results file.

    python -m bench run [SUITE…] [--quick] [--install] [--runs N] [--out DIR]
                        [--without PEER] [--commit REV] [--merge]
    python -m bench peers [--install]
    python -m bench render [--json PATH] [--doc docs/benchmarks.md]

``run`` needs root (namespaces, mounts, cgroups, dockerd). It writes
``bench/results/latest.json`` and ``latest.md`` (or into ``--out``), prints the
table, and exits 1 if anything was left behind on the host (it is removed, and
listed in the results), 0 otherwise. A missing peer is not an error: its
column says "missing".
"""

from __future__ import annotations

import argparse
import datetime
import os
import shutil
import subprocess
import sys

from bench import context, peers, proc, report, results, source, workspace

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
DOC_BEGIN = "<!-- bench:results:begin -->"
DOC_END = "<!-- bench:results:end -->"


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _run_commit(args: argparse.Namespace) -> int:
    """Export ``--commit`` and run the harness of that tree on that tree (see bench.source)."""
    directory, sha = source.export(args.commit)
    _log(f"running commit {sha} exported to {directory}")
    argv = [sys.executable, "-m", "bench", "run", *args.suites, "--out", os.path.abspath(args.out)]
    argv += ["--quick"] if args.quick else []
    argv += ["--merge"] if args.merge else []
    argv += ["--runs", str(args.runs)] if args.runs is not None else []
    for name in args.without:
        argv += ["--without", name]
    path = os.pathsep.join([directory, *filter(None, [os.environ.get("PYTHONPATH")])])
    env = dict(os.environ, PYTHONPATH=path, **{source.ENV: sha})
    try:
        return subprocess.run(argv, cwd=directory, env=env, check=False).returncode
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def cmd_run(args: argparse.Namespace) -> int:
    from bench import host, suites

    unknown = [s for s in args.suites if s not in suites.SUITES]
    if unknown:
        _log(f"error: unknown suite {', '.join(unknown)}; choose from {', '.join(suites.SUITES)}")
        return 2
    if os.geteuid() != 0:
        _log("error: the benchmarks need root (namespaces, mounts, cgroups, dockerd); run as root")
        return 2
    if args.install:
        peers.install()
    if args.commit is not None:
        return _run_commit(args)
    found = peers.detect()
    for name in args.without:
        if name not in found:
            _log(f"error: unknown peer {name!r} for --without; choose from {', '.join(found)}")
            return 2
        found[name] = peers.Peer(name, None, missing="left out with --without")
    for name, peer in found.items():
        _log(
            f"peer {name}: {peer.path} {peer.version}"
            if peer.ok
            else f"peer {name}: {peer.missing}"
        )
    sizes = context.Sizes.quick() if args.quick else context.Sizes.full()
    if args.runs is not None:
        sizes = sizes.with_runs(args.runs)
    chosen = args.suites or list(suites.SUITES)
    doc = results.Document(
        started_at=_now(),
        finished_at="",
        quick=args.quick,
        suites=chosen,
        host={**host.describe(), "source": source.describe()},
        peers={name: p.to_json() for name, p in found.items()},
    )
    ws = workspace.Workspace()
    ctx = context.Context(ws, found, sizes, _log)
    if os.environ.pop("PYTHONDONTWRITEBYTECODE", None) is not None:
        # this sandbox sets it; an installed pyreconcile (like Debian's docker-compose)
        # has its bytecode cached, so every Python contestant may cache it here too
        ctx.notes.append(
            "PYTHONDONTWRITEBYTECODE was set in the environment and was unset for the run, "
            "so that Python contestants cache their bytecode (as an installed package does)"
        )
    try:
        for suite in chosen:
            _log(f"== {suite}")
            doc.cases += suites.SUITES[suite](ctx)
    finally:
        ctx.close()
        doc.leaks = ws.close()
        doc.notes = ctx.notes + [f"harness: {p}" for p in ctx.problems]
        if ws.removed_host_paths:
            doc.notes.append(
                "removed after the run (made by the peers outside their private roots): "
                + ", ".join(ws.removed_host_paths)
            )
        doc.finished_at = _now()
        os.makedirs(args.out, exist_ok=True)
        latest = os.path.join(args.out, "latest.json")
        if args.merge and os.path.exists(latest):
            doc = results.merge(results.load(latest), doc)
        results.save(doc, latest)
        text = report.render(doc)
        with open(os.path.join(args.out, "latest.md"), "w") as f:
            f.write(text)
    print(text)
    if doc.leaks:
        _log("error: the run left things behind (removed now): " + "; ".join(doc.leaks))
        return 1
    return 0


def cmd_peers(args: argparse.Namespace) -> int:
    if args.install:
        peers.install()
    for name, peer in peers.detect().items():
        print(f"{name:15} {peer.path} {peer.version}" if peer.ok else f"{name:15} {peer.missing}")
    return 0


def cmd_render(args: argparse.Namespace) -> int:
    doc = results.load(args.json)
    text = report.render(doc)
    if args.doc is None:
        print(text)
        return 0
    with open(args.doc, encoding="utf-8") as f:
        current = f.read()
    if DOC_BEGIN not in current or DOC_END not in current:
        _log(f"error: {args.doc} has no {DOC_BEGIN} … {DOC_END} block to replace")
        return 2
    head, rest = current.split(DOC_BEGIN, 1)
    _, tail = rest.split(DOC_END, 1)
    with open(args.doc, "w", encoding="utf-8") as f:
        f.write(f"{head}{DOC_BEGIN}\n{text}\n{DOC_END}{tail}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run suites (all by default)")
    run.add_argument(
        "suites", nargs="*", metavar="SUITE", help="start, apply, memory, diff, network, pull"
    )
    run.add_argument("--quick", action="store_true", help="fewer runs (under two minutes)")
    run.add_argument("--install", action="store_true", help="apt-get install missing peers")
    run.add_argument("--runs", type=int, help="measured runs (rounds) for every suite")
    run.add_argument("--out", default=RESULTS, help="directory for latest.json and latest.md")
    run.add_argument(
        "--merge",
        action="store_true",
        help="keep the other suites' results of --out's latest.json (replace only those run)",
    )
    run.add_argument(
        "--commit",
        metavar="REV",
        help="measure this commit (exported with git archive), not the working tree",
    )
    run.add_argument(
        "--without",
        action="append",
        default=[],
        metavar="PEER",
        help="treat a peer as missing (e.g. --without dockerd); repeatable",
    )
    run.set_defaults(func=cmd_run)
    p = sub.add_parser("peers", help="show the peers found (and install missing ones)")
    p.add_argument("--install", action="store_true")
    p.set_defaults(func=cmd_peers)
    r = sub.add_parser("render", help="render a results file as Markdown")
    r.add_argument("--json", default=os.path.join(RESULTS, "latest.json"))
    r.add_argument("--doc", help="replace the results block of this Markdown file")
    r.set_defaults(func=cmd_render)
    args = parser.parse_args(argv)
    try:
        code: int = args.func(args)
    except proc.CommandFailed as exc:
        _log(f"error: {exc}")
        return 1
    return code


if __name__ == "__main__":
    sys.exit(main())
