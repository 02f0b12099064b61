"""``features``: what this runtime implements, as the runtime-spec's
features document (``features.md``) — so an engine can ask before it writes
a config this runtime would refuse."""

from __future__ import annotations

from runtime.oci import config, hooks, mountopts, seccomp, state
from runtime.sys import caps
from runtime.sys import seccomp as scmp

__all__ = ["features"]

_MOUNT_OPTIONS = (
    "async", "atime", "bind", "defaults", "dev", "diratime", "dirsync", "exec", "mand",
    "noatime", "nodev", "nodiratime", "noexec", "nomand", "norelatime", "nostrictatime",
    "nosuid", "nosymfollow", "rbind", "relatime", "remount", "ro", "rw", "strictatime",
    "suid", "symfollow", "sync",
)  # fmt: skip


def features() -> dict[str, object]:
    enabled = scmp.available()
    seccomp_doc: dict[str, object] = {"enabled": enabled}
    if enabled:
        seccomp_doc.update(
            actions=sorted(scmp.ACTIONS),
            operators=sorted(scmp.COMPARE),
            archs=list(seccomp.ARCHES),
            knownFlags=sorted(seccomp.FLAGS),
            supportedFlags=sorted(seccomp.FLAGS),
        )
    return {
        "ociVersionMin": "1.0.0",
        "ociVersionMax": state.OCI_VERSION,
        "hooks": list(hooks.HOOK_KINDS),
        "mountOptions": sorted([*_MOUNT_OPTIONS, *mountopts.PROPAGATION]),
        "linux": {
            "namespaces": sorted(config.NAMESPACES),
            "capabilities": list(caps.NAMES),
            "cgroup": {"v1": True, "v2": True, "systemd": False, "systemdUser": False},
            "seccomp": seccomp_doc,
            "apparmor": {"enabled": False},
            "selinux": {"enabled": False},
            "intelRdt": {"enabled": False},
        },
        "annotations": {"io.pyreconcile.runtime": "builtin"},
    }
