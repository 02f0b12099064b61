"""The one input every contestant gets: a busybox-static root filesystem.

Built once per run by ``scripts/busybox_rootfs.py`` (reproducible tarball, and
a directory for OCI bundles) and imported into each engine under the same
name, ``localhost/bench/busybox:latest``: pyreconcile with ``image import``,
dockerd with ``docker import``, podman with ``podman import``.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
from collections.abc import Callable
from typing import cast

from bench import workspace

__all__ = ["IMAGE", "Rootfs", "prepare"]

IMAGE = "localhost/bench/busybox:latest"
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(REPO, "scripts", "busybox_rootfs.py")


@dataclasses.dataclass(frozen=True)
class Rootfs:
    tar: str  # a rootfs tarball (import it as an image)
    directory: str  # the same tree, unpacked (an OCI bundle's root.path)


def _script_function(name: str) -> Callable[[str], None]:
    spec = importlib.util.spec_from_file_location("busybox_rootfs", SCRIPT)
    if spec is None or spec.loader is None:
        raise FileNotFoundError(f"{SCRIPT} is missing: the bench runs from a pyreconcile checkout")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return cast(Callable[[str], None], getattr(module, name))


def prepare(ws: workspace.Workspace) -> Rootfs:
    directory = ws.path("image")
    tar = os.path.join(directory, "busybox-rootfs.tar")
    rootfs = os.path.join(directory, "rootfs")
    _script_function("write_tar")(tar)
    _script_function("write_dir")(rootfs)
    return Rootfs(tar=tar, directory=rootfs)
