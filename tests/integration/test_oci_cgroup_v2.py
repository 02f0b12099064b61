"""The builtin OCI runtime on a pure cgroup v2 host.

This host is hybrid (v1 controllers, cgroup2 at /sys/fs/cgroup/unified), so
the test makes a pure-v2 view of its own: a child process in a private mount
namespace mounts cgroup2 on /sys/fs/cgroup and drives the runtime there. The
v2 tree has no memory/cpu/pids controllers here (they are bound to v1), so
limits are covered by the unit tests on a fake tree; this checks discovery,
placement, the container's /sys/fs/cgroup with and without a cgroup namespace,
and removal, against the real kernel.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.integration import test_oci_support as support

_DRIVER = r"""
import json, os, sys
from pathlib import Path
import runtime.sys as rsys
from runtime.oci import cgroups, lifecycle
from tests.integration import test_oci_support as support

base, rootfs, parent = sys.argv[1:4]
rsys.unshare(rsys.CLONE_NEWNS)
rsys.mount(None, "/", None, rsys.MS_REC | rsys.MS_PRIVATE)
rsys.mount("cgroup2", "/sys/fs/cgroup", "cgroup2", rsys.MS_NOSUID | rsys.MS_NODEV | rsys.MS_NOEXEC)
report = {"v2": cgroups.discover().v2}
script = ("grep ^0:: /proc/self/cgroup;"
          "grep ' /sys/fs/cgroup ' /proc/self/mountinfo | cut -d' ' -f9;"
          "ls /sys/fs/cgroup | grep -c cgroup.procs")
with support.environment(Path(base), Path(rootfs), parent) as env:
    for cid, cgroupns in (("plain", False), ("withns", True)):
        def configure(doc, cgroupns=cgroupns):
            if cgroupns:
                doc["linux"]["namespaces"].append({"type": "cgroup"})
        pid = env.create(cid, ["sh", "-c", script], configure)
        leaf = f"/sys/fs/cgroup/{parent}/{cid}"
        placed = str(pid) in open(f"{leaf}/cgroup.procs").read().split()
        lifecycle.start(env.root, cid)
        code = support.wait(pid)
        lifecycle.delete(env.root, cid)
        report[cid] = {"code": code, "placed": placed, "out": env.output(cid)[0],
                       "err": env.output(cid)[1], "left": os.path.exists(leaf)}
print(json.dumps(report))
"""


def test_pure_v2_placement_cgroup_mount_and_removal(roots: Any, busybox_dir: Path) -> None:
    r = subprocess.run(
        [sys.executable, "-c", _DRIVER, str(roots.base), str(busybox_dir), roots.cgroup_parent],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert report["v2"] == "/sys/fs/cgroup"
    plain, withns = report["plain"], report["withns"]
    for result in (plain, withns):
        assert (result["code"], result["placed"], result["left"]) == (0, True, False), result
    # no cgroup namespace: the full path, and the container's own dir bind-mounted
    assert plain["out"].splitlines() == [f"0::/{roots.cgroup_parent}/plain", "cgroup2", "1"]
    # a private cgroup namespace: rooted at the container's cgroup, a fresh cgroup2 mount
    assert withns["out"].splitlines() == ["0::/", "cgroup2", "1"]
    assert not any(Path(d).exists() for d in support.cgroup_dirs_of(roots.cgroup_parent))
