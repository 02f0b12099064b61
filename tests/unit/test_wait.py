"""apply --wait's judgement, on the fake runtime with a fake clock."""

from __future__ import annotations

import pytest

from reconciler import wait
from runtime import client
from runtime.fake import FakeRuntime
from tests.support.stacks import desired_from_docs, doc


def _setup() -> tuple[FakeRuntime, wait.model.DesiredState]:
    rt = FakeRuntime()
    rt.add_image("busybox", client.ImageConfig(cmd=("sh",)))
    desired = desired_from_docs(
        "s",
        [
            doc("Container", "init", {"image": "busybox"}),
            doc(
                "Container",
                "app",
                {
                    "image": "busybox",
                    "restart": "always",
                    "dependsOn": [{"name": "init", "condition": "completed"}],
                },
            ),
            doc("Container", "web", {"image": "busybox", "restart": "always"}),
        ],
    )
    return rt, desired


def test_goals() -> None:
    _, desired = _setup()
    assert wait.goals(desired) == {"init": "completed", "app": "running", "web": "running"}


def test_up_when_one_shots_completed_and_the_rest_runs() -> None:
    rt, desired = _setup()
    rt.add_image("busybox")
    for name in ("init", "app", "web"):
        rt.create_container(client.ContainerConfig(name=f"s_{name}", image="busybox"))
        rt.start_container(f"s_{name}")
    pending, failed = wait.check(rt, desired)
    assert [p.name for p in pending] == ["init"] and failed == []
    rt.crash("s_init", 0)
    assert wait.check(rt, desired) == ([], [])


def test_timeout_lists_what_is_pending_and_failure_is_immediate() -> None:
    rt, desired = _setup()
    now = [0.0]
    with pytest.raises(wait.WaitTimedOut) as timed_out:
        wait.wait_until_up(
            rt, desired, 5.0, sleep=lambda s: now.__setitem__(0, now[0] + s), clock=lambda: now[0]
        )
    assert "container/init: wants completed, is absent" in str(timed_out.value)
    for name in ("init", "app", "web"):
        rt.create_container(client.ContainerConfig(name=f"s_{name}", image="busybox"))
        rt.start_container(f"s_{name}")
    rt.crash("s_web", 0)  # restart always: its shim would restart it, so it is pending
    rt.crash("s_init", 2)
    with pytest.raises(wait.WaitFailed, match=r"container/init: wants completed, is exited \(2\)"):
        wait.wait_until_up(rt, desired, 5.0, sleep=lambda s: None)
