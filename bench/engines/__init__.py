"""One module per engine under test, each run privately below the workspace:
``pyrec`` (pyreconcile's CLI and its warm API), ``oci`` (bundle runtimes:
pyreconcile-runc, runc, crun), ``dockerd`` (a private dockerd, and the docker
CLI and docker-compose pointed at it), ``podman`` (private storage and config)."""

from __future__ import annotations

__all__: list[str] = []
