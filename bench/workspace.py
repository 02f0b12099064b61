"""The run's throw-away directory, its cgroup parents, and the final leak check.

Everything a contestant makes lives below one base directory
(``/tmp/pyreconcile-bench-<random>``) and in cgroup parents named
``pyreconcile-bench-<random>-<label>``, so the check at the end can find what
was left by path and by name, without guessing: mounts below the base, live
processes whose command line mentions the base, cgroup directories of those
parents, and a changed ``/dev/null`` (a runtime once chowned it). Whatever it
finds is reported (and then removed: unmounted, killed by pid, rmdir'd).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Callable

from bench import host, proc

__all__ = ["HOST_PATHS", "Workspace"]

# Paths outside the workspace that peers create whatever their flags say:
# dockerd's trust key and run directories, containerd 1.6's shim socket
# directory (/run/containerd/s, fixed in its code), podman's blob-info cache.
# Those that did not exist before the run are removed after it (files, and
# directories only when empty), deepest first.
HOST_PATHS = (
    "/etc/docker/key.json",
    "/run/containerd/s",
    "/run/containerd",
    "/run/docker/plugins",
    "/run/docker",
    "/var/lib/containers/cache/blob-info-cache-v1.boltdb",
    "/var/lib/containers/cache",
    "/var/lib/containers",
)


class Workspace:
    def __init__(self, parent: str | None = None) -> None:
        self.token = uuid.uuid4().hex[:8]
        self.base = tempfile.mkdtemp(prefix="pyreconcile-bench-", dir=parent)
        self._cgroups: list[str] = []
        st = os.stat("/dev/null")
        self._devnull = (st.st_uid, st.st_gid, st.st_mode, st.st_rdev)
        self.closed = False
        self._host_paths = {p: os.path.lexists(p) for p in HOST_PATHS}
        self.removed_host_paths: list[str] = []

    def path(self, *parts: str) -> str:
        """A directory below the base (created)."""
        p = os.path.join(self.base, *parts)
        os.makedirs(p, exist_ok=True)
        return p

    def cgroup(self, label: str) -> str:
        """A unique cgroup parent name for one contestant; removed at close."""
        name = f"pyreconcile-bench-{self.token}-{label}"
        self._cgroups.append(name)
        return name

    def remove_cgroups(self, name: str) -> list[str]:
        """Remove one cgroup parent now (after its engine stopped); what could not go."""
        return host.remove_cgroup(name)

    def leftovers(self) -> list[str]:
        found = [f"mount {m}" for m in host.mounts_under(self.base)]
        found += [
            f"process {pid}: {cmd[:200]}" for pid, cmd in host.processes_mentioning(self.base)
        ]
        for name in self._cgroups:
            for hierarchy in host.cgroup_hierarchies():
                top = os.path.join(hierarchy, name)
                if os.path.isdir(top):
                    found.append(f"cgroup {top}")
        st = os.stat("/dev/null")
        if (st.st_uid, st.st_gid, st.st_mode, st.st_rdev) != self._devnull:
            found.append(f"/dev/null changed: uid {st.st_uid} gid {st.st_gid} mode {st.st_mode:o}")
        return found

    def close(self) -> list[str]:
        """Check for leftovers, remove them, delete the base; return what was left."""
        if self.closed:
            return []
        self.closed = True
        left = self.leftovers()
        for pid, _ in host.processes_mentioning(self.base):
            host.kill(pid)
        for point in sorted(host.mounts_under(self.base), key=len, reverse=True):
            subprocess.run(["umount", "-l", point], check=False, capture_output=True)
        for name in self._cgroups:
            stuck = host.remove_cgroup(name)
            if stuck:
                for directory in stuck:
                    _kill_cgroup_members(directory)
                try:
                    proc.poll(_removed(name), 10.0, f"cgroup {name}")
                except proc.CommandFailed as exc:
                    left.append(str(exc))
        shutil.rmtree(self.base, ignore_errors=True)
        self._remove_host_paths()
        return left

    def _remove_host_paths(self) -> None:
        for path in HOST_PATHS:
            if self._host_paths[path] or not os.path.lexists(path):
                continue
            try:
                if os.path.isdir(path) and not os.path.islink(path):
                    os.rmdir(path)
                else:
                    os.unlink(path)
                self.removed_host_paths.append(path)
            except OSError:
                pass  # not empty: something else uses it now, leave it


def _removed(name: str) -> Callable[[], bool]:
    return lambda: not host.remove_cgroup(name)


def _kill_cgroup_members(directory: str) -> None:
    """Kill the processes in one of our own cgroups (found by the cgroup's unique name)."""
    try:
        with open(os.path.join(directory, "cgroup.procs")) as f:
            pids = [int(p) for p in f.read().split()]
    except OSError:
        return
    for pid in pids:
        host.kill(pid)
