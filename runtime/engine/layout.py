"""Where the engine keeps its state (DESIGN.md §4).

Persistent root (``--root``, ``PYRECONCILE_ROOT``, default /var/lib/pyreconcile)::

    state.db                         SQLite metadata (WAL)
    content/blobs/sha256/<hex>       verified blobs (manifests, configs, layers)
    content/ingest/<ref>             blobs being written, fsynced then renamed
    snapshots/<id>/fs                an unpacked layer, or a container's upper dir
    snapshots/<id>/work              overlayfs work dir of an active snapshot
    containers/<id>/                 per container, persistent: logs
    volumes/<name>/_data             named volumes of the local driver

Run root (``--run-root``, ``PYRECONCILE_RUN_ROOT``, default /run/pyreconcile)::

    containers/<id>/                 the bundle and the shim's state dir:
        config.json rootfs/ shim.sock shim.pid init.pid exit shim.log
    runc/                            the builtin OCI runtime's --root (state.json per id)
    locks/                           flock files (one per stack, one for the store)
"""

from __future__ import annotations

import dataclasses
import os

DEFAULT_ROOT = "/var/lib/pyreconcile"
DEFAULT_RUN_ROOT = "/run/pyreconcile"
DEFAULT_CGROUP_PARENT = "pyreconcile"


@dataclasses.dataclass(frozen=True)
class Layout:
    root: str
    run_root: str
    cgroup_parent: str = DEFAULT_CGROUP_PARENT

    @classmethod
    def from_env(
        cls, root: str | None = None, run_root: str | None = None, cgroup_parent: str | None = None
    ) -> Layout:
        """Flags first, then ``PYRECONCILE_*`` variables, then the defaults."""
        return cls(
            root=os.path.abspath(root or os.environ.get("PYRECONCILE_ROOT") or DEFAULT_ROOT),
            run_root=os.path.abspath(
                run_root or os.environ.get("PYRECONCILE_RUN_ROOT") or DEFAULT_RUN_ROOT
            ),
            cgroup_parent=cgroup_parent
            or os.environ.get("PYRECONCILE_CGROUP_PARENT")
            or DEFAULT_CGROUP_PARENT,
        )

    # persistent
    @property
    def db_path(self) -> str:
        return os.path.join(self.root, "state.db")

    @property
    def content_dir(self) -> str:
        return os.path.join(self.root, "content")

    @property
    def snapshots_dir(self) -> str:
        return os.path.join(self.root, "snapshots")

    @property
    def volumes_dir(self) -> str:
        return os.path.join(self.root, "volumes")

    def container_dir(self, container_id: str) -> str:
        return os.path.join(self.root, "containers", container_id)

    def volume_dir(self, name: str) -> str:
        return os.path.join(self.volumes_dir, name)

    # run
    def bundle_dir(self, container_id: str) -> str:
        return os.path.join(self.run_root, "containers", container_id)

    @property
    def oci_root(self) -> str:
        return os.path.join(self.run_root, "runc")

    @property
    def locks_dir(self) -> str:
        return os.path.join(self.run_root, "locks")

    @property
    def api_socket(self) -> str:
        return os.path.join(self.run_root, "pyreconcile.sock")

    def ensure(self) -> None:
        """Create the top directories with safe modes (0700 for state, 0711 for run)."""
        for path, mode in (
            (self.root, 0o711),
            (self.content_dir, 0o700),
            (self.snapshots_dir, 0o700),
            (os.path.join(self.root, "containers"), 0o710),
            (self.volumes_dir, 0o701),
            (self.run_root, 0o711),
            (os.path.join(self.run_root, "containers"), 0o711),
            (self.oci_root, 0o700),
            (self.locks_dir, 0o700),
        ):
            os.makedirs(path, mode=mode, exist_ok=True)
