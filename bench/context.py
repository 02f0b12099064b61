"""What the suites of one run share: the workspace, the peers found, the rootfs,
the run sizes, and the engines that are started once and stopped at the end
(a private dockerd, podman's private storage).

An engine that cannot start is remembered as failed with its reason, so every
contestant that needs it reports the same reason and the run goes on.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable

from bench import images, peers, proc, workspace
from bench.engines import dockerd, podman

__all__ = ["Context", "Sizes", "Unavailable"]


class Unavailable(Exception):
    """A contestant cannot run here: a peer is missing or its engine did not start."""


@dataclasses.dataclass(frozen=True)
class Sizes:
    """How many rounds each suite runs (``--quick`` picks the small ones)."""

    start_runs: int
    start_warmup: int
    apply_sizes: tuple[int, ...]
    apply_runs: int
    apply_warmup: int
    memory_rounds: int
    memory_containers: int
    diff_sizes: tuple[int, ...]
    diff_runs: int
    pull_runs: int = 10
    pull_warmup: int = 1

    @classmethod
    def full(cls) -> Sizes:
        return cls(30, 3, (10, 50), 5, 1, 3, 20, (10, 100, 1000), 10)

    @classmethod
    def quick(cls) -> Sizes:
        return cls(5, 1, (10, 50), 1, 0, 1, 20, (10, 100), 3, pull_runs=3)

    def with_runs(self, runs: int) -> Sizes:
        return dataclasses.replace(
            self,
            start_runs=runs,
            apply_runs=runs,
            memory_rounds=runs,
            diff_runs=runs,
            pull_runs=runs,
        )


class Context:
    def __init__(
        self,
        ws: workspace.Workspace,
        found: dict[str, peers.Peer],
        sizes: Sizes,
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.ws = ws
        self.peers = found
        self.sizes = sizes
        self.notes: list[str] = []
        self.problems: list[str] = []
        self._log = log or (lambda text: print(text, file=sys.stderr, flush=True))
        self._rootfs: images.Rootfs | None = None
        self._dockerd: dockerd.Dockerd | None = None
        self._dockerd_error: str | None = None
        self._podman: podman.Podman | None = None
        self._podman_error: str | None = None

    def log(self, text: str) -> None:
        self._log(text)

    def peer(self, name: str) -> peers.Peer:
        """The peer, or ``Unavailable`` with the reason it is missing."""
        peer = self.peers[name]
        if not peer.ok:
            raise Unavailable(f"{name} {peer.missing}")
        return peer

    @property
    def rootfs(self) -> images.Rootfs:
        if self._rootfs is None:
            self._rootfs = images.prepare(self.ws)
        return self._rootfs

    def dockerd(self) -> dockerd.Dockerd:
        """The private dockerd with the bench image imported (started on first use)."""
        if self._dockerd_error is not None:
            raise Unavailable(self._dockerd_error)
        if self._dockerd is None:
            for name in ("dockerd", "docker"):
                self.peer(name)
            self.log("starting a private dockerd")
            d = dockerd.Dockerd(self.ws, self.peers)
            self._dockerd = d
            try:
                d.start()
                d.import_image(self.rootfs.tar, images.IMAGE)
            except proc.CommandFailed as exc:
                self._dockerd_error = f"dockerd did not start: {exc}"
                raise Unavailable(self._dockerd_error) from exc
        return self._dockerd

    def podman(self) -> podman.Podman:
        """podman with private storage and the bench image imported."""
        if self._podman_error is not None:
            raise Unavailable(self._podman_error)
        if self._podman is None:
            for name in ("podman", "conmon", "runc"):
                self.peer(name)
            p = podman.Podman(self.ws, self.peers)
            self._podman = p
            try:
                p.import_image(self.rootfs.tar, images.IMAGE)
            except proc.CommandFailed as exc:
                self._podman_error = f"podman import failed: {exc}"
                raise Unavailable(self._podman_error) from exc
        return self._podman

    def close(self) -> None:
        """Stop the shared engines (each problem is kept for the report)."""
        if self._dockerd is not None:
            self.log("stopping the private dockerd")
            self.problems += self._dockerd.stop()
            self._dockerd = None
        if self._podman is not None:
            self.problems += self._podman.close()
            self._podman = None
