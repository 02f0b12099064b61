"""Routes of the runtime's objects: containers (:mod:`~reconciler.daemon.api_containers`),
images, volumes and networks (:mod:`~reconciler.daemon.api_objects`), in one table.

Each route is one method of ``runtime.client.RuntimeClient``, so
:class:`reconciler.daemon.remote.RemoteRuntime` can be the same Protocol over HTTP.
"""

from __future__ import annotations

from reconciler.daemon import api_containers, api_objects
from reconciler.daemon.api_containers import EXEC_PROTOCOL
from reconciler.daemon.server import Route

__all__ = ["EXEC_PROTOCOL", "ROUTES"]

ROUTES: list[Route] = api_containers.ROUTES + api_objects.ROUTES
