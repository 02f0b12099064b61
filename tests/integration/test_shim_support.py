"""Helpers for the shim's integration tests: bundles, runtime modes, cleanup.

Imported by the other ``test_shim_*`` modules (a module of its own would be a
conftest, which is shared with other parts of the tree). Every container made
through :class:`ShimEnv` is stopped, deleted from its runtime and its cgroup
parent removed at teardown, so the ``roots`` leak check sees nothing.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from runtime import errors
from runtime.shim import launch, restore, statedir
from runtime.shim.client import ShimClient
from tests.conftest import Roots
from tests.support import leaks

RUNC = "/usr/sbin/runc"


def builtin_available() -> bool:
    try:
        return importlib.util.find_spec("runtime.oci.lifecycle") is not None
    except ImportError:
        return False


MODES = [
    pytest.param(RUNC, id="runc"),
    pytest.param(
        None,
        id="builtin",
        marks=pytest.mark.skipif(
            not builtin_available(), reason="runtime.oci.lifecycle is not written yet"
        ),
    ),
]


def builtin_exec_available() -> bool:
    if not builtin_available():
        return False
    from runtime.oci import lifecycle

    return hasattr(lifecycle, "exec_process")


#: runtime modes that can ``exec`` (the builtin one once its library has exec)
EXEC_MODES = [
    pytest.param(RUNC, id="runc"),
    pytest.param(
        None,
        id="builtin",
        marks=pytest.mark.skipif(
            not builtin_exec_available(), reason="runtime.oci.lifecycle has no exec_process yet"
        ),
    ),
]


def wait_until(predicate: Callable[[], Any], timeout: float = 15.0, what: str = "it") -> Any:
    """Poll ``predicate`` until it returns something truthy (no fixed sleeps)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.01)


def pid_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def ppid_of(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[1])


def shim_events(c: Container) -> list[dict[str, Any]]:
    """The shim's own event log (``shim.log``)."""
    with open(c.bundle / statedir.SHIM_LOG) as f:
        return [json.loads(line) for line in f]


class Container:
    def __init__(self, env: ShimEnv, cid: str, bundle: Path, log_path: Path) -> None:
        self.env = env
        self.id = cid
        self.bundle = bundle
        self.log_path = log_path
        self.info: launch.ShimInfo | None = None

    def options(self, **overrides: Any) -> launch.ShimOptions:
        values: dict[str, Any] = dict(
            container_id=self.id,
            bundle=str(self.bundle),
            runtime_root=str(self.env.runtime_root),
            log_path=str(self.log_path),
            runtime_binary=self.env.runtime_binary,
        )
        values.update(overrides)
        return launch.ShimOptions(**values)

    def spawn(self, **overrides: Any) -> launch.ShimInfo:
        self.info = launch.spawn_shim(self.options(**overrides))
        return self.info

    @property
    def socket_path(self) -> str:
        return str(self.bundle / statedir.SOCKET)

    def client(self, timeout: float = 10.0) -> ShimClient:
        return ShimClient(self.socket_path, timeout)

    def exit_record(self) -> dict[str, object] | None:
        return statedir.read_exit(str(self.bundle))

    def wait_exit_file(self, timeout: float = 15.0) -> dict[str, object]:
        return wait_until(self.exit_record, timeout, f"the exit file of {self.id}")  # type: ignore[no-any-return]

    def wait_shim_gone(self, timeout: float = 15.0) -> None:
        assert self.info is not None
        pid = self.info.pid
        wait_until(lambda: not pid_alive(pid), timeout, f"shim {pid} to exit")

    def logs(self, **kwargs: Any) -> list[dict[str, str]]:
        from runtime.shim import logs

        return list(logs.read_logs(str(self.log_path), **kwargs))

    def runtime_delete(self) -> None:
        """What the engine does after the shim exits: delete the stopped container."""
        if self.env.runtime_binary is None:
            from runtime.oci import lifecycle

            try:
                lifecycle.delete(str(self.env.runtime_root), self.id, force=True)
            except errors.NotFound:
                pass
            return
        subprocess.run(
            [RUNC, "--root", str(self.env.runtime_root), "delete", "--force", self.id],
            capture_output=True,
            check=False,
        )


class ShimEnv:
    def __init__(self, roots: Roots, rootfs: Path, runtime_binary: str | None) -> None:
        self.roots = roots
        self.rootfs = rootfs
        self.runtime_binary = runtime_binary
        self.runtime_root = roots.run_root / "runc"
        self.containers: list[Container] = []

    def container(
        self,
        args: list[str],
        *,
        name: str = "c",
        env: list[str] | None = None,
        memory_limit: int | None = None,
        host_pid: bool = False,
        log_dir: Path | None = None,
    ) -> Container:
        cid = f"{name}-{uuid.uuid4().hex[:8]}"
        bundle = self.roots.run_root / "containers" / cid
        bundle.mkdir(parents=True)
        config = base_config()
        config["process"]["terminal"] = False
        config["process"]["args"] = args
        if env is not None:
            config["process"]["env"] = env
        config["root"] = {"path": str(self.rootfs), "readonly": False}
        config["hostname"] = cid[:60]
        config["linux"]["cgroupsPath"] = f"/{self.roots.cgroup_parent}/{cid}"
        if memory_limit is not None:
            config["linux"].setdefault("resources", {})["memory"] = {"limit": memory_limit}
        if host_pid:
            config["linux"]["namespaces"] = [
                ns for ns in config["linux"]["namespaces"] if ns["type"] != "pid"
            ]
        (bundle / "config.json").write_text(json.dumps(config, indent=1))
        log_path = (log_dir or self.roots.root / "containers" / cid) / f"{cid}-json.log"
        c = Container(self, cid, bundle, log_path)
        self.containers.append(c)
        return c

    def cleanup(self) -> None:
        for c in self.containers:
            shim_pid = statedir.read_pid(str(c.bundle / statedir.SHIM_PID))
            if restore.shim_alive(str(c.bundle)) and shim_pid:
                try:
                    c.client(timeout=5).stop(signal="SIGKILL", timeout=1)
                except errors.RuntimeError_:
                    os.kill(shim_pid, signal.SIGKILL)
                _wait_gone(str(c.bundle))
            c.runtime_delete()
        for d in leaks.cgroup_dirs(self.roots.cgroup_parent):
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


def _wait_gone(bundle: str) -> None:
    wait_until(lambda: not restore.shim_alive(bundle), 10, f"the shim of {bundle} to go")


_BASE_CONFIG: dict[str, Any] | None = None


def base_config() -> dict[str, Any]:
    """``runc spec``'s config.json (made once), as the base of every test bundle."""
    global _BASE_CONFIG
    if _BASE_CONFIG is None:
        tmp = Path(f"/tmp/pyrt-spec-{uuid.uuid4().hex[:8]}")
        tmp.mkdir()
        try:
            subprocess.run([RUNC, "spec", "--bundle", str(tmp)], check=True)
            _BASE_CONFIG = json.loads((tmp / "config.json").read_text())
        finally:
            (tmp / "config.json").unlink(missing_ok=True)
            tmp.rmdir()
    return json.loads(json.dumps(_BASE_CONFIG))  # type: ignore[no-any-return]


@pytest.fixture(params=EXEC_MODES)
def exec_env(request: pytest.FixtureRequest, roots: Roots, busybox_dir: Path) -> Iterator[ShimEnv]:
    """Like ``shim_env``, in the runtime modes that can exec."""
    env = ShimEnv(roots, busybox_dir, request.param)
    try:
        yield env
    finally:
        env.cleanup()


def zombie_children(pid: int) -> list[int]:
    """The children of ``pid`` in state Z (exited, not reaped)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        if fields[0] == "Z" and int(fields[1]) == pid:
            found.append(int(entry))
    return found


@pytest.fixture(params=MODES)
def shim_env(request: pytest.FixtureRequest, roots: Roots, busybox_dir: Path) -> Iterator[ShimEnv]:
    """Containers for one test, in one runtime mode (runc binary, builtin library)."""
    env = ShimEnv(roots, busybox_dir, request.param)
    try:
        yield env
    finally:
        env.cleanup()
