"""Layer unpacking against crafted tars: breakouts are neutralised or refused,
the host is untouched, and the tree is what the layer says.

Every attack aims at a *victim* directory next to the unpack root, or at a
made-up top-level name, never at the real /etc: a regression damages only
the test's own files.
Needs root (device nodes, whiteouts, chown, trusted.* xattrs).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import shutil
import stat
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import pytest

from runtime import errors
from runtime.engine import tarstream, unpack

pytestmark = pytest.mark.privileged

MTIME = 1_600_000_000


def entry(
    name: str, kind: str = "file", data: bytes = b"", **kw: Any
) -> tuple[tarfile.TarInfo, bytes]:
    types = {
        "file": tarfile.REGTYPE, "dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE,
        "hardlink": tarfile.LNKTYPE, "char": tarfile.CHRTYPE, "block": tarfile.BLKTYPE,
        "fifo": tarfile.FIFOTYPE,
    }  # fmt: skip
    ti = tarfile.TarInfo(name)
    ti.type = types.get(kind, kind.encode() if isinstance(kind, str) else kind)
    ti.mode = kw.get("mode", 0o755 if kind == "dir" else 0o644)
    ti.mtime = kw.get("mtime", MTIME)
    ti.uid, ti.gid = kw.get("uid", 0), kw.get("gid", 0)
    ti.linkname = kw.get("link", "")
    ti.devmajor, ti.devminor = kw.get("dev", (0, 0))
    if "pax" in kw:
        ti.pax_headers = kw["pax"]
    ti.size = len(data) if kind == "file" else 0
    return ti, data


def make_tar(*entries: tuple[tarfile.TarInfo, bytes], trailing: bytes = b"") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for ti, data in entries:
            tar.addfile(ti, io.BytesIO(data) if ti.size else None)
    return buf.getvalue() + trailing


@pytest.fixture
def tree(tmp_path: Path) -> tuple[Path, Path]:
    """(root to unpack into, victim directory outside it holding 'hello')."""
    root, victim = tmp_path / "root", tmp_path / "victim"
    root.mkdir()
    victim.mkdir()
    (victim / "hello").write_text("hello")
    os.chmod(victim / "hello", 0o644)
    return root, victim


def run(root: Path, raw: bytes, **kw: Any) -> tarstream.Summary:
    return unpack.unpack(io.BytesIO(raw), str(root), **kw)


def victim_intact(victim: Path) -> None:
    assert sorted(os.listdir(victim)) == ["hello"]
    assert (victim / "hello").read_text() == "hello"
    assert stat.S_IMODE(os.lstat(victim / "hello").st_mode) == 0o644


# -- a legitimate layer -------------------------------------------------------------


def test_tree_metadata_and_diff_id(tree: tuple[Path, Path]) -> None:
    root, _ = tree
    cap = b"\x01\x00\x00\x02" + b"\x00\x04\x00\x00" + b"\x00" * 12  # v2, cap_net_bind_service
    raw = make_tar(
        entry("bin", "dir"),
        entry("bin/busybox", data=b"\x7fELF", mode=0o4755, uid=0, gid=0),
        entry("bin/sh", "symlink", link="/bin/busybox"),
        entry("bin/ash", "symlink", link="busybox"),
        entry("bin/hard", "hardlink", link="bin/busybox"),
        entry("tmp", "dir", mode=0o1777),
        entry("home/app", "dir", mode=0o700, uid=1000, gid=1000),
        entry("home/app/f", data=b"x", uid=1000, gid=1001, mode=0o640,
              pax={"SCHILY.xattr.user.note": "hi", "SCHILY.xattr.security.capability": cap.decode(),
                   "SCHILY.xattr.trusted.overlay.redirect": "/x"}),
        entry("dev/null", "char", mode=0o666, dev=(1, 3)),
        entry("dev/sda", "block", mode=0o660, dev=(8, 0)),
        entry("run/fifo", "fifo", mode=0o600),
        entry("ro", "dir", mode=0o555, mtime=1_500_000_000),
        entry("ro/inside", data=b"written after the dir"),
        trailing=b"garbage after the end of the archive",
    )  # fmt: skip
    result = run(root, raw)
    assert result.diff_id == "sha256:" + hashlib.sha256(raw).hexdigest()
    assert result.size == len(raw)
    assert result.entries == 13
    busybox = os.lstat(root / "bin/busybox")
    assert stat.S_IMODE(busybox.st_mode) == 0o4755
    assert busybox.st_nlink == 2 and os.lstat(root / "bin/hard").st_ino == busybox.st_ino
    assert os.readlink(root / "bin/sh") == "/bin/busybox"
    assert os.readlink(root / "bin/ash") == "busybox"
    assert stat.S_IMODE(os.lstat(root / "tmp").st_mode) == 0o1777
    f = os.lstat(root / "home/app/f")
    assert (f.st_uid, f.st_gid, stat.S_IMODE(f.st_mode)) == (1000, 1001, 0o640)
    assert f.st_mtime == MTIME
    assert os.getxattr(root / "home/app/f", "user.note") == b"hi"
    assert os.getxattr(root / "home/app/f", "security.capability") == cap
    assert "trusted.overlay.redirect" not in os.listxattr(root / "home/app/f")
    home = os.lstat(root / "home/app")
    assert (home.st_uid, stat.S_IMODE(home.st_mode)) == (1000, 0o700)
    null = os.lstat(root / "dev/null")
    assert stat.S_ISCHR(null.st_mode) and null.st_rdev == os.makedev(1, 3)
    assert stat.S_IMODE(null.st_mode) == 0o666
    assert stat.S_ISBLK(os.lstat(root / "dev/sda").st_mode)
    assert stat.S_ISFIFO(os.lstat(root / "run/fifo").st_mode)
    ro = os.lstat(root / "ro")
    assert stat.S_IMODE(ro.st_mode) == 0o555 and ro.st_mtime == 1_500_000_000
    assert (root / "ro/inside").read_bytes() == b"written after the dir"
    assert result.newest_mtime == MTIME


def test_gzip_and_concatenated_members_give_the_same_diff_id(tmp_path: Path) -> None:
    raw = make_tar(entry("a", data=b"a" * 5000), entry("b", data=b"b"))
    compressed = gzip.compress(raw[:3000]) + gzip.compress(raw[3000:])
    (tmp_path / "r").mkdir()
    result = unpack.unpack(io.BytesIO(compressed), str(tmp_path / "r"))
    assert result.diff_id == "sha256:" + hashlib.sha256(raw).hexdigest()
    assert (tmp_path / "r/a").read_bytes() == b"a" * 5000
    scanned = tarstream.scan(io.BytesIO(compressed))
    assert (scanned.diff_id, scanned.entries) == (result.diff_id, 2)


def test_root_entry_and_duplicates(tree: tuple[Path, Path]) -> None:
    root, _ = tree
    run(root, make_tar(
        entry("./", "dir", mode=0o711, mtime=1_400_000_000),
        entry("./etc/passwd", data=b"first"),
        entry("h", "hardlink", link="etc/passwd"),
        entry("h", data=b"second"),
        entry("etc/passwd", data=b"third"),
        entry("./etc/../etc/group", data=b"g"),
    ))  # fmt: skip
    assert stat.S_IMODE(os.lstat(root).st_mode) == 0o711
    assert os.lstat(root).st_mtime == 1_400_000_000
    assert (root / "h").read_bytes() == b"second"
    assert (root / "etc/passwd").read_bytes() == b"third"
    assert (root / "etc/group").read_bytes() == b"g"


def test_missing_parents_copy_lower_layer_metadata(tmp_path: Path) -> None:
    lower, upper = tmp_path / "lower", tmp_path / "upper"
    (lower / "usr/share").mkdir(parents=True)
    os.chmod(lower / "usr", 0o750)
    os.chown(lower / "usr", 12, 34)
    os.utime(lower / "usr", (1_300_000_000, 1_300_000_000))
    upper.mkdir()
    run(
        upper,
        make_tar(entry("usr/share/x", data=b"x"), entry("opt/y", data=b"y")),
        parents=[str(lower)],
    )
    usr = os.lstat(upper / "usr")
    assert (stat.S_IMODE(usr.st_mode), usr.st_uid, usr.st_gid) == (0o750, 12, 34)
    assert usr.st_mtime == 1_300_000_000
    assert stat.S_IMODE(os.lstat(upper / "opt").st_mode) == 0o755


# -- names that climb out -----------------------------------------------------------


@pytest.mark.parametrize("name", ["../victim/evil", "a/../../victim/evil", "../../etc/x", ".."])
def test_relative_names_climbing_out_are_refused(tree: tuple[Path, Path], name: str) -> None:
    root, victim = tree
    with pytest.raises(errors.InvalidSpec):
        run(root, make_tar(entry(name, data=b"evil")))
    victim_intact(victim)


def test_absolute_names_are_scoped_into_the_root(tree: tuple[Path, Path]) -> None:
    root, victim = tree
    run(root, make_tar(
        entry(f"{victim}/abs", data=b"1"),
        entry(f"/../..{victim}/dotdot", data=b"2"),
        entry("/pyrt-abs-test/x", data=b"3"),
    ))  # fmt: skip
    victim_intact(victim)
    inside = root / str(victim).lstrip("/")
    assert (inside / "abs").read_bytes() == b"1"
    assert (inside / "dotdot").read_bytes() == b"2"
    assert (root / "pyrt-abs-test/x").read_bytes() == b"3"


@pytest.mark.parametrize("name", [".", "/", "./", "a/.."])
def test_non_directory_entries_naming_the_root_are_refused(
    tree: tuple[Path, Path], name: str
) -> None:
    root, victim = tree
    with pytest.raises(errors.InvalidSpec):
        run(root, make_tar(entry(name, "symlink", link=str(victim))))
    assert not os.path.islink(root)
    victim_intact(victim)


# -- symlinks ------------------------------------------------------------------------


def test_write_through_symlink_to_host_root_stays_inside(tree: tuple[Path, Path]) -> None:
    root, victim = tree
    rel = str(victim).lstrip("/")
    run(root, make_tar(
        entry("a", "symlink", link="/"),
        entry(f"a/{rel}/hello", data=b"pwned"),
        entry(f"a/{rel}/evil", data=b"pwned"),
        entry("a/pyrt-abs-test/passwd", data=b"root::0:0::/:/bin/sh\n"),
    ))  # fmt: skip
    victim_intact(victim)
    assert (root / rel / "hello").read_bytes() == b"pwned"
    assert (root / "pyrt-abs-test/passwd").read_bytes().startswith(b"root::")
    assert os.readlink(root / "a") == "/"


@pytest.mark.parametrize("link", ["..", "../..", "../../..", "/../../.."])
def test_write_through_symlink_to_dotdot_stays_inside(tree: tuple[Path, Path], link: str) -> None:
    root, victim = tree
    run(root, make_tar(entry("up", "symlink", link=link), entry("up/victim/hello", data=b"pwned")))
    victim_intact(victim)
    assert (root / "victim/hello").read_bytes() == b"pwned"


def test_symlink_chains_and_loopholes_stay_inside(tree: tuple[Path, Path]) -> None:
    root, victim = tree
    run(root, make_tar(
        entry("a/b", "dir"),
        entry("a/b/c", "symlink", link="../.."),
        entry("a/b/c/d", "symlink", link=".."),
        entry("a/b/c/d/victim/one", data=b"1"),
        entry("dir", "dir"),
        entry("dir/loophole", "symlink", link="../../victim"),
        entry("dir/loophole/newdir/newfile", data=b"2"),
        entry("abs", "symlink", link=str(victim)),
        entry("abs/hello", data=b"3"),
    ))  # fmt: skip
    victim_intact(victim)
    assert (root / "victim/one").read_bytes() == b"1"
    assert (root / "victim/newdir/newfile").read_bytes() == b"2"
    assert (root / str(victim).lstrip("/") / "hello").read_bytes() == b"3"


def test_symlink_loop_is_refused(tree: tuple[Path, Path]) -> None:
    root, _ = tree
    with pytest.raises(errors.InvalidSpec):
        run(root, make_tar(entry("x", "symlink", link="y"), entry("y", "symlink", link="x"),
                           entry("x/f", data=b"")))  # fmt: skip


def test_directory_replaced_by_symlink_later_in_the_layer(tree: tuple[Path, Path]) -> None:
    root, victim = tree
    run(root, make_tar(
        entry("d", "dir", mode=0o700),
        entry("d/f", data=b"inside"),
        entry("d", "symlink", link=str(victim)),
        entry("d/evil", data=b"pwned"),
        entry("e", "symlink", link=str(victim)),
        entry("e", "dir", mode=0o750),
        entry("e/f", data=b"e"),
    ))  # fmt: skip
    victim_intact(victim)
    assert os.readlink(root / "d") == str(victim)
    assert (root / str(victim).lstrip("/") / "evil").read_bytes() == b"pwned"
    assert stat.S_IMODE(os.lstat(root / "e").st_mode) == 0o750 and not os.path.islink(root / "e")
    assert (root / "e/f").read_bytes() == b"e"


def test_regular_file_over_an_absolute_symlink_replaces_the_link(tree: tuple[Path, Path]) -> None:
    root, victim = tree
    run(root, make_tar(entry("l", "symlink", link=f"{victim}/hello"), entry("l", data=b"mine")))
    victim_intact(victim)
    assert not os.path.islink(root / "l") and (root / "l").read_bytes() == b"mine"


# -- hardlinks -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "target", ["../victim/hello", "TARGET_ABS", "viadir/hello", "dir", "missing"]
)
def test_hardlinks_outside_or_invalid_are_refused(tree: tuple[Path, Path], target: str) -> None:
    root, victim = tree
    target = f"{victim}/hello" if target == "TARGET_ABS" else target
    with pytest.raises(errors.InvalidSpec):
        run(root, make_tar(
            entry("viadir", "symlink", link=str(victim)),
            entry("dir", "dir"),
            entry("h", "hardlink", link=target),
        ))  # fmt: skip
    victim_intact(victim)


def test_hardlink_to_symlink_never_changes_the_outside_file(tree: tuple[Path, Path]) -> None:
    """CVE-2021-32760: a hardlink of a symlink, then a chmod of the 'hardlink'."""
    root, victim = tree
    run(root, make_tar(
        entry("s", "symlink", link=f"{victim}/hello"),
        entry("h", "hardlink", link="s", mode=0o777, uid=1234),
        entry("/pyrt-abs-test/passwd", data=b"p"),
        entry("/pyrt-abs-test/passwd-link", "hardlink", link="/pyrt-abs-test/passwd"),
    ))  # fmt: skip
    victim_intact(victim)
    assert os.readlink(root / "h") == f"{victim}/hello"
    assert os.lstat(root / "h").st_ino == os.lstat(root / "s").st_ino
    assert (
        os.lstat(root / "pyrt-abs-test/passwd-link").st_ino
        == os.lstat(root / "pyrt-abs-test/passwd").st_ino
    )


# -- whiteouts -----------------------------------------------------------------------


def test_whiteouts_become_overlay_char_devices_and_opaque_dirs(tree: tuple[Path, Path]) -> None:
    root, _ = tree
    run(root, make_tar(
        entry("etc", "dir"),
        entry("etc/.wh.gone", data=b""),
        entry("var/lib/.wh..wh..opq", data=b""),
        entry("var/lib/kept", data=b"k"),
        entry("mine", data=b"m"),
        entry(".wh.mine", data=b""),
        entry("ownd", "dir"),
        entry(".wh.ownd", data=b""),
        entry(".wh..wh.plnk", "dir"),
    ))  # fmt: skip
    gone = os.lstat(root / "etc/gone")
    assert stat.S_ISCHR(gone.st_mode) and gone.st_rdev == 0
    assert os.getxattr(root / "var/lib", "trusted.overlay.opaque") == b"y"
    assert (root / "var/lib/kept").read_bytes() == b"k"
    assert (root / "mine").read_bytes() == b"m"  # a whiteout only hides lower layers
    assert os.getxattr(root / "ownd", "trusted.overlay.opaque") == b"y"
    names = [n for _, dirs, files in os.walk(root) for n in dirs + files]
    assert not [n for n in names if n.startswith(".wh.")]


@pytest.mark.parametrize(
    "name", [".wh..", ".wh...", "etc/.wh.", ".wh.etc/somefile", "../victim/.wh.hello"]
)
def test_invalid_whiteouts_are_refused(tree: tuple[Path, Path], name: str) -> None:
    root, victim = tree
    with pytest.raises(errors.InvalidSpec):
        run(root, make_tar(entry("etc", "dir"), entry(name, data=b"")))
    victim_intact(victim)
    assert os.path.isdir(root)


def test_whiteout_through_symlink_stays_inside(tree: tuple[Path, Path]) -> None:
    root, victim = tree
    run(root, make_tar(entry("l", "symlink", link=str(victim)), entry("l/.wh.hello", data=b""),
                       entry("l/.wh..wh..opq", data=b"")))  # fmt: skip
    victim_intact(victim)
    assert "trusted.overlay.opaque" not in os.listxattr(victim)
    assert stat.S_ISCHR(os.lstat(root / str(victim).lstrip("/") / "hello").st_mode)


# -- malformed and oversized layers ----------------------------------------------------


def test_byte_cap_stops_a_gzip_bomb(tmp_path: Path) -> None:
    bomb = gzip.compress(make_tar(entry("zeros", data=b"\0" * (8 << 20))))
    assert len(bomb) < 64 << 10
    (tmp_path / "r").mkdir()
    with pytest.raises(errors.InvalidSpec, match="bytes uncompressed"):
        unpack.unpack(
            io.BytesIO(bomb), str(tmp_path / "r"), limits=tarstream.Limits(max_bytes=1 << 20)
        )


def test_entry_cap(tmp_path: Path) -> None:
    raw = make_tar(*(entry(f"f{i}") for i in range(50)))
    (tmp_path / "r").mkdir()
    with pytest.raises(errors.InvalidSpec, match="entries"):
        unpack.unpack(io.BytesIO(raw), str(tmp_path / "r"), limits=tarstream.Limits(max_entries=10))


def test_huge_extended_header_is_refused(tmp_path: Path) -> None:
    raw = make_tar(entry("f", pax={"comment": "x" * (2 << 20)}))
    (tmp_path / "r").mkdir()
    with pytest.raises(errors.InvalidSpec, match="extended tar header"):
        unpack.unpack(io.BytesIO(raw), str(tmp_path / "r"))


@pytest.mark.parametrize(
    "raw",
    [
        make_tar(entry("f", data=b"x" * 2000))[:1200],  # truncated entry
        b"not a tar at all" * 100,
        b"",
        gzip.compress(make_tar(entry("f", data=b"x" * 2000)))[:-20],  # truncated gzip
    ],
    ids=["truncated", "garbage", "empty", "truncated-gzip"],
)
def test_malformed_streams_are_invalid(tmp_path: Path, raw: bytes) -> None:
    (tmp_path / "r").mkdir()
    with pytest.raises(errors.InvalidSpec):
        unpack.unpack(io.BytesIO(raw), str(tmp_path / "r"))


@pytest.mark.parametrize(
    "bad", [entry("odd", "V"), entry("u", uid=0xFFFFFFFF), entry("n\\ok", data=b"")]
)
def test_unknown_types_and_bad_owners(tmp_path: Path, bad: tuple[tarfile.TarInfo, bytes]) -> None:
    (tmp_path / "r").mkdir()
    if bad[0].name == "n\\ok":  # a backslash is an ordinary character
        unpack.unpack(io.BytesIO(make_tar(bad)), str(tmp_path / "r"))
        assert (tmp_path / "r" / "n\\ok").exists()
        return
    with pytest.raises(errors.InvalidSpec):
        unpack.unpack(io.BytesIO(make_tar(bad)), str(tmp_path / "r"))


def test_zstd_layers(tmp_path: Path) -> None:
    """With the optional zstandard module a zstd layer unpacks; without it the
    error says what to install."""
    (tmp_path / "r").mkdir()
    raw = make_tar(entry("z", data=b"zstd"))
    try:
        import zstandard  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        with pytest.raises(errors.Unavailable, match="zstandard"):
            unpack.unpack(io.BytesIO(b"\x28\xb5\x2f\xfd" + b"\0" * 64), str(tmp_path / "r"))
        return
    result = unpack.unpack(
        io.BytesIO(zstandard.ZstdCompressor().compress(raw)), str(tmp_path / "r")
    )
    assert result.diff_id == "sha256:" + hashlib.sha256(raw).hexdigest()
    assert (tmp_path / "r/z").read_bytes() == b"zstd"


def test_pax_and_gnu_long_names_are_cleaned_the_same(tree: tuple[Path, Path]) -> None:
    root, victim = tree
    with pytest.raises(errors.InvalidSpec):
        run(root, make_tar(entry("innocent", data=b"x", pax={"path": "../victim/evil"})))
    long_evil = "../" + "a/../" * 40 + "victim/evil"
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        ti, _ = entry(long_evil)
        tar.addfile(ti)
    with pytest.raises(errors.InvalidSpec):
        run(root, buf.getvalue())
    victim_intact(victim)
    long_ok = "/".join(["d" * 50] * 5) + "/file"
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        ti, _ = entry(long_ok)
        tar.addfile(ti)
    run(root, buf.getvalue())
    assert (root / long_ok).exists()


@pytest.mark.parametrize(
    "name", ["a\x00b", "x/" * 2100 + "f", "n" * 300], ids=["nul", "path-max", "name-max"]
)
def test_impossible_names_are_refused(tree: tuple[Path, Path], name: str) -> None:
    root, _ = tree
    with pytest.raises(errors.InvalidSpec):
        run(root, make_tar(entry("placeholder", data=b"", pax={"path": name})))


def test_global_pax_header_is_tolerated(tmp_path: Path) -> None:
    buf = io.BytesIO()
    with tarfile.open(
        fileobj=buf, mode="w", format=tarfile.PAX_FORMAT, pax_headers={"comment": "global"}
    ) as tar:
        ti, data = entry("f", data=b"1")
        tar.addfile(ti, io.BytesIO(data))
    (tmp_path / "r").mkdir()
    unpack.unpack(io.BytesIO(buf.getvalue()), str(tmp_path / "r"))
    assert (tmp_path / "r/f").read_bytes() == b"1"


def empty_entries(count: int) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for i in range(count):
            ti, _ = entry(f"d{i % 100}/f{i}") if i >= 100 else entry(f"d{i}", "dir")
            tar.addfile(ti)
    return buf.getvalue()


def test_many_empty_entries(tmp_path: Path) -> None:
    """100k entries stream through without tarfile keeping them in memory."""
    assert tarstream.scan(io.BytesIO(empty_entries(100_000))).entries == 100_000
    (tmp_path / "r").mkdir()
    assert unpack.unpack(io.BytesIO(empty_entries(20_000)), str(tmp_path / "r")).entries == 20_000
    assert len(os.listdir(tmp_path / "r/d7")) == 199


def _tree(root: Path) -> dict[str, tuple[object, ...]]:
    out: dict[str, tuple[object, ...]] = {}
    for top, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(top, name)
            st = os.lstat(path)
            link = os.readlink(path) if stat.S_ISLNK(st.st_mode) else None
            size = st.st_size if stat.S_ISREG(st.st_mode) else 0
            mtime = None if link else int(st.st_mtime)
            xattrs = sorted(os.listxattr(path, follow_symlinks=False))
            out[os.path.relpath(path, root)] = (
                st.st_mode,
                st.st_uid,
                st.st_gid,
                size,
                link,
                mtime,
                xattrs,
            )
    return out


def test_same_tree_as_gnu_tar(tmp_path: Path) -> None:
    """Differential: the host's /etc archived and extracted by GNU tar, and by us."""
    if shutil.which("tar") is None:
        pytest.skip("GNU tar is not installed")
    archive, gnu, ours = tmp_path / "etc.tar", tmp_path / "gnu", tmp_path / "ours"
    gnu.mkdir()
    ours.mkdir()
    subprocess.run(["tar", "--xattrs", "--numeric-owner", "-cf", archive, "-C", "/", "etc"],
                   check=True, capture_output=True)  # fmt: skip
    subprocess.run(["tar", "--xattrs", "--xattrs-include=*", "--numeric-owner", "-xpf", archive,
                    "-C", gnu], check=True, capture_output=True)  # fmt: skip
    with open(archive, "rb") as f:
        result = unpack.unpack(f, str(ours))
    assert result.diff_id == "sha256:" + hashlib.sha256(archive.read_bytes()).hexdigest()
    assert _tree(ours) == _tree(gnu)


# -- sizes, sparse files and compression ratios (the reference's remaining cases) ----------


def _with_size_field(raw: bytes, field: bytes) -> bytes:
    """``raw`` (one-entry ustar) with its header's size field replaced and the checksum redone."""
    header = bytearray(raw[:512])
    header[124:136] = field
    header[148:156] = b" " * 8
    header[148:156] = b"%06o\0 " % sum(header)
    return bytes(header) + raw[512:]


def _ustar(*entries: tuple[tarfile.TarInfo, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for ti, data in entries:
            tar.addfile(ti, io.BytesIO(data) if ti.size else None)
    return buf.getvalue()


@pytest.mark.parametrize(
    "field",
    [b"\xff" * 12, b"\x80" + b"\0" * 6 + b"\x01\0\0\0\0", b"77777777777\0"],
    ids=["negative", "huge-base256", "huge-octal"],
)
def test_negative_or_huge_sizes_are_refused(tree: tuple[Path, Path], field: bytes) -> None:
    root, victim = tree
    raw = _with_size_field(_ustar(entry("f", data=b"x" * 10)), field)
    with pytest.raises(errors.InvalidSpec):
        run(root, raw, limits=tarstream.Limits(max_bytes=1 << 20))
    victim_intact(victim)
    assert not (root / "f").exists() or (root / "f").stat().st_size <= 10


def test_gnu_sparse_with_huge_apparent_size_is_refused(tree: tuple[Path, Path]) -> None:
    root, victim = tree
    ti, _ = entry("sparse", data=b"")
    ti.pax_headers = {
        "GNU.sparse.major": "1", "GNU.sparse.minor": "0", "GNU.sparse.name": "sparse",
        "GNU.sparse.realsize": str(1 << 40),
    }  # fmt: skip
    sparse_map = b"1\n0\n0\n".ljust(512, b"\0")
    ti.size = len(sparse_map)
    with pytest.raises(errors.InvalidSpec, match="sparse"):
        run(root, make_tar((ti, sparse_map)))
    assert not (root / "sparse").exists()
    victim_intact(victim)


@pytest.mark.parametrize("codec", ["gzip", "zstd"])
def test_compression_ratio_cap(tmp_path: Path, codec: str) -> None:
    raw = make_tar(entry("zeros", data=b"\0" * (4 << 20)))
    if codec == "gzip":
        bomb = gzip.compress(raw)
    else:
        import zstandard  # type: ignore[import-not-found, unused-ignore]

        bomb = zstandard.ZstdCompressor().compress(raw)
    (tmp_path / "r").mkdir()
    tight = tarstream.Limits(max_ratio=20, ratio_floor=1 << 20)
    with pytest.raises(errors.InvalidSpec, match="decompression bomb"):
        unpack.unpack(io.BytesIO(bomb), str(tmp_path / "r"), limits=tight)
    with pytest.raises(errors.InvalidSpec, match="decompression bomb"):
        tarstream.scan(io.BytesIO(bomb), limits=tight)
    relaxed = tarstream.Limits(max_ratio=20, ratio_floor=8 << 20)  # below the floor: fine
    (tmp_path / "s").mkdir()
    assert unpack.unpack(io.BytesIO(bomb), str(tmp_path / "s"), limits=relaxed).size == len(raw)
    assert tarstream.Limits().max_ratio > 1032  # the default never refuses a gzip layer
