"""apply → observe → diff is empty for every field the manifests have (no
phantom diff), and a change of a mounted file recreates exactly its users."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import Roots
from tests.integration.test_apply_e2e import ps, run, write_stack

KITCHEN_SINK = """\
---
apiVersion: pyreconcile/v1
kind: Volume
metadata: {{name: data, labels: {{keep: "yes"}}}}
---
apiVersion: pyreconcile/v1
kind: Network
metadata: {{name: quiet, labels: {{a: b}}}}
spec: {{driver: none}}
---
apiVersion: pyreconcile/v1
kind: Container
metadata: {{name: everything, labels: {{tier: front}}}}
spec:
  image: bb
  entrypoint: [sh, -c]
  command: ["exec sleep 1000"]
  env: {{A: "1", B: "two words", EMPTY: ""}}
  envFrom: [./app.env]
  workingDir: /tmp
  user: "1000:1000"
  hostname: every
  labels: {{team: core}}
  restart: unless-stopped
  mounts:
    - data:/data
    - {{type: bind, source: ./conf.txt, target: /etc/app.conf, readOnly: true}}
    - {{type: tmpfs, target: /scratch, size: 16Mi, mode: "1777"}}
  networks: [quiet]
  healthcheck: {{test: [CMD, "true"], interval: 1s, timeout: 1s, retries: 2, startPeriod: 0s}}
  resources: {{memory: 64Mi, cpus: 0.5, pids: 64}}
  stopSignal: SIGINT
  stopGracePeriod: 2s
  update: {{strategy: stop-first}}
---
apiVersion: pyreconcile/v1
kind: Container
metadata: {{name: plain}}
spec:
  image: bb
  command: [sleep, "1000"]
  stopGracePeriod: 1s
"""


def test_every_field_round_trips_and_file_changes_recreate_their_users(
    roots: Roots, busybox_tar: Path
) -> None:
    directory = roots.base / "rt"
    directory.mkdir()
    (directory / "app.env").write_text("FROM_FILE=1\n")
    (directory / "conf.txt").write_text("setting=1\n")
    stack = write_stack(directory, busybox_tar, KITCHEN_SINK.format())
    try:
        run(roots, "apply", "-f", str(stack))
        diff = run(roots, "diff", "-f", str(stack), check=False)
        assert diff.returncode == 0, diff.stdout
        before = ps(roots)

        (directory / "conf.txt").write_text("setting=2\n")
        doc = json.loads(run(roots, "diff", "-f", str(stack), "-o", "json", check=False).stdout)
        assert [(c["resource"], c["action"], c["category"]) for c in doc["changes"]] == [
            ("container/everything", "recreate", "external")
        ]
        assert doc["changes"][0]["reasons"][0]["path"].endswith("conf.txt")
        run(roots, "apply", "-f", str(stack))
        after = ps(roots)
        assert after["everything"]["id"] != before["everything"]["id"]
        assert after["plain"]["id"] == before["plain"]["id"]  # exactly its users
        config = run(roots, "exec", "rt/everything", "cat", "/etc/app.conf").stdout
        assert config == "setting=2\n"
        assert run(roots, "diff", "-f", str(stack)).returncode == 0
    finally:
        run(roots, "delete", "-f", str(stack), "--volumes")
