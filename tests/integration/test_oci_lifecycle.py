"""The builtin OCI runtime's verbs against the real kernel: create, start,
state, kill, delete — called in-process, as the shim calls them."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from runtime import errors
from runtime.oci import lifecycle, state
from tests.integration import test_oci_support as support


@pytest.fixture
def oci(roots: Any, busybox_dir: Path) -> Iterator[support.Env]:
    with support.environment(roots.base, busybox_dir, roots.cgroup_parent) as env:
        yield env


def test_true_goes_created_running_stopped_and_delete_leaves_nothing(oci: support.Env) -> None:
    pid = oci.create("t1", ["/bin/true"])
    st = lifecycle.state(oci.root, "t1")
    assert st == {
        "ociVersion": state.OCI_VERSION,
        "id": "t1",
        "status": "created",
        "pid": pid,
        "bundle": str(oci.base / "bundle-t1"),
        "annotations": {},
    }
    dirs = state.load(oci.root, "t1").cgroup_dirs
    assert dirs and all(str(pid) in Path(d, "cgroup.procs").read_text().split() for d in dirs)
    assert [c["id"] for c in lifecycle.list_containers(oci.root)] == ["t1"]
    lifecycle.start(oci.root, "t1")
    assert lifecycle.state(oci.root, "t1")["status"] in ("running", "stopped")
    assert support.wait(pid) == 0
    assert lifecycle.state(oci.root, "t1") | {"pid": -1} == st | {"status": "stopped", "pid": -1}
    lifecycle.delete(oci.root, "t1")
    assert not os.path.exists(os.path.join(oci.root, "t1"))
    assert not any(os.path.exists(d) for d in dirs)
    with pytest.raises(errors.NotFound):
        lifecycle.state(oci.root, "t1")
    with pytest.raises(errors.NotFound):
        lifecycle.delete(oci.root, "t1")


def test_bin_true_and_exit_codes_pass_through(oci: support.Env) -> None:
    assert oci.run("ok", ["/bin/true"]).code == 0
    assert oci.run("seven", ["sh", "-c", "exit 7"]).code == 7
    assert oci.run("max", ["sh", "-c", "exit 255"]).code == 255
    # pid 1 of a pid namespace ignores signals it has no handler for, even SIGKILL from inside
    assert oci.run("pid1", ["sh", "-c", "kill -9 $$; exit 3"]).code == 3


def test_kill_and_the_wrong_state_errors(oci: support.Env) -> None:
    pid = oci.create("k1", ["sleep", "1000"])
    with pytest.raises(errors.AlreadyExists, match="already exists"):
        oci.create("k1", ["sleep", "1000"])
    lifecycle.start(oci.root, "k1")
    assert lifecycle.state(oci.root, "k1")["status"] == "running"
    with pytest.raises(errors.FailedPrecondition, match="already running"):
        lifecycle.start(oci.root, "k1")
    with pytest.raises(errors.FailedPrecondition, match="not stopped"):
        lifecycle.delete(oci.root, "k1")
    lifecycle.kill(oci.root, "k1", 9)
    assert support.wait(pid) == 128 + 9
    assert lifecycle.state(oci.root, "k1")["status"] == "stopped"
    with pytest.raises(errors.FailedPrecondition, match="not running"):
        lifecycle.kill(oci.root, "k1", 15)
    with pytest.raises(
        errors.FailedPrecondition, match="cannot start a container that has stopped"
    ):
        lifecycle.start(oci.root, "k1")
    lifecycle.kill(oci.root, "k1", 9, all=True)  # nothing left: no error
    lifecycle.delete(oci.root, "k1")
    with pytest.raises(errors.NotFound):
        lifecycle.kill(oci.root, "k1", 9)


def test_kill_all_reaches_every_process_in_the_cgroup(oci: support.Env) -> None:
    pid = oci.create("ka", ["sh", "-c", "sleep 1000 & sleep 1000 & wait"])
    lifecycle.start(oci.root, "ka")
    dirs = state.load(oci.root, "ka").cgroup_dirs
    support.until(lambda: len(Path(dirs[0], "cgroup.procs").read_text().split()) == 3)
    lifecycle.kill(oci.root, "ka", 9, all=True)
    assert support.wait(pid) == 128 + 9
    support.until(lambda: Path(dirs[0], "cgroup.procs").read_text().split() == [])
    lifecycle.delete(oci.root, "ka")


def test_force_delete_of_a_running_container(oci: support.Env) -> None:
    pid = oci.create("f1", ["sleep", "1000"])
    lifecycle.start(oci.root, "f1")
    dirs = state.load(oci.root, "f1").cgroup_dirs
    lifecycle.delete(oci.root, "f1", force=True)
    assert support.wait(pid) == 128 + 9
    assert not os.path.exists(os.path.join(oci.root, "f1"))
    assert not any(os.path.exists(d) for d in dirs)


def test_delete_of_a_created_container_kills_its_init(oci: support.Env) -> None:
    pid = oci.create("c1", ["sleep", "1000"])
    lifecycle.delete(oci.root, "c1")
    assert support.wait(pid) == 128 + 9
    assert lifecycle.list_containers(oci.root) == []


def test_executable_not_found_is_a_create_error_that_leaves_nothing(oci: support.Env) -> None:
    with pytest.raises(
        errors.InvalidSpec, match=r'exec: "nope": executable file not found in \$PATH'
    ):
        oci.create("nx", ["nope"])
    assert not os.path.exists(os.path.join(oci.root, "nx"))
    assert not any(
        os.path.exists(os.path.join(d, "nx")) for d in support.cgroup_dirs_of(oci.cgroup_parent)
    )


def test_a_mount_failure_is_reported_with_the_destination(oci: support.Env) -> None:
    def bad(doc: dict[str, Any]) -> None:
        doc["mounts"].append({"destination": "/mnt/x", "type": "nosuchfs", "source": "none"})

    with pytest.raises(errors.RuntimeError_, match="mount nosuchfs none at /mnt/x"):
        oci.create("mf", ["true"], bad)
    assert lifecycle.list_containers(oci.root) == []


def test_pid_file_and_invalid_ids(oci: support.Env) -> None:
    pid_file = oci.base / "init.pid"
    pid = oci.create("pf", ["true"], pid_file=str(pid_file))
    assert pid_file.read_text() == str(pid)
    lifecycle.start(oci.root, "pf")
    assert support.wait(pid) == 0
    lifecycle.delete(oci.root, "pf")
    with pytest.raises(errors.InvalidSpec, match="invalid container id"):
        lifecycle.create(oci.root, "../x", str(oci.base))


def test_a_config_without_process_can_be_created_but_not_started(oci: support.Env) -> None:
    """``process`` is optional in config.json; ``start`` must then fail, and the
    container is stopped (runtime-tools start)."""
    pid = oci.create("np", ["true"], lambda doc: doc.pop("process"))
    assert lifecycle.state(oci.root, "np")["status"] == "created"
    with pytest.raises(errors.FailedPrecondition, match="has no process"):
        lifecycle.start(oci.root, "np")
    assert support.wait(pid) == 128 + 9
    assert lifecycle.state(oci.root, "np")["status"] == "stopped"
    lifecycle.delete(oci.root, "np")


def test_a_direct_create_clones_the_init_from_the_caller_into_all_its_cgroups(
    oci: support.Env,
) -> None:
    """What the shim's helper asks for (``direct``): no intermediate, the init is
    the caller's child, born into its v2 cgroup, in its v1 ones before it runs."""
    pid = oci.create("direct1", ["/bin/true"], direct=True)
    with open(f"/proc/{pid}/stat") as f:
        assert int(f.read().rsplit(")", 1)[1].split()[1]) == os.getpid()
    dirs = state.load(oci.root, "direct1").cgroup_dirs
    assert dirs and all(str(pid) in Path(d, "cgroup.procs").read_text().split() for d in dirs)
    lifecycle.start(oci.root, "direct1")
    assert support.wait(pid) == 0
    lifecycle.delete(oci.root, "direct1")
    assert not any(os.path.exists(d) for d in dirs)
