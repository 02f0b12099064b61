"""The volume commands' own behaviour: names, inspect, prune's question, rm's errors."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import Roots
from tests.integration.test_volume_support import (
    cli,
    container_doc,
    image_doc,
    text,
    volume_doc,
    volumes,
    write_image,
    write_stack,
)


def test_volume_commands(roots: Roots, busybox_tar: Path, tmp_path: Path) -> None:
    image = write_image(tmp_path / "img", busybox_tar)
    stack = write_stack(
        tmp_path / "vc",
        image_doc(image),
        volume_doc("data"),
        volume_doc("spare"),
        container_doc("app", "exec sleep 1000", mounts=["data:/data"]),
    )
    try:
        cli(roots, "apply", "-f", str(stack))
        cli(roots, "volume", "create", "loose", "--opt", "type=tmpfs", "--opt", "o=size=1m")
        # inspect by runtime name, STACK/NAME and manifest name
        for name in ("vc_data", "vc/data", "data"):
            [found] = json.loads(cli(roots, "volume", "inspect", name).stdout)
            assert found["name"] == "vc_data" and found["users"] == ["vc_app"]
            assert found["kind"] == "directory" and found["healthy"]
        [loose] = json.loads(cli(roots, "volume", "inspect", "loose").stdout)
        assert loose["kind"] == "tmpfs" and loose["options"] == {"type": "tmpfs", "o": "size=1m"}
        assert cli(roots, "volume", "ls", "-q").stdout.decode().split() == sorted(volumes(roots))
        # prune asks first; without an answer nothing goes
        asked = cli(roots, "volume", "prune", "--all", check=False, input=b"")
        assert asked.returncode == 1 and "Continue?" in text(asked)
        assert "loose" in volumes(roots)
        # rm goes on after an error and says which one failed
        out = cli(roots, "volume", "rm", "vc/data", "loose", "nope", check=False)
        assert out.returncode == 1
        assert "in use by container vc_app" in text(out) and "no volume named 'nope'" in text(out)
        assert "loose" not in volumes(roots)
        removed = cli(roots, "volume", "prune", "--all", "-f").stdout.decode().split()
        assert removed == ["vc_spare"]  # unused; vc_data and the anonymous /cache are in use
        missing = cli(roots, "volume", "restore", "other/data", check=False, input=b"")
        assert missing.returncode == 1 and "apply the stack first" in text(missing)
        cli(roots, "volume", "backup", "vc_data", "-o", str(tmp_path / "b.tar"))
        assert (tmp_path / "b.tar").stat().st_size > 0
    finally:
        cli(roots, "delete", "--stack", "vc", "--volumes", check=False)
        cli(roots, "volume", "rm", "loose", check=False)
    assert volumes(roots) == {}
