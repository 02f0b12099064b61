"""The ``pyreconcile`` command: the daemon fast path for ``apply`` and ``diff``
when it can take the command line (:mod:`reconciler.cli.quick`), else the full
CLI (:mod:`reconciler.cli.main`). Nothing heavier than the stdlib is imported
before that choice."""

from __future__ import annotations

import sys

__all__ = ["main"]


def main() -> None:
    from reconciler.cli import quick

    try:
        code = quick.run(sys.argv[1:])
    except KeyboardInterrupt:
        sys.stderr.write("error: interrupted\n")
        sys.exit(130)
    if code is not None:
        sys.exit(code)
    from reconciler.cli.main import main as full

    full()
