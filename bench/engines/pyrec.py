"""pyreconcile under test: its CLI with throw-away roots, and its warm engine API.

Each ``Pyreconcile`` has its own persistent root, run root and cgroup parent
(``--root``/``--run-root`` through ``PYRECONCILE_ROOT``, ``PYRECONCILE_RUN_ROOT``,
``PYRECONCILE_CGROUP_PARENT``), so contestants never share state with each other
or with anything else on the host. The binaries are the ones installed next to
the harness's interpreter (``.venv/bin``): the code of this checkout.
"""

from __future__ import annotations

import os
import sys

from bench import proc, workspace
from runtime import client

__all__ = ["Pyreconcile", "binary"]


def binary(name: str) -> str:
    """A console script of this checkout (``.venv/bin/<name>``), else from PATH."""
    here = os.path.join(os.path.dirname(sys.executable), name)
    return here if os.access(here, os.X_OK) else name


class Pyreconcile:
    def __init__(self, ws: workspace.Workspace, label: str) -> None:
        self._ws = ws
        self.base = ws.path(f"pyreconcile-{label}")
        self.root = ws.path(f"pyreconcile-{label}", "root")
        self.run_root = ws.path(f"pyreconcile-{label}", "run")
        self.cgroup_parent = ws.cgroup(f"pyr-{label}")
        self._api: client.RuntimeClient | None = None

    def env(self) -> dict[str, str]:
        return dict(
            os.environ,
            PYRECONCILE_ROOT=self.root,
            PYRECONCILE_RUN_ROOT=self.run_root,
            PYRECONCILE_CGROUP_PARENT=self.cgroup_parent,
        )

    def cli(self, *args: str) -> list[str]:
        return [binary("pyreconcile"), *args]

    def run(self, *args: str, timeout: float = 600.0) -> str:
        return proc.run(self.cli(*args), env=self.env(), timeout=timeout).stdout

    def import_image(self, tar: str, reference: str) -> None:
        self.run("image", "import", tar, "--tag", reference)

    def api(self) -> client.RuntimeClient:
        """The engine in this process, as ``apply`` drives it (opened once, kept warm)."""
        if self._api is None:
            self._api = client.open_local(self.root, self.run_root, self.cgroup_parent)
        return self._api

    def close(self) -> list[str]:
        """Remove every container and volume left in these roots; return problems."""
        problems: list[str] = []
        rt = self.api()
        try:
            for c in rt.list_containers():
                try:
                    rt.remove_container(c.name, force=True)
                except Exception as exc:
                    problems.append(f"pyreconcile: remove container {c.name}: {exc}")
            for v in rt.list_volumes():
                try:
                    rt.remove_volume(v.name)
                except Exception as exc:
                    problems.append(f"pyreconcile: remove volume {v.name}: {exc}")
        finally:
            rt.close()
            self._api = None
        left = self._ws.remove_cgroups(self.cgroup_parent)
        problems += [f"cgroup {d} still has processes" for d in left]
        return problems
