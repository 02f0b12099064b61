"""What a shim costs: import time under ``python -I -S`` and PSS with 10 shims running.

Measurements, with generous bounds so that a regression (asyncio, pydantic,
``subprocess`` slipping into the shim) fails, not a slow CI box. The numbers
are printed (``pytest -s``) and attached as properties (``--junitxml``).
Reference points (runtime-security-and-shims.md §3.4): conmon 0.6 MB PSS,
containerd-shim-runc-v2 4.4 MB, an idle CPython with asyncio ~20 MB.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.integration.test_shim_support import ShimEnv, shim_env

__all__ = ["shim_env"]

REPO = str(Path(__file__).resolve().parents[2])
SHIM_IMPORTS = (
    "from runtime.shim import main, supervisor, server, loop, runtimes, logwriter, events, cgroups"
)


def _pss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            if line.startswith("Pss:"):
                return int(line.split()[1])
    raise AssertionError(f"no Pss in /proc/{pid}/smaps_rollup")


def _import_ms(builtin: bool) -> float:
    """Self-reported import time of everything the shim loads (``-X importtime``)."""
    code = f"import sys; sys.path.insert(0, {REPO!r}); {SHIM_IMPORTS}; import runtime.sys"
    if builtin:
        code += "; from runtime.oci import lifecycle"
    best = float("inf")
    for _ in range(5):
        err = subprocess.run(
            [sys.executable, "-I", "-S", "-X", "importtime", "-c", code],
            capture_output=True,
            text=True,
            check=True,
        ).stderr
        total = 0
        for line in err.splitlines()[1:]:
            _, cumulative, name = line.split("|")
            if not name.startswith("  "):  # top level: its cumulative covers its children
                total += int(cumulative)
        best = min(best, total / 1000)
    return best


@pytest.mark.parametrize("forked", [False, True], ids=["exec", "forkserver"])
def test_shim_footprint(
    shim_env: ShimEnv, forked: bool, record_property: Callable[[str, object], None]
) -> None:
    run_root = str(shim_env.roots.run_root) if forked else None
    if forked:  # the server's start is paid once, by the first container: not measured
        shim_env.container(["sleep", "1000"], name="warm").spawn(fork_server=run_root)
    started = time.monotonic()
    infos = [
        shim_env.container(["sleep", "1000"], name=f"fp{i}").spawn(fork_server=run_root)
        for i in range(10)
    ]
    spawn_ms = (time.monotonic() - started) * 100  # per shim
    pss = [_pss_kib(info.pid) for info in infos]
    server = ""
    if forked:
        server_pid = _fork_server_pid(str(shim_env.roots.run_root))
        server = f"; fork server PSS {_pss_kib(server_pid)} KiB (shared by all)"
    import_ms = _import_ms(builtin=shim_env.runtime_binary is None)
    mode = ("runc" if shim_env.runtime_binary else "builtin") + (", forked" if forked else "")
    report = (
        f"shim footprint ({mode}): PSS median {statistics.median(pss)} KiB "
        f"(min {min(pss)}, max {max(pss)}) with 10 shims; imports {import_ms:.1f} ms; "
        f"spawn_shim {spawn_ms:.0f} ms per container{server}"
    )
    print(report)
    record_property("shim_footprint", report)
    assert statistics.median(pss) < (3 if forked else 8) * 1024
    assert import_ms < 60
    for c in shim_env.containers:
        c.client().stop(signal="KILL")


def _fork_server_pid(run_root: str) -> int:
    """The fork server listening in ``run_root`` (it writes its pid beside its socket)."""
    [name] = [
        p for p in os.listdir(run_root) if p.startswith("shim-forkserver-") and p.endswith(".pid")
    ]
    with open(os.path.join(run_root, name)) as f:
        return int(f.read())
