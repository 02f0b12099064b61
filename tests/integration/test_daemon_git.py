"""A git source: a local bare repository, commits pushed to it are applied within
the poll interval; a bad commit leaves the last good one applied and says why."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

from reconciler.daemon import api_types
from tests.conftest import Roots
from tests.integration.test_daemon_watch import STACK
from tests.support import daemon

INTERVAL = 1.0


def git(cwd: Path, *args: str) -> str:
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(cwd),
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.invalid",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.invalid",
        "GIT_CONFIG_NOSYSTEM": "1",
    }
    done = subprocess.run(
        ["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


def commit(work: Path, text: str, message: str) -> str:
    (work / "deploy" / "stack.yaml").write_text(text)
    git(work, "add", "-A")
    git(work, "commit", "-q", "-m", message)
    git(work, "push", "-q", "origin", "main")
    return git(work, "rev-parse", "HEAD")


def source(api: Any) -> api_types.SourceStatus:
    return api.call("GET", "/v1/sources", returns=list[api_types.SourceStatus])[0]


def test_commits_are_applied_within_the_interval_and_a_bad_one_is_refused(
    roots: Roots, busybox_tar: Path
) -> None:
    bare = roots.base / "repo.git"
    work = roots.base / "work"
    git(roots.base, "init", "-q", "--bare", "-b", "main", str(bare))
    git(roots.base, "clone", "-q", str(bare), str(work))
    (work / "deploy").mkdir()
    (work / "README").write_text("not a manifest\n")
    first_commit = commit(work, STACK.format(tar=busybox_tar, greeting="one"), "one")
    proc = daemon.start(
        roots,
        "--git", f"file://{bare}", "--branch", "main", "--path", "deploy",
        "--interval", f"{INTERVAL}s", "--stack", "gitops", "--resync", "600s",
        log=roots.base / "d.log",
    )  # fmt: skip
    rt = daemon.remote(roots)
    api = daemon.api(roots)
    try:
        first = daemon.wait_for(
            lambda: (c := daemon.container(rt, "gitops", "web")) and c.status == "running" and c,
            what="the first commit applied",
        )
        daemon.wait_for(lambda: source(api).revision == first_commit, what="the commit in status")

        since = daemon.last_seq(api)
        pushed = time.monotonic()
        second_commit = commit(work, STACK.format(tar=busybox_tar, greeting="two"), "two")
        applied = daemon.wait_event(
            api, "revision_applied", since, timeout=10, where=lambda e: e.revision == second_commit
        )
        took = time.monotonic() - pushed
        assert took < INTERVAL + 1.5, f"applied {took:.2f}s after the push"
        second = daemon.container(rt, "gitops", "web")
        assert second.id != first.id and second.status == "running"
        assert applied.stack == "gitops"

        since = daemon.last_seq(api)
        bad = STACK.format(tar=busybox_tar, greeting="three").replace(
            "image: bb", "image: bb\n  netwroks: [x]"
        )
        bad_commit = commit(work, bad, "bad")
        refused = daemon.wait_event(api, "source_invalid", since, timeout=10)
        assert "netwroks" in refused.message and "stays in force" in refused.message
        status = source(api)
        assert status.revision == second_commit and status.last_error
        assert any(c.type == "SourceValid" and c.status == "False" for c in status.conditions)
        time.sleep(INTERVAL + 0.5)  # another poll: the bad commit is not tried again
        assert daemon.container(rt, "gitops", "web").id == second.id
        assert bad_commit != second_commit
        fixed_commit = commit(work, STACK.format(tar=busybox_tar, greeting="four"), "fix")
        daemon.wait_for(
            lambda: source(api).revision == fixed_commit, timeout=10, what="the fix applied"
        )
    finally:
        rt.close()
        api.close()
        daemon.stop(proc)
        daemon.delete_in_process(roots, "gitops")
