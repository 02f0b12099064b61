"""The loop's rounds on the fake runtime and a fake clock: converge, keep the last
good revision, hold flapping containers, tell terminal errors from retryable ones."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.daemon import config, controller, events, flap, metrics, sources
from runtime import errors
from runtime.fake import FakeRuntime

STACK = """\
apiVersion: pyreconcile/v1
kind: Container
metadata: {{name: web}}
spec:
  image: docker.io/library/busybox:latest
  command: [sleep, "1000"]
  env: {{GREETING: {greeting}}}
"""


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def loop(
    tmp_path: Path, busybox_tar: Path
) -> tuple[controller.Controller, FakeRuntime, Path, Clock]:
    fake = FakeRuntime()
    fake.import_image(str(busybox_tar), "docker.io/library/busybox:latest")
    directory = tmp_path / "web"
    directory.mkdir()
    (directory / "stack.yaml").write_text(STACK.format(greeting="one"))
    clock = Clock()
    ctl = controller.Controller(
        fake,
        str(tmp_path / "run"),
        events.EventLog(clock=clock),
        metrics.Metrics(),
        resync=60.0,
        flaps=flap.FlapTracker(window=60, threshold=3, base_hold=10),
        clock=clock,
        wall=clock,
        rand=lambda: 0.5,
    )
    source = sources.FileSource(config.SourceConfig(name="web", watch=(str(directory),)))
    ctl.set_sources([source])
    return ctl, fake, directory, clock


def types(ctl: controller.Controller) -> list[str]:
    return [e.type for e in ctl.events.recent()]


def test_a_round_converges_then_waits_for_the_resync(
    loop: tuple[controller.Controller, FakeRuntime, Path, Clock],
) -> None:
    ctl, fake, _directory, _clock = loop
    assert ctl.reconcile("web") == 0.0  # changes made: look again at once
    assert fake.get_container("web_web").status == "running"
    assert ctl.reconcile("web") == pytest.approx(60.0)  # in sync: the resync (±10%)
    status = ctl.status_of("web")
    assert status is not None and status.stack == "web" and status.revision
    assert "revision_applied" in types(ctl)
    ready = next(c for c in status.conditions if c.type == "Ready")
    assert ready.status == "True"


def test_an_invalid_revision_keeps_the_last_good_one_and_is_reported_once(
    loop: tuple[controller.Controller, FakeRuntime, Path, Clock],
) -> None:
    ctl, fake, directory, _clock = loop
    ctl.reconcile("web")
    ctl.reconcile("web")
    before = fake.get_container("web_web").id
    (directory / "stack.yaml").write_text(STACK.format(greeting="two").replace("env:", "evn:"))
    for _ in range(3):
        assert ctl.reconcile("web") == pytest.approx(60.0)
    assert fake.get_container("web_web").id == before
    assert types(ctl).count("source_invalid") == 1
    status = ctl.status_of("web")
    assert status is not None and status.last_error and "evn" in status.last_error
    (directory / "stack.yaml").write_text(STACK.format(greeting="two"))
    assert ctl.reconcile("web") == 0.0
    assert fake.get_container("web_web").id != before
    assert "source_valid" in types(ctl)


def test_a_source_that_never_loaded_is_terminal(tmp_path: Path) -> None:
    ctl = controller.Controller(
        FakeRuntime(), str(tmp_path / "run"), events.EventLog(), metrics.Metrics()
    )
    missing = sources.FileSource(
        config.SourceConfig(name="gone", watch=(str(tmp_path / "nope.yaml"),))
    )
    ctl.set_sources([missing])
    assert ctl.reconcile("gone") is None  # nothing to apply: wait for a change
    assert "source_invalid" in types(ctl)


def test_self_heal_restarts_then_holds_a_crash_loop(
    loop: tuple[controller.Controller, FakeRuntime, Path, Clock],
) -> None:
    ctl, fake, _directory, clock = loop
    ctl.reconcile("web")
    ctl.reconcile("web")
    for _ in range(3):
        fake.crash("web_web", 1)
        clock.now += 1
        assert ctl.reconcile("web") == 0.0
        assert fake.get_container("web_web").status == "running"
    assert types(ctl).count("container_flapping") == 1
    fake.crash("web_web", 1)
    clock.now += 1
    wait = ctl.reconcile("web")
    assert fake.get_container("web_web").status == "exited"  # held back
    assert wait is not None and 0 < wait <= 10
    clock.now += wait
    assert ctl.reconcile("web") == 0.0
    assert fake.get_container("web_web").status == "running"


def test_an_operator_stop_is_respected(
    loop: tuple[controller.Controller, FakeRuntime, Path, Clock],
) -> None:
    ctl, fake, _directory, _clock = loop
    ctl.reconcile("web")
    fake.stop_container("web_web", operator=True)
    assert ctl.reconcile("web") == pytest.approx(60.0)
    assert fake.get_container("web_web").status == "exited"


def test_two_sources_for_one_stack_is_a_terminal_error(
    loop: tuple[controller.Controller, FakeRuntime, Path, Clock], tmp_path: Path
) -> None:
    ctl, _fake, directory, _clock = loop
    ctl.reconcile("web")
    other = sources.FileSource(config.SourceConfig(name="copy", watch=(str(directory),)))
    ctl.set_sources([*ctl.sources(), other])
    with pytest.raises(errors.FailedPrecondition) as found:
        ctl.reconcile("copy")
    assert controller.is_terminal(found.value)
    assert "kept by source web" in str(found.value)


def test_config_file(tmp_path: Path) -> None:
    path = tmp_path / "daemon.toml"
    path.write_text(
        'resync = "2m"\nworkers = 2\n[[source]]\nname = "web"\nwatch = ["web"]\n'
        '[[source]]\nname = "infra"\ngit = "file:///srv/infra.git"\ninterval = "250ms"\n'
    )
    loaded = config.load_config(str(path))
    assert loaded.resync == 120.0 and loaded.workers == 2
    assert loaded.source[0].watch == (str(tmp_path / "web"),)
    assert loaded.source[1].kind == "git" and loaded.source[1].interval == 0.25
    path.write_text('[[source]]\nname = "web"\nwatch = ["a"]\nwatsh = 1\n')
    with pytest.raises(errors.InvalidSpec) as bad:
        config.load_config(str(path))
    assert "watsh" in str(bad.value)
    path.write_text('metrics_address = "0.0.0.0:9323"\n')
    with pytest.raises(errors.InvalidSpec, match="loopback"):
        config.load_config(str(path))
