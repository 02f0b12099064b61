"""`apply --wait`: one-shot init containers that exit 0 count as done, 1 fails."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import Roots
from tests.integration.test_apply_e2e import run, write_stack

STACK = """\
---
apiVersion: pyreconcile/v1
kind: Container
metadata: {{name: init}}
spec: {{image: bb, command: [sh, -c, "sleep 0.3; exit {code}"]}}
---
apiVersion: pyreconcile/v1
kind: Container
metadata: {{name: app}}
spec:
  image: bb
  command: [sleep, "1000"]
  stopGracePeriod: 1s
  restart: always
  dependsOn: [{{name: init, condition: completed}}]
"""


def test_wait_succeeds_when_the_init_container_completes(roots: Roots, busybox_tar: Path) -> None:
    stack = write_stack(roots.base / "w0", busybox_tar, STACK.format(code=0))
    try:
        result = run(roots, "apply", "-f", str(stack), "--wait", "--timeout", "30")
        assert "stack w0: up" in result.stdout
    finally:
        run(roots, "delete", "-f", str(stack))


@pytest.mark.parametrize("code", [1])
def test_wait_fails_when_the_init_container_fails(
    roots: Roots, busybox_tar: Path, code: int
) -> None:
    stack = write_stack(roots.base / "w1", busybox_tar, STACK.format(code=code))
    try:
        result = run(roots, "apply", "-f", str(stack), "--wait", "--timeout", "30", check=False)
        assert result.returncode == 1
        assert "init" in result.stderr and "exited with code 1" in result.stderr
    finally:
        run(roots, "delete", "-f", str(stack))
