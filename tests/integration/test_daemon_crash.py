"""SIGKILL of the daemon in the middle of applying 20 containers, then a restart:
the stack converges, nothing is duplicated or leaked, and the containers that were
running when it died never stopped."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from reconciler import labels as L
from tests.conftest import Roots
from tests.support import daemon

N = 20


def stack(tar: Path) -> str:
    docs = [
        "apiVersion: pyreconcile/v1\nkind: Image\nmetadata: {name: bb}\n"
        f"spec:\n  import: {{path: {tar}}}\n"
    ]
    for i in range(N):
        # a chain (each starts after the one before) makes the apply long enough to interrupt
        depends = f"\n  dependsOn: [{{name: c{i - 1:02d}, condition: started}}]" if i else ""
        docs.append(
            "apiVersion: pyreconcile/v1\nkind: Container\n"
            f"metadata: {{name: c{i:02d}}}\nspec:\n  image: bb\n  command: [sleep, '1000']\n"
            f"  stopSignal: SIGKILL{depends}\n"
        )
    return "---\n".join(docs)


def in_process_running(roots: Roots) -> dict[str, tuple[int, float]]:
    env = dict(roots.env(), PYRECONCILE_DAEMON="never")
    out = subprocess.run(
        [*daemon.PYRECONCILE, "ps", "--stack", "big", "-o", "json"],
        env=env, capture_output=True, text=True, check=True, timeout=60,
    ).stdout  # fmt: skip
    return {
        c["object"]: (c["pid"], c["startedAt"]) for c in json.loads(out) if c["status"] == "running"
    }


def test_sigkill_mid_apply_then_restart_converges_without_stopping_anything(
    roots: Roots, busybox_tar: Path
) -> None:
    directory = roots.base / "big"
    directory.mkdir()
    (directory / "stack.yaml").write_text(stack(busybox_tar))
    args = ("--watch", str(directory), "--resync", "600s")
    proc = daemon.start(roots, *args, log=roots.base / "d1.log")
    rt = daemon.remote(roots)
    try:

        def running() -> dict[str, tuple[int, float]]:
            return {
                c.labels[L.NAME]: (c.pid, c.started_at)
                for c in rt.list_containers()
                if c.labels.get(L.STACK) == "big" and c.status == "running"
            }

        try:
            seen = daemon.wait_for(
                lambda: (r := running()) and len(r) >= 3 and r,
                tick=0.005,
                what="the apply under way",
            )
        except AssertionError as exc:
            exc.add_note(daemon.diagnose(proc, roots.base / "d1.log"))
            raise
        daemon.kill(proc)
        before = in_process_running(roots)
        assert 3 <= len(before) < N, f"not interrupted mid-apply: {len(before)} running"
        assert all(before[name] == seen[name] for name in seen if name in before)

        rt.close()
        proc = daemon.start(roots, *args, log=roots.base / "d2.log")
        rt = daemon.remote(roots)
        try:
            after = daemon.wait_for(
                lambda: (r := running()) and len(r) == N and r, timeout=60, what="all running"
            )
        except AssertionError as exc:
            exc.add_note((roots.base / "d2.log").read_text()[-4000:])
            raise
        for name, (pid, started) in before.items():
            assert after[name] == (pid, started), f"{name} was restarted"
            assert Path(f"/proc/{pid}").exists()
        names = sorted(c.name for c in rt.list_containers())
        assert names == [f"big_c{i:02d}" for i in range(N)]  # nothing twice, no leftovers
        assert len(rt.list_images()) == 1
    finally:
        rt.close()
        daemon.stop(proc)
        daemon.delete_in_process(roots, "big")
