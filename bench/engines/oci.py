"""OCI bundle runtimes: ``pyreconcile-runc``, ``runc`` and ``crun`` running one bundle.

One ``config.json`` made by ``pyreconcile-runc spec`` (runc's default spec) and
changed the same way for all three: ``terminal: false``, args ``/bin/true``,
root = the shared busybox rootfs directory (read-only), and a cgroupsPath below
the runtime's own cgroup parent. Each runtime gets its own bundle directory and
state root (``--root``) below the workspace; each run uses a new container id.

crun runs through ``NsRunner`` when the host's cgroups are hybrid (see
``bench/nsrunner.py``); the others are timed directly by the harness.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Sequence
from typing import Any, Protocol

from bench import host, proc, workspace

__all__ = ["BundleRuntime", "LocalRunner", "NsRunner", "Runner", "make_bundle"]

NSRUNNER = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "nsrunner.py")


class Runner(Protocol):
    def timed(self, argv: Sequence[str], cwd: str | None = None) -> float: ...

    def close(self) -> None: ...


class LocalRunner:
    """Times a command from the harness itself."""

    def timed(self, argv: Sequence[str], cwd: str | None = None) -> float:
        return proc.timed(argv, cwd=cwd)

    def close(self) -> None:
        pass


class NsRunner:
    """Times commands in a private mount namespace without the cgroup2 view (crun on hybrid)."""

    def __init__(self, log_path: str) -> None:
        argv = ["unshare", "-m", "--propagation", "private", sys.executable, "-I", NSRUNNER]
        if host.cgroup_layout() == "hybrid":
            argv += ["--umount", os.path.join(host.CGROUP_ROOT, "unified")]
        self._log = open(log_path, "ab")  # noqa: SIM115 (closed in close())
        self._proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
            start_new_session=True,
        )
        hello = self._read()
        if not hello.get("ready"):
            self.close()
            raise proc.CommandFailed(f"the mount-namespace runner did not start: {hello}")

    def _read(self) -> dict[str, Any]:
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline()
        if not line:
            raise proc.CommandFailed("the mount-namespace runner exited (see nsrunner.log)")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def timed(self, argv: Sequence[str], cwd: str | None = None) -> float:
        assert self._proc.stdin is not None
        self._proc.stdin.write(json.dumps({"argv": list(argv), "cwd": cwd}) + "\n")
        self._proc.stdin.flush()
        answer = self._read()
        if answer["rc"] != 0:
            tail = " / ".join(str(answer["stderr"]).strip().splitlines()[-3:])
            raise proc.CommandFailed(f"{' '.join(argv)} exited {answer['rc']}: {tail}")
        return float(answer["seconds"])

    def close(self) -> None:
        if self._proc.poll() is None:
            assert self._proc.stdin is not None
            self._proc.stdin.close()
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        if self._proc.stdout is not None:
            self._proc.stdout.close()
        self._log.close()


def make_bundle(directory: str, rootfs: str, cgroup_parent: str, spec_argv: Sequence[str]) -> str:
    """Write ``directory/config.json`` for ``/bin/true`` in ``rootfs``; return the bundle path."""
    os.makedirs(directory, exist_ok=True)
    proc.run([*spec_argv, "-b", directory])
    path = os.path.join(directory, "config.json")
    with open(path) as f:
        config = json.load(f)
    config["process"]["terminal"] = False
    config["process"]["args"] = ["/bin/true"]
    config["root"] = {"path": rootfs, "readonly": True}
    config.setdefault("linux", {})["cgroupsPath"] = f"/{cgroup_parent}/ctr"
    with open(path, "w") as f:
        json.dump(config, f, indent=1)
    return directory


class BundleRuntime:
    """One runtime's ``run`` of a fresh container from its bundle, per cycle."""

    def __init__(
        self,
        ws: workspace.Workspace,
        name: str,
        binary: str,
        label: str,
        rootfs: str,
        spec_argv: Sequence[str],
        runner: Runner,
    ) -> None:
        self.name = name
        self._ws = ws
        self._binary = binary
        self._state = ws.path(f"oci-{label}", "state")
        self.cgroup_parent = ws.cgroup(f"oci-{label}")
        self._bundle = make_bundle(
            ws.path(f"oci-{label}", "bundle"), rootfs, self.cgroup_parent, spec_argv
        )
        self._runner = runner
        self._n = 0

    def cycle(self) -> dict[str, float]:
        self._n += 1
        argv = [self._binary, "--root", self._state, "run", "-b", self._bundle, f"b{self._n}"]
        return {"total": self._runner.timed(argv, cwd=self._bundle)}

    def close(self) -> list[str]:
        self._runner.close()
        left = self._ws.remove_cgroups(self.cgroup_parent)
        return [f"cgroup {d} still has processes" for d in left]
