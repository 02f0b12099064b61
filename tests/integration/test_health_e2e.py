"""Health checks, run by the shim: status in ps/inspect, gates for dependsOn
healthy and apply --wait."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import Roots
from tests.integration.test_apply_e2e import ps, run, wait_until, write_stack

STACK = """\
---
apiVersion: pyreconcile/v1
kind: Container
metadata: {name: db}
spec:
  image: bb
  command: [sh, -c, "sleep 1; touch /tmp/ready; exec sleep 1000"]
  stopGracePeriod: 1s
  healthcheck:
    {test: "test -f /tmp/ready", interval: 0.3s, startInterval: 0.2s, timeout: 2s, retries: 2}
---
apiVersion: pyreconcile/v1
kind: Container
metadata: {name: app}
spec:
  image: bb
  command: [sleep, "1000"]
  stopGracePeriod: 1s
  dependsOn: [{name: db, condition: healthy}]
---
apiVersion: pyreconcile/v1
kind: Container
metadata: {name: sick}
spec:
  image: bb
  command: [sleep, "1000"]
  stopGracePeriod: 1s
  healthcheck: {test: [CMD, "false"], interval: 0.2s, startInterval: 0.2s, retries: 2}
"""


def test_health_gates_and_reports(roots: Roots, busybox_tar: Path) -> None:
    stack = write_stack(roots.base / "hc", busybox_tar, STACK)
    try:
        run(roots, "apply", "-f", str(stack))
        states = ps(roots)
        # app was started only once db was healthy
        assert states["app"]["status"] == "running"
        db, app = (json.loads(run(roots, "inspect", f"hc/{n}").stdout)[0] for n in ("db", "app"))
        assert db["State"]["Health"]["Status"] == "healthy"
        assert db["State"]["Health"]["Log"][-1]["ExitCode"] == 0
        assert app["State"]["StartedAt"] > db["State"]["StartedAt"]

        def sick_health() -> str | None:
            sick = json.loads(run(roots, "inspect", "hc/sick").stdout)[0]
            health: dict[str, str] = sick["State"].get("Health", {})
            return health.get("Status")

        wait_until(lambda: sick_health() == "unhealthy", what="sick turns unhealthy")
        assert "unhealthy" in run(roots, "ps").stdout
        waited = run(roots, "apply", "-f", str(stack), "--wait", "--timeout", "2", check=False)
        assert waited.returncode == 4
        assert "container/sick: wants healthy, is unhealthy" in waited.stderr
    finally:
        run(roots, "delete", "-f", str(stack))
