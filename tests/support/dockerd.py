"""A private ``dockerd`` for interoperability tests: its own data root, exec
root, socket, config file and containerd, no bridge and no iptables rules, so
it touches nothing of the host's Docker (if any). Started per test module,
stopped by its pid, and every mount left under its directory is removed."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import signal
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

from tests.support import leaks
from tests.support.registry import wait_for

DOCKERD = shutil.which("dockerd")
DOCKER = shutil.which("docker")


@dataclasses.dataclass
class Dockerd:
    base: Path
    process: subprocess.Popen[bytes]

    @property
    def socket(self) -> str:
        return str(self.base / "docker.sock")

    def docker(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        assert DOCKER is not None
        return subprocess.run(
            [DOCKER, "-H", f"unix://{self.socket}", *args],
            capture_output=True, text=True, timeout=timeout, check=False,
            env={**os.environ, "DOCKER_CONFIG": str(self.base / "client")},
        )  # fmt: skip

    def ok(self, *args: str) -> str:
        done = self.docker(*args)
        assert done.returncode == 0, f"docker {' '.join(args)}: {done.stderr}"
        return done.stdout


@contextlib.contextmanager
def running() -> Iterator[Dockerd]:
    assert DOCKERD is not None and DOCKER is not None
    base = Path(f"/tmp/pyrt-dockerd-{uuid.uuid4().hex[:8]}")
    base.mkdir()
    (base / "daemon.json").write_text("{}")
    log = open(base / "dockerd.log", "wb")  # noqa: SIM115
    process = subprocess.Popen(
        [
            DOCKERD, "--config-file", str(base / "daemon.json"),
            "--data-root", str(base / "data"), "--exec-root", str(base / "exec"),
            "--pidfile", str(base / "dockerd.pid"), "-H", f"unix://{base / 'docker.sock'}",
            "--bridge", "none", "--iptables=false", "--ip6tables=false", "--ip-masq=false",
            "--userland-proxy=false", "--log-level", "warn",
        ],
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    daemon = Dockerd(base, process)
    try:

        def up() -> bool:
            if process.poll() is not None:
                raise RuntimeError((base / "dockerd.log").read_text()[-3000:])
            return os.path.exists(daemon.socket) and daemon.docker("version").returncode == 0

        wait_for(up, "dockerd answering", timeout=60)
        yield daemon
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.kill(process.pid, signal.SIGKILL)
                process.wait(timeout=30)
        log.close()
        for pid, _ in leaks.processes_mentioning(str(base)):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for point in sorted(leaks.mounts_under(str(base)), key=len, reverse=True):
            subprocess.run(["umount", "-l", point], check=False, capture_output=True)
        shutil.rmtree(base, ignore_errors=True)
