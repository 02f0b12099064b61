"""In-root path resolution: symlinks and ``..`` never lead out of the rootfs,
and creating missing components happens inside it only."""

from __future__ import annotations

import errno
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from runtime.oci import paths


@pytest.fixture(autouse=True, params=["openat2", "walk"])
def resolver(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every case runs twice: with the kernel's openat2 asked first, and with
    the user-space walk alone (a kernel before 5.6)."""
    if request.param == "walk":

        def no_openat2(*_: object) -> int:
            raise OSError(errno.ENOSYS, "openat2")

        monkeypatch.setattr(paths.rsys, "openat2", no_openat2)
    return str(request.param)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    r = tmp_path / "rootfs"
    (r / "etc").mkdir(parents=True)
    (r / "etc" / "passwd").write_text("root:x:0:0::/root:/bin/sh\n")
    (r / "usr" / "lib").mkdir(parents=True)
    (r / "abs").symlink_to("/")
    (r / "up").symlink_to("../../..")
    (r / "etc-link").symlink_to("/etc")
    (r / "usr" / "rel").symlink_to("../etc")
    (r / "loop1").symlink_to("loop2")
    (r / "loop2").symlink_to("loop1")
    (r / "dangling").symlink_to("/nowhere/deeper")
    return r


@pytest.fixture
def root_fd(root: Path) -> Iterator[int]:
    fd = os.open(root, os.O_PATH | os.O_DIRECTORY)
    yield fd
    os.close(fd)


@pytest.mark.parametrize(
    ("inside", "expected"),
    [
        ("/etc/passwd", "etc/passwd"),
        ("/abs/etc/passwd", "etc/passwd"),
        ("/up/etc", "etc"),
        ("/up/up/../../etc", "etc"),
        ("/../../../../etc", "etc"),
        ("etc/../etc/./passwd", "etc/passwd"),
        ("/etc-link/passwd", "etc/passwd"),
        ("/usr/rel/passwd", "etc/passwd"),
        ("/usr/lib/../../abs/usr", "usr"),
        ("/", ""),
    ],
)
def test_symlinks_and_dotdot_stay_in_the_root(root: Path, inside: str, expected: str) -> None:
    assert paths.resolve(str(root), inside) == str(root / expected).rstrip("/")


def test_symlink_loops_and_forbidden_symlinks_are_eloop(root_fd: int) -> None:
    with pytest.raises(OSError) as info:
        paths.open_in_root(root_fd, "/loop1")
    assert info.value.errno == errno.ELOOP
    with pytest.raises(OSError) as info:
        paths.open_in_root(root_fd, "/etc-link/passwd", no_symlinks=True)
    assert info.value.errno == errno.ELOOP
    assert info.value.filename == "/etc-link"
    os.close(paths.open_in_root(root_fd, "/etc/passwd", no_symlinks=True))


def test_missing_and_not_a_directory(root_fd: int) -> None:
    with pytest.raises(FileNotFoundError) as info:
        paths.open_in_root(root_fd, "/etc/shadow")
    assert info.value.filename == "/etc/shadow"
    with pytest.raises(NotADirectoryError):
        paths.open_in_root(root_fd, "/etc/passwd/x")


def test_create_through_an_absolute_symlink_creates_inside_the_root(
    root: Path, root_fd: int
) -> None:
    name = f"pyrt-escape-{uuid.uuid4().hex[:8]}"
    (root / "evil").symlink_to(f"/tmp/{name}")
    fd = paths.open_in_root(root_fd, "/evil/sub/file", create="file")
    try:
        assert os.readlink(paths.fd_path(fd)) == str(root / "tmp" / name / "sub" / "file")
    finally:
        os.close(fd)
    assert (root / "tmp" / name / "sub").is_dir()
    assert (root / "tmp" / name / "sub" / "file").is_file()
    assert not os.path.lexists(f"/tmp/{name}")


def test_create_follows_a_dangling_symlink_inside_the_root(root: Path, root_fd: int) -> None:
    os.close(paths.open_in_root(root_fd, "/dangling", create="dir"))
    assert (root / "nowhere" / "deeper").is_dir()
    assert not os.path.exists("/nowhere")


def test_create_dir_makes_every_missing_component(root: Path, root_fd: int) -> None:
    fd = paths.open_in_root(root_fd, "/up/a/b/c", create="dir")
    os.close(fd)
    assert (root / "a" / "b" / "c").is_dir()
