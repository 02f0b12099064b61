"""Self-heal from the shim's exit event (not the resync), and flap detection."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from tests.conftest import Roots
from tests.integration.test_daemon_watch import STACK
from tests.support import daemon


def test_a_killed_container_is_restarted_within_two_seconds_then_held_when_it_keeps_dying(
    roots: Roots, busybox_tar: Path
) -> None:
    directory = roots.base / "heal"
    directory.mkdir()
    (directory / "stack.yaml").write_text(STACK.format(tar=busybox_tar, greeting="x"))
    # the resync is an hour away: only the exit event can explain a quick repair
    proc = daemon.start(
        roots, "--watch", str(directory), "--resync", "3600s", log=roots.base / "d.log"
    )
    rt = daemon.remote(roots)
    api = daemon.api(roots)
    try:
        web = daemon.wait_for(
            lambda: (
                (c := daemon.container(rt, "heal", "web")) and c.status == "running" and c.pid and c
            ),
            what="web running",
        )
        exits_before = daemon.metric(api, 'pyreconcile_triggers_total{trigger="exit"}')
        since = daemon.last_seq(api)
        pid = web.pid
        for round_no in range(3):
            os.kill(pid, signal.SIGKILL)
            killed = time.monotonic()
            back = daemon.wait_for(
                lambda pid=pid: (
                    (c := daemon.container(rt, "heal", "web"))
                    and c.status == "running"
                    and c.pid
                    and c.pid != pid
                    and c
                ),
                timeout=5,
                what=f"restart {round_no + 1}",
            )
            took = time.monotonic() - killed
            assert took < 2.0, f"restart {round_no + 1} took {took:.2f}s"
            assert back.id == web.id  # started again, not recreated
            pid = back.pid
        assert daemon.metric(api, 'pyreconcile_triggers_total{trigger="exit"}') >= exits_before + 3
        flapping = daemon.wait_event(api, "container_flapping", since, timeout=5)
        assert flapping.object == "container/web" and flapping.result == "held"

        # the fourth death is not repaired at once: held back, and said once only
        os.kill(pid, signal.SIGKILL)
        daemon.wait_for(
            lambda: daemon.container(rt, "heal", "web").status == "exited", timeout=5, what="exit"
        )
        time.sleep(2.0)
        assert daemon.container(rt, "heal", "web").status == "exited"
        assert [e.type for e in daemon.events(api, since)].count("container_flapping") == 1
        status = api.call("GET", "/v1/sources", returns=list[daemon.api_types().SourceStatus])
        ready = next(c for c in status[0].conditions if c.type == "Ready")
        assert ready.status == "False" and ready.reason == "Flapping"
    finally:
        rt.close()
        api.close()
        daemon.stop(proc)
        daemon.delete_in_process(roots, "heal")
