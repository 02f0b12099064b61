"""A container's networks change in place: connected and disconnected live."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import Roots
from tests.integration.test_apply_e2e import ps, run, write_stack

STACK = """\
---
apiVersion: pyreconcile/v1
kind: Network
metadata: {{name: front}}
---
apiVersion: pyreconcile/v1
kind: Network
metadata: {{name: back}}
---
apiVersion: pyreconcile/v1
kind: Container
metadata: {{name: web}}
spec: {{image: bb, command: [sleep, "1000"], stopGracePeriod: 1s, networks: {networks}}}
"""


def _interfaces(roots: Roots) -> list[str]:
    out = run(roots, "exec", "nu/web", "ls", "/sys/class/net").stdout.split()
    return sorted(i for i in out if i != "lo")


def test_networks_are_connected_and_disconnected_without_a_recreate(
    roots: Roots, busybox_tar: Path
) -> None:
    stack = write_stack(roots.base / "nu", busybox_tar, STACK.format(networks="[front]"))
    try:
        run(roots, "apply", "-f", str(stack))
        first = ps(roots)["web"]["id"]
        assert len(_interfaces(roots)) == 1

        write_stack(stack, busybox_tar, STACK.format(networks="[front, back]"))
        plan = run(roots, "diff", "-f", str(stack), check=False)
        assert plan.returncode == 2 and "~ container/web" in plan.stdout, plan.stdout
        run(roots, "apply", "-f", str(stack))
        assert ps(roots)["web"]["id"] == first
        assert len(_interfaces(roots)) == 2
        assert run(roots, "diff", "-f", str(stack)).returncode == 0

        write_stack(stack, busybox_tar, STACK.format(networks="[front]"))
        run(roots, "apply", "-f", str(stack))
        assert ps(roots)["web"]["id"] == first
        assert len(_interfaces(roots)) == 1
        assert run(roots, "diff", "-f", str(stack)).returncode == 0
    finally:
        run(roots, "delete", "-f", str(stack))
