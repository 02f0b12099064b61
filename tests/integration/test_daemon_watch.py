"""The loop with watched files: edits applied within a second, invalid edits
reported and changing nothing, ConfigMap-style symlink swaps, editors' rename saves."""

from __future__ import annotations

import os
import time
from pathlib import Path

from reconciler.daemon import api_types
from tests.conftest import Roots
from tests.support import daemon

STACK = """\
apiVersion: pyreconcile/v1
kind: Image
metadata: {{name: bb}}
spec:
  import: {{path: {tar}}}
---
apiVersion: pyreconcile/v1
kind: Container
metadata: {{name: web}}
spec:
  image: bb
  command: [sleep, "1000"]
  env: {{GREETING: {greeting}}}
  restart: "no"
  stopSignal: SIGKILL
"""


def save_by_rename(path: Path, text: str) -> None:
    """As editors do: a new file renamed over the old one."""
    tmp = path.with_name(f".{path.name}.swp")
    tmp.write_text(text)
    os.replace(tmp, path)


def env_of(pid: int) -> dict[bytes, bytes]:
    with open(f"/proc/{pid}/environ", "rb") as f:
        return dict(item.split(b"=", 1) for item in f.read().split(b"\0") if b"=" in item)


def test_an_edit_is_applied_within_a_second_and_an_invalid_one_changes_nothing(
    roots: Roots, busybox_tar: Path
) -> None:
    directory = roots.base / "watched"
    directory.mkdir()
    manifest = directory / "stack.yaml"
    manifest.write_text(STACK.format(tar=busybox_tar, greeting="one"))
    proc = daemon.start(
        roots, "--watch", str(directory), "--resync", "600s", log=roots.base / "d.log"
    )
    rt = daemon.remote(roots)
    api = daemon.api(roots)
    try:
        first = daemon.wait_for(
            lambda: (c := daemon.container(rt, "watched", "web")) and c.status == "running" and c,
            what="the first apply",
        )
        # a valid edit, saved by rename: the container is replaced within a second
        started = time.monotonic()
        save_by_rename(manifest, STACK.format(tar=busybox_tar, greeting="two"))
        second = daemon.wait_for(
            lambda: (
                (c := daemon.container(rt, "watched", "web"))
                and c.id != first.id
                and c.status == "running"
                and c
            ),
            timeout=5,
            what="the edit applied",
        )
        took = time.monotonic() - started
        assert took < 1.0, f"the edit took {took:.2f}s to be applied"
        assert env_of(second.pid)[b"GREETING"] == b"two"

        # an invalid edit: reported, and the last good revision stays in force
        since = daemon.last_seq(api)
        manifest.write_text(
            STACK.format(tar=busybox_tar, greeting="three").replace("command:", "comand:")
        )
        bad = daemon.wait_event(api, "source_invalid", since, timeout=5)
        assert "comand" in bad.message and "did you mean 'command'" in bad.message
        assert "stays in force" in bad.message
        time.sleep(0.5)  # give a wrong reaction the time to show
        still = daemon.container(rt, "watched", "web")
        assert still.id == second.id and still.pid == second.pid and still.status == "running"
        status = api.call("GET", "/v1/sources", returns=list[api_types.SourceStatus])
        assert status[0].last_error and "comand" in status[0].last_error

        # fixed: applied again
        save_by_rename(manifest, STACK.format(tar=busybox_tar, greeting="four"))
        third = daemon.wait_for(
            lambda: (
                (c := daemon.container(rt, "watched", "web"))
                and c.id != second.id
                and c.status == "running"
                and c
            ),
            timeout=5,
            what="the fixed edit applied",
        )
        assert env_of(third.pid)[b"GREETING"] == b"four"
    finally:
        rt.close()
        api.close()
        daemon.stop(proc)
        daemon.delete_in_process(roots, "watched")


def test_a_configmap_style_symlink_swap_is_applied(roots: Roots, busybox_tar: Path) -> None:
    """``stack.yaml -> ..data/stack.yaml``, ``..data -> ..v1``: an update writes ``..v2``
    and renames a new ``..data`` link over the old one (kubelet's atomic writer)."""
    top = roots.base / "cm"
    (top / "..v1").mkdir(parents=True)
    (top / "..v1" / "stack.yaml").write_text(STACK.format(tar=busybox_tar, greeting="v1"))
    os.symlink("..v1", top / "..data")
    os.symlink("..data/stack.yaml", top / "stack.yaml")
    proc = daemon.start(
        roots,
        "--watch",
        str(top / "stack.yaml"),
        "--stack",
        "cm",
        "--resync",
        "600s",
        log=roots.base / "d.log",
    )
    rt = daemon.remote(roots)
    try:
        first = daemon.wait_for(
            lambda: (c := daemon.container(rt, "cm", "web")) and c.status == "running" and c,
            what="the first apply",
        )
        (top / "..v2").mkdir()
        (top / "..v2" / "stack.yaml").write_text(STACK.format(tar=busybox_tar, greeting="v2"))
        os.symlink("..v2", top / "..data_tmp")
        os.replace(top / "..data_tmp", top / "..data")
        second = daemon.wait_for(
            lambda: (
                (c := daemon.container(rt, "cm", "web"))
                and c.id != first.id
                and c.status == "running"
                and c
            ),
            timeout=5,
            what="the swap applied",
        )
        assert env_of(second.pid)[b"GREETING"] == b"v2"
    finally:
        rt.close()
        daemon.stop(proc)
        daemon.delete_in_process(roots, "cm")
