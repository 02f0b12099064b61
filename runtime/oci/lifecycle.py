"""The builtin OCI runtime, as a library: the verbs of ``runc``.

The shim calls these in-process (no interpreter start per verb);
``pyreconcile-runc`` (:mod:`runtime.oci.cli`) wraps them for everyone else.
``root`` is the runtime's state dir (like ``runc --root``). Errors are
``runtime.errors`` categories: unknown id NotFound, existing id AlreadyExists,
bad config InvalidSpec (naming the field), wrong state FailedPrecondition.
Stdlib only and cheap to import (the shim runs ``python -I -S``).
"""

from __future__ import annotations

from runtime.oci.create import create
from runtime.oci.delete import delete
from runtime.oci.kill import kill
from runtime.oci.start import start
from runtime.oci.state import list_containers, state

__all__ = ["create", "delete", "kill", "list_containers", "start", "state"]
