"""DESIGN.md §1's import rules, checked on the source (not by memory).

- ``schemas`` imports nothing of ours (and no I/O libraries).
- ``reconciler.plan`` is pure: schemas and itself, no runtime, no logging, no clock.
- ``reconciler`` reaches ``runtime`` only through ``runtime.client`` and ``runtime.errors``.
- ``runtime`` never imports ``reconciler``.
- what runs under ``python -I -S`` (the shim, the OCI runtime, libc wrappers) imports
  only the standard library and those same packages.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent.parent
STDLIB = set(sys.stdlib_module_names)


def _modules(package: str) -> list[Path]:
    return sorted((REPO / package.replace(".", "/")).rglob("*.py"))


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.extend((node.lineno, f"{node.module}.{alias.name}") for alias in node.names)
            found.append((node.lineno, node.module))
    return found


def _violations(package: str, allowed: Callable[[str], bool]) -> list[str]:
    bad = []
    for path in _modules(package):
        for line, name in _imports(path):
            if not allowed(name):
                bad.append(f"{path.relative_to(REPO)}:{line}: imports {name}")
    return bad


def _ours(name: str) -> bool:
    return name.split(".")[0] in ("schemas", "reconciler", "runtime")


def test_schemas_import_nothing_of_ours() -> None:
    assert _violations("schemas", lambda n: not _ours(n) or n.startswith("schemas")) == []


def test_planner_is_pure() -> None:
    forbidden = (
        "logging",
        "structlog",
        "time",
        "datetime",
        "os",
        "subprocess",
        "socket",
        "random",
        "runtime",
    )

    def allowed(n: str) -> bool:
        if n.split(".")[0] in forbidden:
            return False
        return not _ours(n) or n.startswith(("schemas", "reconciler.plan", "reconciler.naming"))

    assert _violations("reconciler.plan", allowed) == []


def test_reconciler_uses_only_the_runtime_facade() -> None:
    def allowed(n: str) -> bool:
        if not n.startswith("runtime"):
            return True
        return n in ("runtime", "runtime.client", "runtime.errors") or n.startswith(
            ("runtime.client.", "runtime.errors.")
        )

    assert _violations("reconciler", allowed) == []


def test_runtime_never_imports_reconciler() -> None:
    assert _violations("runtime", lambda n: not n.startswith("reconciler")) == []


@pytest.mark.parametrize("package", ["runtime.shim", "runtime.oci", "runtime.sys"])
def test_low_layers_are_stdlib_only(package: str) -> None:
    def allowed(n: str) -> bool:
        top = n.split(".")[0]
        if top in STDLIB or top == "__future__" or n == "runtime":
            return True
        return n.startswith(
            ("runtime.errors", "runtime.sys", "runtime.oci", "runtime.shim", "runtime.client")
        )

    assert _violations(package, allowed) == []
