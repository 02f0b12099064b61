"""A Compose file applied as it is: `pyreconcile apply -f compose.yaml`."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import Roots
from tests.integration.test_apply_e2e import ps, run, wait_until

COMPOSE = """\
services:
  app:
    image: localhost/compose/bb:1
    command: ["sh", "-c", "echo up with $$MODE; exec sleep 1000"]
    environment: {MODE: compose}
    network_mode: none
    stop_grace_period: 1s
    restart: always
    depends_on:
      setup: {condition: service_completed_successfully}
  setup:
    image: localhost/compose/bb:1
    command: ["true"]
    network_mode: none
"""


def test_compose_file_applies_and_converges(roots: Roots, busybox_tar: Path) -> None:
    run(roots, "image", "import", str(busybox_tar), "--tag", "localhost/compose/bb:1")
    directory = roots.base / "cmp"
    directory.mkdir()
    (directory / "compose.yaml").write_text(COMPOSE)
    try:
        run(roots, "apply", "-f", str(directory), "--wait", "--timeout", "30")
        states = ps(roots)
        assert states["app"]["status"] == "running"
        assert states["setup"]["status"] == "exited" and states["setup"]["exitCode"] == 0
        assert states["app"]["stack"] == "cmp"
        wait_until(lambda: "up with compose" in run(roots, "logs", "cmp/app").stdout)
        assert run(roots, "diff", "-f", str(directory)).returncode == 0
    finally:
        run(roots, "delete", "-f", str(directory))
        run(roots, "image", "rm", "localhost/compose/bb:1")
