"""Where the daemon's socket is: light enough for every CLI start to ask
(the API client, with ``http.client`` and the API types, is imported only
when a socket is there)."""

from __future__ import annotations

import os

__all__ = ["SOCKET_NAME", "default_socket"]

SOCKET_NAME = "pyreconcile.sock"


def default_socket(run_root: str | None) -> str:
    """``PYRECONCILE_HOST`` (``unix:///path`` or a path), else ``<run root>/pyreconcile.sock``."""
    host = os.environ.get("PYRECONCILE_HOST")
    if host:
        return host[len("unix://") :] if host.startswith("unix://") else host
    base = run_root or os.environ.get("PYRECONCILE_RUN_ROOT") or "/run/pyreconcile"
    return os.path.join(os.path.abspath(base), SOCKET_NAME)
