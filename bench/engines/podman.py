"""podman with private storage, run root, tmp dir, network config and containers.conf.

Nothing of the host's podman state is used or changed: ``--root``, ``--runroot``,
``--tmpdir`` and ``--network-config-dir`` point below the workspace, and
``CONTAINERS_CONF`` points at a file of ours that selects the cgroupfs manager,
file events and runc. Two settings are forced by this host and apply to every
podman container in the bench:

- runc, not crun: podman's crun (1.8.1) refuses the hybrid cgroup layout;
- ``default_ulimits`` nofile=1024, nproc=4096: podman (rootful) asks for
  limits above this sandbox's hard limits, which root cannot raise here (no
  CAP_SYS_RESOURCE), and runc then fails to start the container. docker's and
  runc's defaults are at or below these.

At the end ``podman system reset --force`` removes its storage (and unmounts it);
the cgroup parents it made are removed by the workspace.
"""

from __future__ import annotations

import os

from bench import host, peers, proc, workspace

__all__ = ["Podman"]


class Podman:
    def __init__(self, ws: workspace.Workspace, found: dict[str, peers.Peer]) -> None:
        for name in ("podman", "conmon", "runc"):
            if not found[name].ok:
                raise proc.CommandFailed(f"{name} {found[name].missing}")
        self._ws = ws
        self.podman = found["podman"].path or "podman"
        self.version = found["podman"].version
        self.base = ws.path("podman")
        self.cgroup_parent = ws.cgroup("podman")
        # kube play has no --cgroup-parent: pods go below the cgroupfs default
        self.pod_cgroup_parent = "libpod_parent"
        self._pod_parent_existed = any(
            os.path.isdir(os.path.join(h, self.pod_cgroup_parent))
            for h in host.cgroup_hierarchies()
        )
        self.conf = os.path.join(self.base, "containers.conf")
        tmp = ws.path("podman", "tmp")
        with open(self.conf, "w") as f:
            f.write(
                "[containers]\n"
                'default_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]\n'
                "[engine]\n"
                'cgroup_manager = "cgroupfs"\n'
                'events_logger = "file"\n'
                'runtime = "runc"\n'
                f'tmp_dir = "{tmp}"\n'
            )
        self.globals = [
            "--root", os.path.join(self.base, "root"),
            "--runroot", os.path.join(self.base, "runroot"),
            "--tmpdir", tmp,
            "--network-config-dir", ws.path("podman", "net"),
            "--storage-driver", "overlay",
            "--cgroup-manager", "cgroupfs",
            "--events-backend", "file",
            "--runtime", found["runc"].path or "runc",
        ]  # fmt: skip

    def env(self) -> dict[str, str]:
        return dict(os.environ, CONTAINERS_CONF=self.conf)

    def cli(self, *args: str) -> list[str]:
        return [self.podman, *self.globals, *args]

    def run(self, *args: str, timeout: float = 300.0) -> str:
        return proc.run(self.cli(*args), env=self.env(), timeout=timeout).stdout

    def import_image(self, tar: str, reference: str) -> None:
        self.run("import", "--quiet", tar, reference, timeout=120)

    def close(self) -> list[str]:
        problems = []
        try:
            proc.run(self.cli("system", "reset", "--force"), env=self.env(), timeout=300)
        except proc.CommandFailed as exc:
            problems.append(f"podman system reset: {exc}")
        for name in [self.cgroup_parent] + (
            [] if self._pod_parent_existed else [self.pod_cgroup_parent]
        ):
            left = self._ws.remove_cgroups(name)
            problems += [f"cgroup {d} still has processes after podman's reset" for d in left]
        return problems
