"""Paths inside a volume (subPath) and removal that never crosses a mount."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from runtime import errors
from runtime.engine import volume_fs


def _resolved(fd: int) -> str:
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    finally:
        os.close(fd)


def test_sub_paths_resolve_inside_and_are_made(tmp_path: Path) -> None:
    vol = tmp_path / "vol"
    (vol / "site" / "www").mkdir(parents=True)
    (vol / "site" / "conf").write_text("x")
    os.symlink("site/www", vol / "alias")
    os.symlink("../site", vol / "site" / "self")
    assert _resolved(volume_fs.open_inside(str(vol), "alias", what="t")) == str(vol / "site/www")
    assert _resolved(volume_fs.open_inside(str(vol), "site/self/www", what="t")) == str(
        vol / "site/www"
    )
    assert _resolved(volume_fs.open_inside(str(vol), "site/conf", what="t")) == str(
        vol / "site/conf"
    )
    made = volume_fs.open_inside(str(vol), "new/deeper", what="t")
    assert _resolved(made) == str(vol / "new/deeper") and (vol / "new/deeper").is_dir()
    with pytest.raises(errors.NotFound):
        volume_fs.open_inside(str(vol), "absent", what="t", create=False)
    with pytest.raises(errors.InvalidSpec, match="not a directory"):
        volume_fs.open_inside(str(vol), "site/conf/x", what="t")


@pytest.mark.parametrize(
    ("links", "sub"),
    [
        ({"up": "../outside"}, "up"),
        ({"abs": "/etc"}, "abs"),
        ({"a": "b", "b": "../../.."}, "a/x"),
        ({"loop": "loop"}, "loop"),
        ({}, "../outside"),
    ],
)
def test_sub_paths_that_escape_are_refused(tmp_path: Path, links: dict[str, str], sub: str) -> None:
    vol = tmp_path / "vol"
    vol.mkdir()
    (tmp_path / "outside").mkdir()
    for name, target in links.items():
        os.symlink(target, vol / name)
    with pytest.raises(errors.InvalidSpec, match="escapes"):
        volume_fs.open_inside(str(vol), sub, what="t")
    assert os.listdir(tmp_path / "outside") == []


@pytest.mark.privileged
def test_remove_tree_refuses_while_something_is_mounted_below(tmp_path: Path) -> None:
    top = tmp_path / "vol"
    inner = top / "_data"
    inner.mkdir(parents=True)
    keep = tmp_path / "host"
    keep.mkdir()
    (keep / "precious").write_text("data")
    subprocess.run(["mount", "--bind", str(keep), str(inner)], check=True)
    try:
        with pytest.raises(errors.FailedPrecondition, match="still mounted"):
            volume_fs.remove_tree(str(top))
        assert (keep / "precious").read_text() == "data"
    finally:
        subprocess.run(["umount", str(inner)], check=True)
    volume_fs.remove_tree(str(top))
    assert not top.exists() and (keep / "precious").exists()
    volume_fs.remove_tree(str(top))  # absent: nothing to do
