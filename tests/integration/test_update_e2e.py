"""Updates that do not take the service down: start-first with a health gate,
and the automatic rollback when the new container does not turn healthy."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import Roots
from tests.integration.test_apply_e2e import ps, run, wait_until, write_stack

STACK = """\
---
apiVersion: pyreconcile/v1
kind: Network
metadata: {{name: front}}
---
apiVersion: pyreconcile/v1
kind: Container
metadata: {{name: web}}
spec:
  image: bb
  command:
    - sh
    - -c
    - mkdir -p /www && echo "$$VERSION" > /www/index.html && exec httpd -f -p {port} -h /www
  env: {{VERSION: "{version}"}}
  networks: [front]
  stopGracePeriod: 1s
  update: {{strategy: start-first}}
  healthcheck:
    test: "wget -qO- http://127.0.0.1:8080/"
    interval: 0.3s
    startInterval: 0.2s
    timeout: 1s
    retries: 2
---
apiVersion: pyreconcile/v1
kind: Container
metadata: {{name: client}}
spec:
  image: bb
  networks: [front]
  stopGracePeriod: 1s
  command:
    - sh
    - -c
    - >-
      while true; do
      if v=$$(wget -qO- http://web:8080/); then echo "OK $$v"; else echo FAIL; fi;
      sleep 0.05; done
"""


def _log(roots: Roots) -> list[str]:
    return run(roots, "logs", "up/client").stdout.splitlines()


def test_start_first_keeps_serving_and_a_bad_update_rolls_back(
    roots: Roots, busybox_tar: Path
) -> None:
    stack = write_stack(roots.base / "up", busybox_tar, STACK.format(version="v1", port=8080))
    try:
        run(roots, "apply", "-f", str(stack))
        wait_until(lambda: "OK v1" in _log(roots), what="the client reaches v1")
        before = len(_log(roots))
        first_web = ps(roots)["web"]["id"]

        write_stack(stack, busybox_tar, STACK.format(version="v2", port=8080))
        run(roots, "apply", "-f", str(stack))
        wait_until(lambda: "OK v2" in _log(roots)[before:], what="the client reaches v2")
        during = _log(roots)[before:]
        assert "FAIL" not in during, [
            (i, x) for i, x in enumerate(during) if x != "OK v1" and x != "OK v2"
        ] + [len(during)]
        assert ps(roots)["web"]["id"] != first_web
        assert "web.next" not in ps(roots)
        assert run(roots, "diff", "-f", str(stack)).returncode == 0

        # a bad update: the new container listens on the wrong port, never healthy
        serving = ps(roots)["web"]["id"]
        mark = len(_log(roots))
        write_stack(stack, busybox_tar, STACK.format(version="v3", port=9090))
        failed = run(roots, "apply", "-f", str(stack), check=False)
        assert failed.returncode == 1
        assert "rolled back" in failed.stderr and "the old one kept running" in failed.stderr
        assert ps(roots)["web"]["id"] == serving  # the old one never stopped
        assert "web.next" not in ps(roots)
        wait_until(lambda: len(_log(roots)) > mark + 5, what="more client requests")
        after = _log(roots)[mark:]
        assert all(line == "OK v2" for line in after), [
            (i, x) for i, x in enumerate(after) if x != "OK v2"
        ] + [len(after)]
    finally:
        run(roots, "delete", "-f", str(stack))


STOP_FIRST = """\
---
apiVersion: pyreconcile/v1
kind: Container
metadata: {{name: api}}
spec:
  image: bb
  command: [sh, -c, "{command}"]
  stopGracePeriod: 1s
  healthcheck: {{test: "test -f /tmp/ok", interval: 0.3s, startInterval: 0.2s, timeout: 1s,
                 retries: 2}}
"""


def test_stop_first_update_that_fails_its_check_is_rolled_back(
    roots: Roots, busybox_tar: Path
) -> None:
    good = "touch /tmp/ok; exec sleep 1000"
    stack = write_stack(roots.base / "sf", busybox_tar, STOP_FIRST.format(command=good))
    try:
        run(roots, "apply", "-f", str(stack), "--wait", "--timeout", "20")
        write_stack(stack, busybox_tar, STOP_FIRST.format(command="exec sleep 1000"))
        failed = run(roots, "apply", "-f", str(stack), check=False)
        assert failed.returncode == 1
        assert "rolled back to the previous spec" in failed.stderr
        api = ps(roots)["api"]
        assert api["status"] == "running"
        config = json.loads(run(roots, "inspect", "sf/api").stdout)[0]["Config"]
        assert "touch /tmp/ok" in " ".join(config["Cmd"])  # the previous command is back
        assert run(roots, "exec", "sf/api", "test", "-f", "/tmp/ok").returncode == 0
        diff = run(roots, "diff", "-f", str(stack), check=False)
        assert diff.returncode == 2 and "rolled back by an operator" in diff.stdout
    finally:
        run(roots, "delete", "-f", str(stack))
