# ruff: noqa: F811 - pytest fixtures imported from tests.support are parameter names here
"""The image commands through the CLI, and pull-then-run by ``apply``: a stack
whose Image has ``ref: 127.0.0.1:PORT/test/busybox:1`` is pulled from a real
registry and its container runs; with ``pullPolicy: Always`` a moved tag shows
in ``diff`` (exit 2) and ``apply`` recreates the container on the new image."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tarfile
import time
from pathlib import Path
from typing import Any

from tests.conftest import Roots
from tests.support import registry as reg
from tests.support.registry_fixtures import (  # noqa: F401 - fixtures
    USERS,
    basic_registry,
    plain_registry,
    unique_repo,
)

PYRECONCILE = [sys.executable, "-m", "reconciler.cli"]


def run(
    roots: Roots, *args: str, check: bool = True, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = roots.env()
    env["DOCKER_CONFIG"] = str(roots.base / "docker")
    proc = subprocess.run(
        [*PYRECONCILE, *args], env=env, capture_output=True, text=True, timeout=120, input=input
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"pyreconcile {' '.join(args)} exited {proc.returncode}\n"
            f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
        )
    return proc


def push_busybox(roots: Roots, busybox_tar: Path, target: str, extra: bytes = b"") -> None:
    """Import busybox (plus a marker layer when ``extra``) and push it as ``target``."""
    source = busybox_tar
    if extra:
        source = roots.base / f"bb-{len(extra)}.tar"
        raw = reg.layer_tar({"marker": extra})
        with tarfile.open(busybox_tar) as base, tarfile.open(source, "w") as out:
            for member in base.getmembers():
                out.addfile(member, base.extractfile(member) if member.isreg() else None)
            with tarfile.open(fileobj=io.BytesIO(raw)) as marker:
                for member in marker.getmembers():
                    out.addfile(member, marker.extractfile(member))
    run(roots, "image", "import", str(source), "-t", "localhost/source:1")
    run(roots, "image", "push", "--progress", "quiet", "localhost/source:1", target)
    run(roots, "image", "rm", "localhost/source:1")


def wait_until(predicate: Any, what: str, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_image_commands(
    roots: Roots, plain_registry: reg.Registry, basic_registry: reg.Registry, busybox_tar: Path
) -> None:
    target = f"{plain_registry.host}/{unique_repo()}:1"
    push_busybox(roots, busybox_tar, target)
    assert run(roots, "image", "ls", "-q").stdout == ""

    pulled = run(roots, "image", "pull", "--progress", "plain", target)
    image_id, name, digest = pulled.stdout.split()
    assert name == target and image_id.startswith("sha256:") and digest.startswith("sha256:")
    assert "resolved to" in pulled.stderr
    assert "downloaded" in pulled.stderr and "/s" in pulled.stderr  # bytes and rate per layer

    listed = json.loads(run(roots, "image", "ls", "-o", "json").stdout)
    assert [(i["id"], i["digest"], i["references"]) for i in listed] == [
        (image_id, digest, [target])
    ]
    run(roots, "image", "tag", target, "localhost/copy:2")
    inspected = json.loads(run(roots, "image", "inspect", "localhost/copy:2").stdout)
    assert inspected["id"] == image_id

    archive = roots.base / "saved.tar"
    run(roots, "image", "save", "-o", str(archive), "localhost/copy:2")
    run(roots, "image", "rm", target, "localhost/copy:2")
    assert run(roots, "image", "ls", "-q").stdout == ""  # the last name went: so did the image
    loaded = run(roots, "image", "load", "-i", str(archive)).stdout
    assert f"loaded {image_id}  docker.io/library/localhost" not in loaded
    assert image_id in loaded and "localhost/copy:2" in loaded

    events = run(roots, "image", "pull", "--progress", "json", target).stdout.splitlines()
    docs = [json.loads(line) for line in events]
    assert docs[0]["action"] == "resolved" and docs[-1] == {**docs[-1], "action": "done"}
    assert docs[-1]["detail"] == image_id

    private = f"{basic_registry.host}/{unique_repo()}:1"
    denied = run(roots, "image", "push", "localhost/copy:2", private, check=False)
    assert denied.returncode == 1 and "pyreconcile login" in denied.stderr
    wrong = run(roots, "login", basic_registry.host, "-u", "alice", "--password-stdin",
                input="nope\n", check=False)  # fmt: skip
    assert wrong.returncode == 1
    run(roots, "login", basic_registry.host, "-u", "alice", "--password-stdin",
        input=USERS["alice"] + "\n")  # fmt: skip
    config = json.loads((roots.base / "docker/config.json").read_text())
    assert basic_registry.host in config["auths"]
    run(roots, "image", "push", "--progress", "plain", "localhost/copy:2", private)
    assert "logged out" in run(roots, "logout", basic_registry.host).stdout
    run(roots, "image", "rm", target, "localhost/copy:2")
    assert run(roots, "image", "prune", "-a").returncode == 0


STACK = """\
apiVersion: pyreconcile/v1
kind: Image
metadata: {{name: bb}}
spec:
  ref: {ref}
  pullPolicy: {policy}
---
apiVersion: pyreconcile/v1
kind: Container
metadata: {{name: app}}
spec:
  image: bb
  command: [sh, -c, "cat /marker 2>/dev/null; echo; echo up; exec sleep 1000"]
"""


def test_apply_pulls_then_runs_and_a_moved_tag_is_image_drift(
    roots: Roots, plain_registry: reg.Registry, busybox_tar: Path
) -> None:
    ref = f"{plain_registry.host}/test/busybox-{unique_repo('x').split('/')[1]}:1"
    push_busybox(roots, busybox_tar, ref, extra=b"first")
    stack_dir = roots.base / "stack"
    stack_dir.mkdir()
    (stack_dir / "stack.yaml").write_text(STACK.format(ref=ref, policy="Always"))
    try:
        run(roots, "apply", "-f", str(stack_dir))
        first = wait_until(
            lambda: [c for c in json.loads(run(roots, "ps", "-o", "json").stdout)
                     if c["status"] == "running"],
            "the container running",
        )  # fmt: skip
        logs = wait_until(lambda: "up" in run(roots, "logs", "app").stdout and
                          run(roots, "logs", "app").stdout, "its output")  # fmt: skip
        assert logs.startswith("first")
        assert run(roots, "diff", "-f", str(stack_dir), check=False).returncode == 0

        push_busybox(roots, busybox_tar, ref, extra=b"second")  # the tag moves
        drift = run(roots, "diff", "-f", str(stack_dir), check=False)
        assert drift.returncode == 2, drift.stdout + drift.stderr
        assert "image/bb" in drift.stdout and "now names image" in drift.stdout
        document = json.loads(run(roots, "diff", "-f", str(stack_dir), "-o", "json",
                                  check=False).stdout)  # fmt: skip
        assert [(c["resource"], c["category"]) for c in document["changes"]] == [
            ("image/bb", "image")
        ]

        run(roots, "apply", "-f", str(stack_dir))
        (second,) = [c for c in json.loads(run(roots, "ps", "-o", "json").stdout)]
        assert second["imageId"] != first[0]["imageId"]
        wait_until(lambda: run(roots, "logs", "app").stdout.startswith("second"), "new output")
        assert run(roots, "diff", "-f", str(stack_dir), check=False).returncode == 0
    finally:
        run(roots, "delete", "--stack", "stack", check=False)
