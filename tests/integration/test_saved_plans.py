"""Saved plans through the CLI: `diff --out`, then `apply PLAN`, refused when stale."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import Roots
from tests.integration.test_apply_e2e import WEB, ps, run, write_stack


def test_saved_plan_applies_exactly_and_refuses_when_stale(roots: Roots, busybox_tar: Path) -> None:
    stack = write_stack(roots.base / "sp", busybox_tar, WEB.format(greeting="one"))
    plan_file = roots.base / "plan.json"
    try:
        made = run(roots, "diff", "-f", str(stack), "--out", str(plan_file), check=False)
        assert made.returncode == 2
        saved = json.loads(plan_file.read_text())
        assert saved["kind"] == "pyreconcile-plan"
        assert [c["resource"] for c in saved["plan"]["changes"]] == ["image/bb", "container/web"]

        # the manifests change after the plan was made: refused, nothing done
        write_stack(stack, busybox_tar, WEB.format(greeting="two"))
        stale = run(roots, "apply", str(plan_file), check=False)
        assert stale.returncode == 1
        assert "the manifests" in stale.stderr and "changed" in stale.stderr
        assert ps(roots) == {}

        # a fresh plan applies
        run(roots, "diff", "-f", str(stack), "--out", str(plan_file), check=False)
        run(roots, "apply", str(plan_file))
        assert ps(roots)["web"]["status"] == "running"
        assert run(roots, "diff", "-f", str(stack)).returncode == 0

        # the host changes after the plan was made: refused
        write_stack(stack, busybox_tar, WEB.format(greeting="three"))
        run(roots, "diff", "-f", str(stack), "--out", str(plan_file), check=False)
        run(roots, "stop", "sp/web", "-t", "1")
        host_changed = run(roots, "apply", str(plan_file), check=False)
        assert host_changed.returncode == 1
        assert "the host changed" in host_changed.stderr
        assert ps(roots)["web"]["status"] == "exited"
    finally:
        run(roots, "delete", "-f", str(stack))


def test_fail_on_destructive_exit_code(roots: Roots, busybox_tar: Path) -> None:
    volume = "---\napiVersion: pyreconcile/v1\nkind: Volume\nmetadata: {name: data}\n"
    stack = write_stack(roots.base / "fd", busybox_tar, volume)
    try:
        run(roots, "apply", "-f", str(stack))
        write_stack(stack, busybox_tar, "")
        pending = run(roots, "diff", "-f", str(stack), "--prune-volumes", check=False)
        assert pending.returncode == 2
        assert "DESTROYS DATA" in pending.stdout
        refused = run(
            roots,
            "diff",
            "-f",
            str(stack),
            "--prune-volumes",
            "--fail-on-destructive",
            check=False,
        )
        assert refused.returncode == 3
        kept = run(roots, "apply", "-f", str(stack))
        assert "kept because volumes hold data" in kept.stdout
        run(roots, "apply", "-f", str(stack), "--prune-volumes")  # the flag is the consent
        assert run(roots, "diff", "-f", str(stack), "--prune-volumes").returncode == 0
    finally:
        run(roots, "delete", "-f", str(stack), "--volumes")


def test_apply_wants_manifests_or_a_plan_not_both_nor_neither(roots: Roots, tmp_path: Path) -> None:
    """Checked before anything else, in-process and through a daemon alike."""
    both = run(roots, "apply", str(tmp_path / "plan.json"), "-f", str(tmp_path), check=False)
    assert both.returncode == 1
    assert "give either manifests (-f) or a saved plan, not both" in both.stderr
    neither = run(roots, "apply", check=False)
    assert neither.returncode == 1
    assert "give manifests with -f" in neither.stderr
