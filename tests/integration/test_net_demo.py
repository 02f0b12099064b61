"""The demo stack (manifests/demo) as scripts/demo.sh applies it: web serves a
page from a volume on a bridge network, client fetches it by name, and the
page is published on the host's loopback. The host port is made ephemeral
here so the test never collides with a demo running on this host."""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.conftest import Roots
from tests.integration.test_apply_e2e import run, wait_until
from tests.integration.test_net_bridge import running
from tests.support import netlab

DEMO = Path(__file__).resolve().parent.parent.parent / "manifests" / "demo"


def test_the_demo_stack_serves_its_page_by_name_and_on_loopback(
    roots: Roots, busybox_tar: Path
) -> None:
    stack = roots.base / "demo"
    stack.mkdir()
    text = (DEMO / "stack.yaml").read_text()
    assert '"127.0.0.1:8080:80"' in text  # what the demo's instructions promise
    (stack / "stack.yaml").write_text(text.replace('"127.0.0.1:8080:80"', '"127.0.0.1::80"'))
    shutil.copy(busybox_tar, stack / "busybox-rootfs.tar")
    run(roots, "apply", "-f", str(stack))
    try:
        seen = running(roots, "web", "client")
        logs = wait_until(
            lambda: "web says: <h1>hello from web</h1>" in run(roots, "logs", "demo/client").stdout,
            what="client's log of the page",
        )
        assert logs
        port = seen["web"]["ports"][0]["hostPort"]
        page = wait_until(lambda: netlab.fetch_here(f"http://127.0.0.1:{port}/"), what="page")
        assert page.startswith("<h1>hello from web</h1>")
        assert run(roots, "diff", "-f", str(stack)).returncode == 0
    finally:
        run(roots, "delete", "-f", str(stack), "--volumes")
