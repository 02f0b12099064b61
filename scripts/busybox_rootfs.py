#!/usr/bin/env python3
"""Make a small root filesystem from the host's busybox-static, offline.

Used by the demo (``scripts/demo.sh``) and by the tests: a directory or a
tarball with ``/bin/busybox``, a symlink per applet, ``/etc/passwd`` and
``/etc/group`` with root, nobody and a user 1000, and the usual empty
directories. The tarball is reproducible: fixed mtimes, sorted entries,
root ownership, so importing it twice gives the same digest.

    python3 scripts/busybox_rootfs.py OUT.tar      # a rootfs tarball
    python3 scripts/busybox_rootfs.py --dir OUTDIR # a directory
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import subprocess
import sys
import tarfile

BUSYBOX = os.environ.get("PYRECONCILE_BUSYBOX", "/bin/busybox")
PASSWD = (
    "root:x:0:0:root:/root:/bin/sh\n"
    "daemon:x:1:1:daemon:/usr/sbin:/bin/false\n"
    "app:x:1000:1000:app:/home/app:/bin/sh\n"
    "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
)
GROUP = "root:x:0:\ndaemon:x:1:\ntty:x:5:\napp:x:1000:\nnogroup:x:65534:\n"
DIRS = {
    "bin": 0o755,
    "etc": 0o755,
    "dev": 0o755,
    "proc": 0o555,
    "sys": 0o555,
    "tmp": 0o1777,
    "root": 0o700,
    "home": 0o755,
    "home/app": 0o755,
    "var": 0o755,
    "var/www": 0o755,
    "run": 0o755,
    "usr": 0o755,
    "usr/bin": 0o755,
    "usr/sbin": 0o755,
    "sbin": 0o755,
}
MTIME = 1_700_000_000


def applets() -> list[str]:
    if not os.path.exists(BUSYBOX):
        sys.exit(f"{BUSYBOX} is missing: install it with `apt-get install busybox-static`")
    out = subprocess.run([BUSYBOX, "--list"], check=True, capture_output=True, text=True).stdout
    return sorted(name for name in out.split() if name and name != "busybox")


def write_tar(path: str) -> None:
    def info(name: str, kind: bytes, mode: int) -> tarfile.TarInfo:
        ti = tarfile.TarInfo(name)
        ti.type, ti.mode, ti.mtime, ti.uid, ti.gid = kind, mode, MTIME, 0, 0
        ti.uname = ti.gname = "root"
        return ti

    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        for d in sorted(DIRS):
            tar.addfile(info(d, tarfile.DIRTYPE, DIRS[d]))
        with open(BUSYBOX, "rb") as f:
            data = f.read()
        ti = info("bin/busybox", tarfile.REGTYPE, 0o755)
        ti.size = len(data)
        tar.addfile(ti, io.BytesIO(data))
        for name in applets():
            ti = info(f"bin/{name}", tarfile.SYMTYPE, 0o777)
            ti.linkname = "busybox"
            tar.addfile(ti)
        for name, text in (("etc/passwd", PASSWD), ("etc/group", GROUP)):
            raw = text.encode()
            ti = info(name, tarfile.REGTYPE, 0o644)
            ti.size = len(raw)
            tar.addfile(ti, io.BytesIO(raw))


def write_dir(path: str) -> None:
    os.makedirs(path, exist_ok=True)
    for d in sorted(DIRS):
        os.makedirs(os.path.join(path, d), exist_ok=True)
        os.chmod(os.path.join(path, d), DIRS[d])
    shutil.copy2(BUSYBOX, os.path.join(path, "bin/busybox"))
    for name in applets():
        link = os.path.join(path, "bin", name)
        if not os.path.lexists(link):
            os.symlink("busybox", link)
    for name, text in (("etc/passwd", PASSWD), ("etc/group", GROUP)):
        with open(os.path.join(path, name), "w") as f:
            f.write(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out")
    parser.add_argument("--dir", action="store_true", help="write a directory, not a tarball")
    args = parser.parse_args()
    if args.dir:
        write_dir(args.out)
    else:
        write_tar(args.out)


if __name__ == "__main__":
    main()
