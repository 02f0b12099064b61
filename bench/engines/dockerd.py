"""A private dockerd for the run: its own data root, exec root, pidfile, socket,
config file and cgroup parent, all below the workspace.

It is started with ``--bridge=none --iptables=false --ip-masq=false
--ip-forward=false`` so that it never touches this host's networking (every
suite uses ``--network none`` / ``network_mode: none``), and it starts its own
containerd (whose state and socket then live under the exec root). The harness
stops it by its pid (SIGTERM, then SIGKILL after a grace period) once every
container it made is removed.
"""

from __future__ import annotations

import json
import os

from bench import host, peers, proc, workspace

__all__ = ["Dockerd"]


class Dockerd:
    def __init__(self, ws: workspace.Workspace, found: dict[str, peers.Peer]) -> None:
        for name in ("dockerd", "docker"):
            if not found[name].ok:
                raise proc.CommandFailed(f"{name} {found[name].missing}")
        self._ws = ws
        self.dockerd = found["dockerd"].path or "dockerd"
        self.docker = found["docker"].path or "docker"
        self.version = found["dockerd"].version
        self.base = ws.path("dockerd")
        self.socket = os.path.join(self.base, "docker.sock")
        self.cgroup_parent = ws.cgroup("docker")
        self._daemon: proc.Daemon | None = None

    @property
    def host(self) -> str:
        return f"unix://{self.socket}"

    def env(self) -> dict[str, str]:
        """Environment for docker and docker-compose: this daemon, no user config."""
        return dict(
            os.environ,
            DOCKER_HOST=self.host,
            DOCKER_CONFIG=self._ws.path("dockerd", "client-config"),
        )

    def cli(self, *args: str) -> list[str]:
        return [self.docker, "-H", self.host, *args]

    def start(self) -> None:
        config = os.path.join(self.base, "daemon.json")
        with open(config, "w") as f:
            json.dump({}, f)
        argv = [
            self.dockerd,
            "--config-file", config,
            "--data-root", os.path.join(self.base, "data"),
            "--exec-root", os.path.join(self.base, "exec"),
            "--pidfile", os.path.join(self.base, "dockerd.pid"),
            "-H", self.host,
            "--bridge=none",
            "--iptables=false",
            "--ip-masq=false",
            "--ip-forward=false",
            "--cgroup-parent", f"/{self.cgroup_parent}",
            "--exec-opt", "native.cgroupdriver=cgroupfs",
        ]  # fmt: skip
        self._daemon = proc.Daemon(
            argv, log_path=os.path.join(self.base, "dockerd.log"), env=self.env()
        )
        daemon = self._daemon

        def ready() -> bool:
            if not daemon.alive():
                raise proc.CommandFailed(f"dockerd exited at start: {daemon.log_tail()}")
            return proc.run(self.cli("version"), env=self.env(), check=False).returncode == 0

        proc.poll(ready, 60.0, "dockerd to answer on its socket", interval=0.1)

    def import_image(self, tar: str, reference: str) -> None:
        proc.run(self.cli("import", tar, reference), env=self.env(), timeout=120)

    def remove_all_containers(self) -> None:
        ids = proc.run(self.cli("ps", "-aq"), env=self.env(), check=False).stdout.split()
        if ids:
            proc.run(self.cli("rm", "-f", "-v", *ids), env=self.env(), check=False)
        proc.run(self.cli("volume", "prune", "-f"), env=self.env(), check=False)

    def stop(self) -> list[str]:
        """Remove what is left, stop the daemon by pid; return problems (for the report).

        dockerd bind-mounts its data root onto itself (shared propagation) and
        unmounts it when it shuts down; if it exited early or left the mount, the
        mounts below the data root are detached here and the fact is reported.
        """
        problems: list[str] = []
        if self._daemon is None:
            return problems
        daemon = self._daemon
        self._daemon = None
        if daemon.alive():
            self.remove_all_containers()
        else:
            problems.append(f"dockerd had exited before the end of the run: {daemon.log_tail()}")
        if not daemon.stop(grace=60.0):
            problems.append("dockerd did not stop within 60s of SIGTERM and was killed")
        data = os.path.join(self.base, "data")
        for point in sorted(host.mounts_under(data), key=len, reverse=True):
            proc.run(["umount", "-l", point], check=False)
            problems.append(
                f"dockerd left {point} mounted after it stopped (unmounted by the harness); "
                f"its log ends: {daemon.log_tail(3)}"
            )
        left = self._ws.remove_cgroups(self.cgroup_parent)
        problems += [f"cgroup {d} still has processes after dockerd stopped" for d in left]
        return problems
