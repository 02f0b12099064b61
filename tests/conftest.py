"""Shared fixtures: privileged-test gating, throw-away engine roots, a busybox
rootfs, and leak checks that fail a test which leaves anything behind."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "scripts"))
sys.path.insert(0, str(REPO))

import busybox_rootfs  # noqa: E402

from tests.support import leaks  # noqa: E402

REQUIRE_PRIVILEGED = os.environ.get("PYRECONCILE_REQUIRE_PRIVILEGED") == "1"


def _privileged_reason() -> str | None:
    """Why privileged tests cannot run here, or None when they can."""
    if os.geteuid() != 0:
        return "needs root"
    if not os.path.exists("/proc/self/ns/mnt"):
        return "needs namespaces"
    if not os.path.exists(busybox_rootfs.BUSYBOX):
        return f"needs {busybox_rootfs.BUSYBOX} (apt-get install busybox-static)"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/integration" in str(item.fspath) or "/integration/" in str(item.fspath):
            item.add_marker(pytest.mark.privileged)


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("privileged") is None:
        return
    reason = _privileged_reason()
    if reason is None:
        return
    if REQUIRE_PRIVILEGED:
        pytest.fail(f"privileged test cannot run ({reason}) and PYRECONCILE_REQUIRE_PRIVILEGED=1")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def busybox_tar(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A reproducible busybox rootfs tarball (import it as an image)."""
    path = tmp_path_factory.mktemp("busybox") / "busybox-rootfs.tar"
    busybox_rootfs.write_tar(str(path))
    return path


@pytest.fixture
def busybox_dir(tmp_path: Path) -> Path:
    """A fresh busybox rootfs directory (an OCI bundle's rootfs)."""
    path = tmp_path / "rootfs"
    busybox_rootfs.write_dir(str(path))
    return path


class Roots:
    """Throw-away persistent and run roots and a cgroup parent of one test."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.root = base / "root"
        self.run_root = base / "run"
        self.cgroup_parent = f"pyreconcile-test-{uuid.uuid4().hex[:10]}"
        self.root.mkdir(parents=True)
        self.run_root.mkdir(parents=True)

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            PYRECONCILE_ROOT=str(self.root),
            PYRECONCILE_RUN_ROOT=str(self.run_root),
            PYRECONCILE_CGROUP_PARENT=self.cgroup_parent,
        )
        return env

    def leftovers(self) -> list[str]:
        found = [f"mount {m}" for m in leaks.mounts_under(str(self.base))]
        found += [
            f"process {pid}: {cmd}" for pid, cmd in leaks.processes_mentioning(str(self.base))
        ]
        found += [f"cgroup {d}" for d in leaks.cgroup_children(self.cgroup_parent)]
        found += [f"link {name}" for name in leaks.links_with_alias(self.link_alias_prefix)]
        if leaks.nft_table_exists("inet", self.nft_table):
            found.append(f"nftables table inet {self.nft_table}")
        return found

    @property
    def nft_table(self) -> str:
        """The engine's nftables table (runtime.net.names: cgroup parent and root)."""
        from runtime.net import names

        return names.engine_tag(self.cgroup_parent, str(self.root))

    @property
    def link_alias_prefix(self) -> str:
        from runtime.net import names

        return f"{names.ALIAS_PREFIX}{self.nft_table}:"


@pytest.fixture
def roots(tmp_path: Path) -> Iterator[Roots]:
    """Engine roots for one test; at teardown nothing of it may be left.

    Tests clean up after themselves (``pyreconcile delete``); this fixture then
    checks the host and, if something leaked, removes it and fails the test.
    """
    base = Path(f"/tmp/pyrt-{uuid.uuid4().hex[:12]}")
    base.mkdir()
    r = Roots(base)
    yield r
    left = r.leftovers()
    force_cleanup(r)
    left += [f"cgroup {d} (could not be removed)" for d in leaks.cgroup_dirs(r.cgroup_parent)]
    shutil.rmtree(base, ignore_errors=True)
    if left:
        pytest.fail("test left behind:\n  " + "\n  ".join(left))


def force_cleanup(r: Roots) -> None:
    """Best effort, by pid, path and this engine's names only: never by process name."""
    for name in leaks.links_with_alias(r.link_alias_prefix):
        subprocess.run(["ip", "link", "del", name], check=False, capture_output=True)
    subprocess.run(
        ["nft", "delete", "table", "inet", r.nft_table], check=False, capture_output=True
    )
    for pid, _ in leaks.processes_mentioning(str(r.base)):
        try:
            os.kill(pid, 9)
        except ProcessLookupError:
            pass
    for point in sorted(leaks.mounts_under(str(r.base)), key=len, reverse=True):
        subprocess.run(["umount", "-l", point], check=False, capture_output=True)
    for d in leaks.cgroup_dirs(r.cgroup_parent):
        for sub, _, files in os.walk(d):
            if "cgroup.procs" in files:
                with open(os.path.join(sub, "cgroup.procs")) as f:
                    for pid in f.read().split():
                        try:
                            os.kill(int(pid), 9)
                        except ProcessLookupError:
                            pass
        for sub, dirs, _ in sorted(os.walk(d, topdown=False), reverse=True):
            for name in dirs:
                try:
                    os.rmdir(os.path.join(sub, name))
                except OSError:
                    pass
        try:
            os.rmdir(d)
        except OSError:
            pass
