"""The unpacker's pipelining: small files written by a worker thread, directories
resolved once, and a layer decompressed ahead (``tarstream.Prefetch``) — the
tree, the diff_id and every refusal must be exactly those of the plain path.

Each case runs with the worker (the default); with queued files held until the
unpacker waits for them (so a missing barrier shows, whatever the timing);
without the worker (``WORKERS = 0``); and with back-pressure forced (one
pending file, a directory cache of one). Needs root (chown, trusted.* xattrs).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import stat
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from runtime import errors
from runtime.engine import tarstream, unpack, unpack_writer

pytestmark = pytest.mark.privileged

MTIME = 1_600_000_000


def entry(name: str, kind: str = "file", data: bytes = b"", **kw: Any) -> tarfile.TarInfo:
    types = {"file": tarfile.REGTYPE, "dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE,
             "hardlink": tarfile.LNKTYPE}  # fmt: skip
    ti = tarfile.TarInfo(name)
    ti.type = types[kind]
    ti.mode = kw.get("mode", 0o755 if kind == "dir" else 0o644)
    ti.mtime = kw.get("mtime", MTIME)
    ti.uid, ti.gid = kw.get("uid", 0), kw.get("gid", 0)
    ti.linkname = kw.get("link", "")
    if "pax" in kw:
        ti.pax_headers = kw["pax"]
    ti.size = len(data)
    return ti


def make_tar(*entries: tuple[tarfile.TarInfo, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for ti, data in entries:
            tar.addfile(ti, io.BytesIO(data) if ti.size else None)
    return buf.getvalue()


def f(name: str, data: bytes = b"", **kw: Any) -> tuple[tarfile.TarInfo, bytes]:
    return entry(name, "file", data, **kw), data


def d(name: str, **kw: Any) -> tuple[tarfile.TarInfo, bytes]:
    return entry(name, "dir", **kw), b""


def _hold_jobs(monkeypatch: pytest.MonkeyPatch) -> None:
    """Queued files are written only while the unpacker waits for them (a barrier,
    back-pressure, the end): the widest window a missing barrier could fall into."""
    go = threading.Event()
    job, reap, submit = (
        unpack_writer._job,
        unpack_writer.Writer._reap_one,
        unpack_writer.Writer.submit,
    )

    def held_job(*args: Any) -> None:
        assert go.wait(30), "a queued file was never waited for"
        job(*args)

    def reaping(self: unpack_writer.Writer) -> None:
        go.set()
        reap(self)

    def submitting(self: unpack_writer.Writer, *args: Any) -> None:
        submit(self, *args)
        go.clear()

    monkeypatch.setattr(unpack_writer, "_job", held_job)
    monkeypatch.setattr(unpack_writer.Writer, "_reap_one", reaping)
    monkeypatch.setattr(unpack_writer.Writer, "submit", submitting)


@pytest.fixture(params=["worker", "held", "no-worker", "back-pressure"])
def mode(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    if request.param == "held":
        _hold_jobs(monkeypatch)
    if request.param == "no-worker":
        monkeypatch.setattr(unpack_writer, "WORKERS", 0)
    if request.param == "back-pressure":
        monkeypatch.setattr(unpack_writer, "MAX_PENDING_FILES", 1)
        monkeypatch.setattr(unpack_writer, "MAX_PENDING_BYTES", 1)
        monkeypatch.setattr(unpack, "DIR_CACHE_SIZE", 1)
    before = threading.active_count()
    yield request.param
    assert threading.active_count() == before, "a worker thread outlived its unpack"


def run(root: Path, raw: bytes) -> tarstream.Summary:
    root.mkdir(exist_ok=True)
    return unpack.unpack(io.BytesIO(raw), str(root))


def test_ordering_of_queued_files(tmp_path: Path, mode: str) -> None:
    raw = make_tar(
        d("a"), f("a/x", b"first", mode=0o4755, uid=12, gid=34),
        (entry("a/link", "hardlink", link="a/x"), b""),  # a hardlink to a queued file
        f("a/x", b"second"),  # the same name again: replaces it (the link keeps "first")
        d("b"), f("b/1", b"1"), f("b/2", b"2"),
        f("b", b"now a file"),  # a directory with queued children replaced by a file
        d("c"), f("c/y", b"y"), f("c/.wh.y"),  # a whiteout of a file this layer made
        f("big", b"z" * (unpack_writer.ASYNC_MAX_SIZE + 1)),  # streamed, not queued
        f("e", b"e", pax={"SCHILY.xattr.trusted.pyreconcile": "v"}),
        f("dup", b"1"), f("dup", b"2"),  # the same name twice in a row
    )  # fmt: skip
    root = tmp_path / "r"
    result = run(root, raw)
    assert result.diff_id == "sha256:" + hashlib.sha256(raw).hexdigest()
    assert (root / "a/x").read_bytes() == b"second"
    assert (root / "a/link").read_bytes() == b"first"
    st = os.lstat(root / "a/link")
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, st.st_mtime) == (0o4755, 12, 34, MTIME)
    assert (root / "b").read_bytes() == b"now a file"
    assert (root / "c/y").read_bytes() == b"y"
    assert (root / "big").stat().st_size == unpack_writer.ASYNC_MAX_SIZE + 1
    assert os.getxattr(root / "e", "trusted.pyreconcile") == b"v"
    assert (root / "dup").read_bytes() == b"2"
    assert os.lstat(root / "c").st_mtime == MTIME  # set after its files were written


def test_queued_file_used_as_a_directory_is_refused(tmp_path: Path, mode: str) -> None:
    with pytest.raises(errors.InvalidSpec, match="is not a directory"):
        run(tmp_path / "r", make_tar(f("a", b"file"), f("a/b", b"under a file")))


def test_many_files_in_many_directories(tmp_path: Path, mode: str) -> None:
    files = {f"d{i % 40}/s{i % 7}/f{i}": os.urandom(i % 3000) for i in range(600)}
    raw = make_tar(*(f(name, data, mode=0o600 + i % 64) for i, (name, data) in
                     enumerate(files.items())))  # fmt: skip
    root = tmp_path / "r"
    assert run(root, raw).entries == 600
    for i, (name, data) in enumerate(files.items()):
        assert (root / name).read_bytes() == data
        assert stat.S_IMODE(os.lstat(root / name).st_mode) == 0o600 + i % 64


def test_a_failure_on_the_worker_names_its_entry(tmp_path: Path, mode: str) -> None:
    bad = {"SCHILY.xattr.user." + "x" * 300: "v"}  # an xattr name the kernel refuses (ERANGE)
    raw = make_tar(*(f(f"ok{i}", b"x") for i in range(20)), f("bad", b"x", pax=bad))
    with pytest.raises(errors.RuntimeError_, match="entry 'bad'"):
        run(tmp_path / "r", raw)


def test_directory_replaced_by_symlink_after_its_files(tmp_path: Path, mode: str) -> None:
    victim = tmp_path / "victim"
    victim.mkdir()
    raw = make_tar(
        d("a"), f("a/one", b"1"),
        (entry("a", "symlink", link=str(victim)), b""),  # replaces the directory a
        f("a/two", b"2"),  # through the symlink: inside the root, never the victim
    )  # fmt: skip
    root = tmp_path / "r"
    run(root, raw)
    assert os.listdir(victim) == []
    assert (root / str(victim).lstrip("/") / "two").read_bytes() == b"2"


# -- Prefetch --------------------------------------------------------------------------------


def _layer(n: int = 300) -> bytes:
    return make_tar(d("p"), *(f(f"p/f{i}", os.urandom(5000) + b"a" * 20000) for i in range(n)))


def _prefetch(data: bytes, max_bytes: int) -> tarstream.Prefetch:
    return tarstream.Prefetch(lambda: io.BytesIO(data), max_bytes)


@pytest.mark.parametrize("max_bytes", [0, 1000, 1 << 20, 64 << 20])
def test_prefetch_gives_the_same_layer(tmp_path: Path, max_bytes: int) -> None:
    raw = _layer()
    compressed = gzip.compress(raw)
    plain = unpack.unpack(io.BytesIO(compressed), str(tmp_path))
    (tmp_path / "ahead").mkdir()
    prefetch = _prefetch(compressed, max_bytes)
    try:
        ahead = unpack.unpack(prefetch, str(tmp_path / "ahead"))
    finally:
        prefetch.close()
    assert ahead == plain
    assert ahead.diff_id == "sha256:" + hashlib.sha256(raw).hexdigest()
    assert (tmp_path / "ahead/p/f7").read_bytes() == (tmp_path / "p/f7").read_bytes()


@pytest.mark.parametrize("max_bytes", [1000, 64 << 20])
def test_prefetch_of_corrupt_data_fails_as_the_stream_does(tmp_path: Path, max_bytes: int) -> None:
    compressed = bytearray(gzip.compress(_layer(100)))
    compressed[len(compressed) // 2 : len(compressed) // 2 + 64] = b"\xff" * 64
    with pytest.raises(errors.InvalidSpec):
        unpack.unpack(io.BytesIO(bytes(compressed)), str(tmp_path))
    (tmp_path / "ahead").mkdir()
    prefetch = _prefetch(bytes(compressed), max_bytes)
    try:
        with pytest.raises(errors.InvalidSpec):
            unpack.unpack(prefetch, str(tmp_path / "ahead"))
    finally:
        prefetch.close()


def test_prefetch_keeps_the_byte_cap(tmp_path: Path) -> None:
    bomb = gzip.compress(make_tar(f("zeros", b"\0" * (4 << 20))))
    prefetch = _prefetch(bomb, 64 << 20)
    try:
        with pytest.raises(errors.InvalidSpec, match="more than"):
            unpack.unpack(prefetch, str(tmp_path), limits=tarstream.Limits(max_bytes=1 << 20))
    finally:
        prefetch.close()


def test_prefetch_closed_unread_stops_and_closes_its_stream() -> None:
    stream = io.BytesIO(gzip.compress(_layer(50)))
    before = threading.active_count()
    prefetch = tarstream.Prefetch(lambda: stream, 1 << 20)
    prefetch.close()
    assert stream.closed
    assert threading.active_count() == before


def test_owner_and_mode_the_kernel_would_not_give_are_set(tmp_path: Path, mode: str) -> None:
    root = tmp_path / "r"
    root.mkdir()
    os.chown(root, 0, 77)
    os.chmod(root, 0o2755)  # new files would inherit group 77
    old_umask = os.umask(0o027)
    try:
        run(root, make_tar(f("x", b"x", mode=0o664), f("y", b"y", mode=0o640, uid=5, gid=0),
                           f("z", b"z", mode=0o640, gid=77)))  # fmt: skip
    finally:
        os.umask(old_umask)
    got = {n: os.lstat(root / n) for n in "xyz"}
    assert {n: (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) for n, st in got.items()} == {
        "x": (0, 0, 0o664), "y": (5, 0, 0o640), "z": (0, 77, 0o640),
    }  # fmt: skip


def test_a_root_entry_changing_a_setgid_roots_group_after_its_files(
    tmp_path: Path, mode: str
) -> None:
    root = tmp_path / "r"
    root.mkdir()
    os.chown(root, 0, 77)
    os.chmod(root, 0o2755)
    run(root, make_tar(f("a", b"a", gid=77), d("./", gid=88), f("b", b"b", gid=77)))
    assert (os.lstat(root / "a").st_gid, os.lstat(root / "b").st_gid) == (77, 77)
    assert os.lstat(root).st_gid == 88
