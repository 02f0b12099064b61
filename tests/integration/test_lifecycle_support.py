"""Helpers for the lifecycle tests: the real CLI, stacks, and looking at shims from outside.

Everything here goes through ``python -m reconciler.cli`` with the test's own
roots (``PYRECONCILE_ROOT``/``RUN_ROOT``/``CGROUP_PARENT``), or reads /proc and
the run root directly — the way an operator would look while pyreconcile is
down.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from runtime.shim import statedir
from tests.conftest import Roots
from tests.integration.test_apply_e2e import PYRECONCILE, run


def cli(
    roots: Roots, *args: str, check: bool = True, timeout: float = 90, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    """The CLI as the e2e tests run it, with a longer timeout (outages and restores)."""
    return run(roots, *args, check=check, timeout=timeout, input=input)


def spawn_cli(roots: Roots, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*PYRECONCILE, *args],
        env=roots.env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_until(predicate: Callable[[], Any], timeout: float = 30.0, what: str = "it") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


def ps(roots: Roots) -> list[dict[str, Any]]:
    return json.loads(cli(roots, "ps", "-o", "json").stdout)  # type: ignore[no-any-return]


def ps_by_object(roots: Roots) -> dict[str, dict[str, Any]]:
    items = ps(roots)
    names = [c["object"] or c["name"] for c in items]
    assert len(names) == len(set(names)), f"a container is listed twice: {names}"
    return {c["object"] or c["name"]: c for c in items}


def write_stack(directory: Path, busybox_tar: Path, containers: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "stack.yaml").write_text(
        "apiVersion: pyreconcile/v1\nkind: Image\nmetadata: {name: bb}\n"
        f"spec:\n  import: {{path: {busybox_tar}}}\n{containers}"
    )
    return directory


def container_doc(name: str, command: str, **spec: str) -> str:
    """One Container document running ``sh -c command`` (extra spec lines as given)."""
    extra = "".join(f"  {key}: {value}\n" for key, value in spec.items())
    return (
        f"---\napiVersion: pyreconcile/v1\nkind: Container\nmetadata: {{name: {name}}}\n"
        f"spec:\n  image: bb\n  command: [sh, -c, {json.dumps(command)}]\n"
        f"  stopGracePeriod: 1s\n{extra}"
    )


def bundle_of(roots: Roots, container_id: str) -> Path:
    return roots.run_root / "containers" / container_id


def run_record(roots: Roots, container_id: str) -> dict[str, object]:
    return statedir.read_json(str(bundle_of(roots, container_id) / statedir.RUN)) or {}


def shim_pids(roots: Roots) -> dict[str, list[int]]:
    """Live shims of these roots, by container id (from their command lines)."""
    found: dict[str, list[int]] = {}
    bundles = str(roots.run_root / "containers") + "/"
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
            with open(f"/proc/{entry}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError):
            continue
        if state == "Z" or b"--bundle" not in argv:
            continue
        bundle = argv[argv.index(b"--bundle") + 1].decode()
        if bundle.startswith(bundles):
            found.setdefault(bundle[len(bundles) :], []).append(int(entry))
    return found


def zombies_under(pids: list[int]) -> list[int]:
    """Zombie children of any of ``pids``."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        if fields[0] == "Z" and int(fields[1]) in pids:
            found.append(int(entry))
    return found


def in_container(pid: int, path: str) -> Path:
    """A path inside a running container, seen from the host."""
    return Path(f"/proc/{pid}/root") / path.lstrip("/")
