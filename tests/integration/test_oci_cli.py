"""``pyreconcile-runc`` end to end, as containerd or a person would drive it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration import test_oci_support as support

_SCRIPT = Path(sys.executable).with_name("pyreconcile-runc")
RUNC = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "runtime.oci.cli"]


class Cli:
    def __init__(self, base: Path, rootfs: Path, cgroup_parent: str) -> None:
        self.base, self.rootfs, self.cgroup_parent = base, rootfs, cgroup_parent
        self.root = str(base / "runc")

    def __call__(
        self, *args: str, prefix: tuple[str, ...] = ()
    ) -> subprocess.CompletedProcess[str]:
        """Run it with stdout/stderr in files, not pipes: a created container
        inherits them, and a pipe would not see EOF until the container exits."""
        argv = [*prefix, *RUNC, "--root", self.root, *args]
        with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
            code = subprocess.run(argv, stdout=out, stderr=err, timeout=60, check=False).returncode
            out.seek(0)
            err.seek(0)
            return subprocess.CompletedProcess(argv, code, out.read(), err.read())

    def bundle(self, cid: str, args: list[str]) -> str:
        """``spec`` a bundle, then point it at our rootfs and cgroup parent."""
        bundle = self.base / f"bundle-{cid}"
        bundle.mkdir()
        assert self("spec", "--bundle", str(bundle)).returncode == 0
        doc: dict[str, Any] = json.loads((bundle / "config.json").read_text())
        doc["process"].update(terminal=False, args=args)
        doc["root"]["path"] = str(self.rootfs)
        doc["linux"]["cgroupsPath"] = f"/{self.cgroup_parent}/{cid}"
        (bundle / "config.json").write_text(json.dumps(doc))
        return str(bundle)

    def state(self, cid: str) -> dict[str, Any]:
        r = self("state", cid)
        assert r.returncode == 0, r.stderr
        result: dict[str, Any] = json.loads(r.stdout)
        return result


@pytest.fixture
def cli(roots: Any, busybox_dir: Path) -> Iterator[Cli]:
    c = Cli(roots.base, busybox_dir, roots.cgroup_parent)
    yield c
    for item in json.loads(c("list", "--format", "json").stdout or "[]"):
        c("delete", "--force", item["id"])
    for d in support.cgroup_dirs_of(roots.cgroup_parent):
        if os.path.isdir(d):
            os.rmdir(d)


def test_run_in_the_foreground_passes_output_and_exit_code(cli: Cli) -> None:
    bundle = cli.bundle("r1", ["sh", "-c", "echo hello from $(hostname); exit 3"])
    r = cli("run", "--bundle", bundle, "r1")
    assert (r.returncode, r.stdout) == (3, "hello from runc\n"), r.stderr
    assert cli("list", "-q").stdout == ""
    assert not os.path.exists(os.path.join(cli.root, "r1"))


def test_create_start_state_kill_delete(cli: Cli) -> None:
    bundle = cli.bundle("c1", ["sleep", "1000"])
    pid_file = cli.base / "c1.pid"
    r = cli("create", "--bundle", bundle, "--pid-file", str(pid_file), "c1")
    assert r.returncode == 0, r.stderr
    pid = int(pid_file.read_text())
    st = cli.state("c1")
    assert (st["status"], st["pid"], st["bundle"], st["ociVersion"]) == (
        "created", pid, bundle, "1.0.2",
    )  # fmt: skip
    assert st["rootfs"] == str(cli.rootfs) and st["created"].endswith("Z")
    listed = json.loads(cli("list", "--format", "json").stdout)
    assert [(i["id"], i["status"]) for i in listed] == [("c1", "created")]
    assert cli("start", "c1").returncode == 0
    assert cli.state("c1")["status"] == "running"
    r = cli("delete", "c1")
    assert r.returncode == 1 and "not stopped" in r.stderr
    assert cli("kill", "c1", "KILL").returncode == 0
    support.until(lambda: cli.state("c1")["status"] == "stopped")
    assert cli("delete", "c1").returncode == 0
    assert cli("list", "--format", "json").stdout.strip() == "[]"


def test_errors_are_one_line_on_stderr_and_json_in_the_log(cli: Cli) -> None:
    log = cli.base / "runtime.log"
    r = cli("--log", str(log), "--log-format", "json", "state", "ghost")
    assert r.returncode == 1
    assert r.stderr == f"ERRO[0000] container ghost does not exist in {cli.root}\n"
    entry = json.loads(log.read_text())
    assert entry["level"] == "error" and "ghost does not exist" in entry["msg"]
    bundle = cli.bundle("bad", ["no-such-program"])
    r = cli("run", "--bundle", bundle, "bad")
    assert r.returncode == 1
    assert 'exec: "no-such-program": executable file not found in $PATH' in r.stderr
    assert cli("kill", "ghost", "NOTASIGNAL").stderr.startswith("ERRO[0000] unknown signal")


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash to set up fd 3")
def test_preserve_fds_passes_exactly_the_first_n(cli: Cli) -> None:
    secret = cli.base / "passed"
    secret.write_text("through fd 3\n")
    bundle = cli.bundle("pf", ["sh", "-c", "cat <&3; cat <&4 || echo no fd 4"])
    r = cli(
        "run", "--preserve-fds", "1", "--bundle", bundle, "pf",
        prefix=("bash", "-c", 'exec 3<"$0" 4<"$0"; exec "$@"', str(secret)),
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert r.stdout == "through fd 3\nno fd 4\n"


def test_run_detached_keeps_running(cli: Cli) -> None:
    bundle = cli.bundle("d1", ["sleep", "1000"])
    r = cli("run", "--detach", "--bundle", bundle, "d1")
    assert r.returncode == 0, r.stderr
    assert cli.state("d1")["status"] == "running"
    assert cli("delete", "--force", "d1").returncode == 0
    assert cli("state", "d1").returncode == 1
