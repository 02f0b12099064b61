"""Which pyreconcile code a run measures, and running a committed snapshot of it.

The checkout is shared with engineers who edit it while a run goes on; a run
against the working tree may then measure half-edited code (or fail in it).
``export`` writes a commit's tree (``git archive``) to a temporary directory;
``python -m bench run --commit REV`` re-executes the harness from there with
``PYTHONPATH`` pointing at it, so the CLI, the shims (whose bootstrap puts the
``runtime`` package's parent on ``sys.path``) and the harness itself all run
that commit, with the interpreter and packages of this checkout's ``.venv``.
The results record the commit, or the working tree and its uncommitted files.
"""

from __future__ import annotations

import os
import subprocess
import tempfile

from bench import proc

__all__ = ["ENV", "REPO", "describe", "export"]

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = "PYRECONCILE_BENCH_COMMIT"
CODE = ("runtime", "reconciler", "schemas", "scripts", "bench")


def export(rev: str) -> tuple[str, str]:
    """(directory, commit sha) of ``rev``'s tree, exported below /tmp."""
    sha = proc.run(["git", "-C", REPO, "rev-parse", "--verify", f"{rev}^{{commit}}"]).stdout.strip()
    directory = tempfile.mkdtemp(prefix="pyreconcile-bench-src-")
    archive = subprocess.Popen(
        ["git", "-C", REPO, "archive", sha], stdout=subprocess.PIPE, stdin=subprocess.DEVNULL
    )
    try:
        proc.run(["tar", "-x", "-C", directory], stdin=archive.stdout)
    finally:
        if archive.stdout is not None:
            archive.stdout.close()
        archive.wait()
    if archive.returncode != 0:
        raise proc.CommandFailed(f"git archive {sha} exited {archive.returncode}")
    return directory, sha


def describe() -> dict[str, object]:
    """The commit under test (from ``--commit``), or this tree's HEAD and its edits."""
    commit = os.environ.get(ENV)
    if commit:
        return {"commit": commit, "tree": "exported commit (bench run --commit)"}
    head = proc.run(["git", "-C", REPO, "rev-parse", "HEAD"], check=False).stdout.strip()
    status = proc.run(
        ["git", "-C", REPO, "status", "--porcelain", "--", *CODE], check=False
    ).stdout.splitlines()
    edited = sorted(line[3:] for line in status if line[:2].strip() and not line.startswith("??"))
    return {"commit": head, "tree": "working tree", "uncommitted": edited}
