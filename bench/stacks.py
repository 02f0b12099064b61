"""The same stack of N long-running containers, written for each engine.

Every container runs busybox ``sh`` that exits on SIGTERM (``trap 'exit 0'
TERM; sleep … & wait``), so teardown measures the engines and not a grace
period; the grace period is 1 s everywhere anyway. Each mounts the one named
volume ``data`` at ``/data`` and carries ``GEN`` in its environment: changing it
on one container is the "one-container change".

Networking is equal, not bridged: pyreconcile has only ``host`` and ``none``
today, so every container gets a private network namespace with loopback only
(pyreconcile: no ``networks:``; compose: ``network_mode: none``; podman:
``--network none``).
TODO(bridge): put every contestant's containers on one bridge network once
pyreconcile has bridge networks (the issue's setup).
"""

from __future__ import annotations

import json

from bench import images

__all__ = ["COMMAND", "compose", "container_names", "kube", "pyreconcile"]

COMMAND = ("/bin/sh", "-c", "trap 'exit 0' TERM; sleep 100000 & wait")


def container_names(n: int) -> list[str]:
    return [f"c{i:03d}" for i in range(n)]


def _gen(name: str, changed: str | None) -> str:
    return "1" if name == changed else "0"


def pyreconcile(n: int, changed: str | None = None, image: str = images.IMAGE) -> str:
    """Manifests: one Volume and ``n`` Containers, ``n + 1`` objects (``$`` would need
    ``$$``; there is none)."""
    docs = ["apiVersion: pyreconcile/v1\nkind: Volume\nmetadata: {name: data}\n"]
    for name in container_names(n):
        docs.append(
            "apiVersion: pyreconcile/v1\n"
            "kind: Container\n"
            f"metadata: {{name: {name}}}\n"
            "spec:\n"
            f"  image: {image}\n"
            f"  command: {json.dumps(list(COMMAND))}\n"
            f'  env: {{GEN: "{_gen(name, changed)}"}}\n'
            '  mounts: ["data:/data"]\n'
            "  stopGracePeriod: 1s\n"
        )
    return "---\n".join(docs)


def compose(n: int, changed: str | None = None, image: str = images.IMAGE) -> str:
    """A docker-compose 1.29 file (format 2.4) with the same services."""
    services = {
        name: {
            "image": image,
            "command": list(COMMAND),
            "environment": {"GEN": _gen(name, changed)},
            "network_mode": "none",
            "volumes": ["data:/data"],
            "stop_grace_period": "1s",
        }
        for name in container_names(n)
    }
    return json.dumps({"version": "2.4", "services": services, "volumes": {"data": {}}}, indent=1)


def kube(n: int, changed: str | None = None, image: str = images.IMAGE) -> str:
    """``podman kube play`` input: a PVC ``data`` and one Pod per container."""
    docs = [
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": "data"},
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": "1Gi"}},
            },
        }
    ]
    for name in container_names(n):
        docs.append(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": name},
                "spec": {
                    "terminationGracePeriodSeconds": 1,
                    "containers": [
                        {
                            "name": "main",
                            "image": image,
                            "command": list(COMMAND),
                            "env": [{"name": "GEN", "value": _gen(name, changed)}],
                            "volumeMounts": [{"name": "data", "mountPath": "/data"}],
                        }
                    ],
                    "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}],
                },
            }
        )
    return "---\n".join(json.dumps(d) + "\n" for d in docs)
