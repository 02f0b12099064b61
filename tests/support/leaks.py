"""What a test may leave behind, read from the host: mounts, processes and
cgroups that mention a path or a name, network links and nftables tables of
an engine. Tests call these at teardown and fail if anything is left."""

from __future__ import annotations

import os
import subprocess


def mounts_under(prefix: str) -> list[str]:
    """Mount points at or below ``prefix`` in this mount namespace."""
    found = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            point = line.split()[4].replace("\\040", " ")
            if point == prefix or point.startswith(prefix.rstrip("/") + "/"):
                found.append(point)
    return found


def processes_mentioning(text: str) -> list[tuple[int, str]]:
    """Live processes whose command line or working directory mentions ``text``."""
    found = []
    me = os.getpid()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmd:
            found.append((int(entry), cmd.strip()))
    return found


def cgroup_children(name: str) -> list[str]:
    """Cgroups below the parent ``name`` in any hierarchy (containers left behind).

    The parent itself may stay, as Docker's ``/docker`` does: the engine shares
    it between containers and never removes it.
    """
    found = []
    for parent in cgroup_dirs(name):
        for entry in sorted(os.listdir(parent)):
            if os.path.isdir(os.path.join(parent, entry)):
                found.append(os.path.join(parent, entry))
    return found


def cgroup_dirs(name: str) -> list[str]:
    """Directories called ``name`` directly under any cgroup hierarchy's root."""
    found = []
    base = "/sys/fs/cgroup"
    candidates = [base] + [os.path.join(base, d) for d in os.listdir(base)]
    for root in candidates:
        path = os.path.join(root, name)
        if os.path.isdir(path) and os.path.exists(os.path.join(root, "cgroup.procs")):
            found.append(path)
    return found


def links_with_alias(prefix: str) -> list[str]:
    """Network links of this namespace whose alias starts with ``prefix`` (the
    network layer marks its links ``pyreconcile:<engine tag>:…``)."""
    found = []
    base = "/sys/class/net"
    for name in sorted(os.listdir(base)):
        try:
            with open(os.path.join(base, name, "ifalias")) as f:
                alias = f.read().strip()
        except OSError:
            continue
        if alias.startswith(prefix):
            found.append(name)
    return found


def nft_table_exists(family: str, table: str) -> bool:
    proc = subprocess.run(
        ["nft", "list", "table", family, table], capture_output=True, text=True, check=False
    )
    return proc.returncode == 0
