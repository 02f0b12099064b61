"""The peers: where their binaries are, which version, and how to install them.

Binaries are looked up in the Debian package's directories first (``/usr/bin``,
``/usr/sbin``), then on PATH, so a stray build in ``/usr/local/bin`` (this host
has a Docker 28 client there) does not replace the packaged peer silently; the
path used is recorded with the version.

``install`` runs ``apt-get install`` for what is missing. On a host with an init
system, Debian's postinst would start the system dockerd (which creates
``docker0`` and iptables rules); a ``policy-rc.d`` that denies service starts is
put in place for the install when none exists, and removed after it.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil

from bench import proc

__all__ = ["PEERS", "Peer", "PeerSpec", "detect", "install"]


@dataclasses.dataclass(frozen=True)
class PeerSpec:
    name: str
    binary: str
    package: str
    version_args: tuple[str, ...] = ("--version",)


@dataclasses.dataclass(frozen=True)
class Peer:
    name: str
    path: str | None
    version: str = ""
    missing: str = ""  # why it cannot be used; empty when it can

    @property
    def ok(self) -> bool:
        return self.path is not None and not self.missing

    def to_json(self) -> dict[str, str]:
        if self.ok:
            return {"path": self.path or "", "version": self.version}
        return {"missing": self.missing}


PEERS: tuple[PeerSpec, ...] = (
    PeerSpec("runc", "runc", "runc"),
    PeerSpec("crun", "crun", "crun"),
    PeerSpec("dockerd", "dockerd", "docker.io"),
    PeerSpec("docker", "docker", "docker.io"),
    PeerSpec("containerd", "containerd", "containerd", ("--version",)),
    PeerSpec("docker-compose", "docker-compose", "docker-compose", ("version", "--short")),
    PeerSpec("podman", "podman", "podman"),
    PeerSpec("conmon", "conmon", "conmon"),
    # podman kube play builds its pause image from catatonit (a Recommends of podman)
    PeerSpec("catatonit", "catatonit", "catatonit", ("--version",)),
    PeerSpec("skopeo", "skopeo", "skopeo"),
    PeerSpec("docker-registry", "docker-registry", "docker-registry"),
    PeerSpec("tar", "tar", "tar"),
    PeerSpec("hyperfine", "hyperfine", "hyperfine"),
    PeerSpec("unshare", "unshare", "util-linux"),
)

PACKAGED_DIRS = ("/usr/bin", "/usr/sbin", "/bin", "/sbin")


def _which(binary: str) -> str | None:
    for directory in PACKAGED_DIRS:
        path = os.path.join(directory, binary)
        if os.access(path, os.X_OK):
            return path
    return shutil.which(binary)


def _version(path: str, args: tuple[str, ...]) -> str:
    try:
        out = proc.run([path, *args], timeout=30, check=False)
    except proc.CommandFailed:
        return "?"
    text = (out.stdout or out.stderr).strip()
    match = re.search(r"\d+\.\d+[\w.+~-]*", text)
    return match.group(0) if match else (text.splitlines() or ["?"])[0].strip()


def detect() -> dict[str, Peer]:
    found = {}
    for spec in PEERS:
        path = _which(spec.binary)
        if path is None:
            found[spec.name] = Peer(
                spec.name,
                None,
                missing=f"not installed (apt-get install {spec.package}, "
                "or `python -m bench run --install`)",
            )
        else:
            found[spec.name] = Peer(spec.name, path, _version(path, spec.version_args))
    return found


def install(names: list[str] | None = None) -> None:
    """apt-get install the Debian packages of the missing peers (needs root)."""
    wanted = {s.name for s in PEERS} if names is None else set(names)
    packages = sorted({s.package for s in PEERS if s.name in wanted and _which(s.binary) is None})
    if not packages:
        return
    if os.geteuid() != 0:
        raise proc.CommandFailed(
            f"installing {' '.join(packages)} needs root: run as root or install them yourself"
        )
    guard = "/usr/sbin/policy-rc.d"
    made_guard = False
    if not os.path.exists(guard):
        with open(guard, "w") as f:
            f.write(
                "#!/bin/sh\n# pyreconcile bench: no service starts during the install\nexit 101\n"
            )
        os.chmod(guard, 0o755)
        made_guard = True
    try:
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        proc.run(["apt-get", "update", "-qq"], env=env, timeout=600)
        proc.run(
            ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *packages],
            env=env,
            timeout=1800,
        )
    finally:
        if made_guard:
            os.unlink(guard)
