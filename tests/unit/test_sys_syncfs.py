"""syncfs(2) through runtime.sys: the image store's flush before a layer is committed."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

import runtime.sys as rsys


def test_syncfs_flushes_the_filesystem_of_a_directory(tmp_path: Path) -> None:
    (tmp_path / "layer-file").write_bytes(b"x" * 4096)
    rsys.syncfs(str(tmp_path))  # no error: the filesystem holding tmp_path was flushed


def test_syncfs_names_a_path_that_is_not_a_directory(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(OSError) as caught:
        rsys.syncfs(str(tmp_path / "file"))
    assert caught.value.errno == errno.ENOTDIR
    with pytest.raises(FileNotFoundError):
        rsys.syncfs(str(tmp_path / "missing"))
