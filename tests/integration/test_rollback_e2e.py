"""`pyreconcile rollback`: back to the previous spec, kept by self-heal, rolled
forward by the next apply."""

from __future__ import annotations

import os
from pathlib import Path

from tests.conftest import Roots
from tests.integration.test_apply_e2e import WEB, ps, run, write_stack


def _env(pid: int) -> dict[bytes, bytes]:
    with open(f"/proc/{pid}/environ", "rb") as f:
        return dict(item.split(b"=", 1) for item in f.read().split(b"\0") if b"=" in item)


def test_rollback_and_roll_forward(roots: Roots, busybox_tar: Path) -> None:
    stack = write_stack(roots.base / "rb", busybox_tar, WEB.format(greeting="v1"))
    try:
        refused = run(roots, "rollback", "rb/web", check=False)  # nothing yet
        assert refused.returncode == 1
        run(roots, "apply", "-f", str(stack))
        refused = run(roots, "rollback", "rb/web", check=False)
        assert refused.returncode == 1 and "no earlier applied spec" in refused.stderr

        write_stack(stack, busybox_tar, WEB.format(greeting="v2"))
        run(roots, "apply", "-f", str(stack))
        assert _env(ps(roots)["web"]["pid"])[b"GREETING"] == b"v2"

        run(roots, "rollback", "rb/web")
        web = ps(roots)["web"]
        assert web["status"] == "running"
        assert _env(web["pid"])[b"GREETING"] == b"v1"
        diff = run(roots, "diff", "-f", str(stack), check=False)
        assert diff.returncode == 2
        assert "rolled back by an operator" in diff.stdout

        run(roots, "rollback", "rb/web")  # undo the rollback
        assert _env(ps(roots)["web"]["pid"])[b"GREETING"] == b"v2"

        run(roots, "rollback", "rb/web")
        run(roots, "apply", "-f", str(stack))  # an explicit apply rolls forward
        assert _env(ps(roots)["web"]["pid"])[b"GREETING"] == b"v2"
        assert run(roots, "diff", "-f", str(stack)).returncode == 0
        assert os.path.exists(f"/proc/{ps(roots)['web']['pid']}")
    finally:
        run(roots, "delete", "-f", str(stack))
