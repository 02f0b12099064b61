"""``PYRECONCILE_TEST_DAEMON=1``: every integration test that uses ``roots`` gets a
daemon serving those roots, and the CLI must use it (``PYRECONCILE_DAEMON=always``),
so the same CLI tests check both modes (``scripts/test.sh`` runs a set of them so)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

DAEMON_MODE = os.environ.get("PYRECONCILE_TEST_DAEMON") == "1"


@pytest.fixture(autouse=True)
def _daemon_for_roots(request: pytest.FixtureRequest) -> Iterator[None]:
    own = request.node.module.__name__.rsplit(".", 1)[-1].startswith("test_daemon")
    if not DAEMON_MODE or own or "roots" not in request.fixturenames:
        yield
        return
    from tests.support import daemon

    roots = request.getfixturevalue("roots")
    log = roots.base / "daemon.log"
    proc = daemon.start(roots, log=log)
    mp = pytest.MonkeyPatch()
    mp.setenv("PYRECONCILE_DAEMON", "always")
    try:
        yield
    finally:
        mp.undo()
        daemon.stop(proc)
