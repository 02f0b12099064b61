"""pytest fixtures for the registry tests (import them into a test module).

Registries are session-scoped: one of each kind per xdist worker, each with
its own port and storage; tests use unique repository names so that they
never see each other's images. Engines are per test, on the ``roots``
fixture's throw-away directories.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from runtime import local
from runtime.engine import layout, registry
from tests.conftest import Roots
from tests.support import registry as reg

USERS = {"alice": "alice-secret", "bob": "bob-secret"}


def _grants(user: str | None, kind: str, name: str) -> set[str]:
    """alice may push and pull test/*; bob and anonymous only pull; nobody touches secret/*."""
    if kind != "repository" or name.startswith("secret/"):
        return set()
    if user == "alice":
        return {"pull", "push"}
    return {"pull"}


@pytest.fixture(scope="session")
def plain_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[reg.Registry]:
    with reg.running(tmp_path_factory.mktemp("plain-registry")) as r:
        yield r


@pytest.fixture(scope="session")
def basic_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[reg.Registry]:
    """htpasswd (bcrypt) over plain HTTP on loopback."""
    with reg.running(tmp_path_factory.mktemp("basic-registry"), users=USERS) as r:
        yield r


@pytest.fixture(scope="session")
def tls_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[reg.Registry]:
    """htpasswd (bcrypt) over TLS with a throw-away CA."""
    base = tmp_path_factory.mktemp("tls-registry")
    tls = reg.make_tls(base / "tls")
    with reg.running(base / "registry", tls=tls, users=USERS) as r:
        yield r


@pytest.fixture(scope="session")
def token_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[reg.Registry]:
    """Bearer token auth from a token server of our own (plain HTTP on loopback)."""
    base = tmp_path_factory.mktemp("token-registry")
    token = reg.TokenServer(base / "token", USERS, _grants)
    with reg.running(base / "registry", users=USERS, token=token) as r:
        yield r


def unique_repo(prefix: str = "test") -> str:
    return f"{prefix}/r{uuid.uuid4().hex[:10]}"


EngineFactory = Callable[..., local.LocalRuntime]


@pytest.fixture
def engines(roots: Roots) -> Iterator[EngineFactory]:
    """``engines(name, **options)``: a LocalRuntime on its own root below the test's
    roots, with registry options (Docker config and certs.d in the test's dirs)."""
    made: list[local.LocalRuntime] = []

    def make(name: str = "a", **overrides: object) -> local.LocalRuntime:
        base = Path(roots.base) / name
        options = registry.RegistryOptions(
            docker_config_dir=str(base / "docker"),
            certs_dirs=(str(base / "certs.d"),),
            backoff=0.01,
        )
        if overrides:
            import dataclasses

            options = dataclasses.replace(options, **overrides)  # type: ignore[arg-type]
        paths = layout.Layout(str(base / "root"), str(base / "run"), roots.cgroup_parent)
        runtime = local.LocalRuntime(paths, options)
        made.append(runtime)
        return runtime

    yield make
    for runtime in made:
        for c in runtime.list_containers():
            runtime.remove_container(c.name, force=True)
        runtime.close()


def trust(runtime: local.LocalRuntime, registry_: reg.Registry) -> None:
    """Put the registry's CA where the engine looks for it (certs.d/<host>/ca.crt)."""
    assert registry_.ca is not None
    opts = runtime._registries.options
    directory = Path(opts.certs_dirs[0]) / registry_.host
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "ca.crt").write_bytes(registry_.ca.read_bytes())
