"""The daemon fast path for ``apply`` and ``diff`` (reconciler.cli.quick).

It must send what the typed client sends, print what the full CLI prints and
exit as it exits — side by side here against one daemon (the API server over
the fake runtime) — and leave every command line it does not fully understand
to the full CLI, having read and sent nothing.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog
from click.testing import CliRunner

from reconciler.cli import main as full_cli
from reconciler.cli import quick
from reconciler.daemon import api_types as T
from reconciler.daemon import codec
from runtime.fake import FakeRuntime
from tests.support import daemon

STACK = """\
apiVersion: pyreconcile/v1
kind: Volume
metadata: {{name: data, stack: quick, labels: {{gen: "{gen}"}}}}
---
apiVersion: pyreconcile/v1
kind: Network
metadata: {{name: backend, stack: quick}}
"""


@pytest.mark.parametrize(
    "argv",
    [
        ["apply"],  # no manifests: the full CLI says what to give
        ["apply", "plan.json"],  # a saved plan
        ["apply", "plan.json", "-f", "s.yaml"],
        ["-v", "apply", "-f", "s.yaml"],
        ["--version"],
        ["ps"],
        ["apply", "-f"],
        ["apply", "-qf", "s.yaml"],
        ["apply", "-f", "s.yaml", "-h"],
        ["apply", "-f", "s.yaml", "--timeout", "soon"],
        ["apply", "-f", "s.yaml", "--bogus"],
        ["diff", "-f", "s.yaml", "--out", "plan.json"],
        ["diff", "-f", "s.yaml", "-o", "yaml"],
        ["diff", "-f", "s.yaml", "--exit-code-style", "other"],
        ["diff", "-f", "s.yaml", "--"],
        ["--root"],
    ],
)
def test_a_command_line_it_does_not_fully_understand_is_left_alone(argv: list[str]) -> None:
    assert quick.parse(argv) is None


def test_it_reads_the_options_the_full_cli_reads() -> None:
    globals_ = ["--root=/r", "--run-root", "/rr"]
    options = ["-q", "--no-prune", "--prune-volumes", "--allow-data-loss", "--wait", "--timeout=7"]
    cmd = quick.parse([*globals_, "apply", "-f", "a.yaml", "--file=b", "--stack", "s", *options])
    assert cmd is not None and cmd.name == "apply" and cmd.run_root == "/rr"
    assert cmd.files == ["a.yaml", "b"]
    assert cmd.options == {
        **quick._DEFAULTS,
        "stack": "s",
        "quiet": True,
        "prune": False,
        "prune_volumes": True,
        "allow_data_loss": True,
        "wait": True,
        "timeout": 7.0,
    }
    cmd = quick.parse(["diff", "-f", "-", "-o", "json", "--exit-code-style=diff"])
    assert cmd is not None and cmd.files == ["-"]
    assert (cmd.options["output"], cmd.options["exit_code_style"]) == ("json", "diff")


def test_it_sends_what_the_typed_client_sends(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYRECONCILE_TEST_MARK", "1")
    cmd = quick.parse(["apply", "-f", "a.yaml", "--stack", "s", "--prune-volumes", "--wait"])
    assert cmd is not None
    inputs = {"files": ("a.yaml",), "cwd": os.getcwd(), "stdin": None}
    environ = tuple(os.environ.items())
    typed = T.ApplyRequest(
        **inputs,  # type: ignore[arg-type]
        environ=environ,
        stack="s",
        prune=True,
        prune_volumes=True,
        allow_data_loss=False,
        plan=None,
        plan_path="",
        wait=True,
        timeout=300.0,
    )
    assert quick.apply_body(cmd) == codec.encode(typed, T.ApplyRequest)
    cmd = quick.parse(["diff", "-f", "a.yaml", "-o", "json", "--no-prune"])
    assert cmd is not None
    typed_diff = T.DiffRequest(
        **inputs,  # type: ignore[arg-type]
        environ=environ,
        stack=None,
        prune=False,
        prune_volumes=False,
        output="json",
        colour=False,
        save=False,
    )
    assert quick.diff_body(cmd) == codec.encode(typed_diff, T.DiffRequest)


@pytest.fixture
def served() -> Iterator[Path]:
    """A daemon's API over the fake runtime, on ``<run root>/pyreconcile.sock``
    (its log lines, written in this process, kept out of the captured output)."""
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.CRITICAL))
    run_root = Path(tempfile.mkdtemp(prefix="pyrq-", dir="/tmp"))
    try:
        with daemon.serve(FakeRuntime(), str(run_root / "pyreconcile.sock")):
            yield run_root
    finally:
        shutil.rmtree(run_root, ignore_errors=True)
        structlog.reset_defaults()


def _both(
    run_root: Path, args: list[str], capsys: pytest.CaptureFixture[str]
) -> tuple[tuple[int, str, str], tuple[int, str, str]]:
    """(exit code, stdout, stderr) of the fast path, then of the full CLI."""
    argv = ["--run-root", str(run_root), *args]
    code = quick.run(argv)
    assert code is not None, "the fast path left the command to the full CLI"
    out = capsys.readouterr()
    full = CliRunner().invoke(full_cli.cli, argv, env={"PYRECONCILE_DAEMON": "always"})
    assert full.exception is None or isinstance(full.exception, SystemExit), full.output
    return (code, out.out, out.err), (full.exit_code, full.stdout, full.stderr)


def test_it_prints_and_exits_as_the_full_cli(
    served: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stack = tmp_path / "stack.yaml"
    stack.write_text(STACK.format(gen=0))
    f = ["-f", str(stack)]
    # the first apply (through the fast path) creates; the next ones have nothing to do
    assert quick.run(["--run-root", str(served), "apply", *f]) == 0
    assert "applied 2 changes" in capsys.readouterr().out
    quick_apply, full_apply = _both(served, ["apply", *f], capsys)
    assert quick_apply == full_apply == (0, "stack quick: in sync, nothing to do\n", "")
    quick_quiet, full_quiet = _both(served, ["apply", "-q", *f], capsys)
    assert quick_quiet == full_quiet == (0, "", "")
    in_sync, full_in_sync = _both(served, ["diff", *f], capsys)
    assert in_sync == full_in_sync and in_sync[0] == 0
    # drift: a changed label is a pending update (2; 1 in diff style)
    stack.write_text(STACK.format(gen=1))
    drift, full_drift = _both(served, ["diff", *f], capsys)
    assert drift == full_drift and drift[0] == 2 and "data" in drift[1]
    as_json, full_json = _both(
        served, ["diff", "-o", "json", "--exit-code-style", "diff", *f], capsys
    )
    assert as_json == full_json and as_json[0] == 1
    # a manifest that does not load: the problems, then the count, nothing changed
    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: pyreconcile/v1\nkind: Volume\nmetadata: {name: 7}\n")
    broken, full_broken = _both(served, ["apply", "-f", str(bad)], capsys)
    assert broken == full_broken and broken[0] == 1
    assert "nothing was changed" in broken[2] and "bad.yaml" in broken[2]
    broken_diff, full_broken_diff = _both(served, ["diff", "-f", str(bad)], capsys)
    assert broken_diff == full_broken_diff and broken_diff[0] == 1


def test_no_daemon_or_never_leaves_it_to_the_full_cli(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, served: Path
) -> None:
    stack = tmp_path / "stack.yaml"
    stack.write_text(STACK.format(gen=0))
    assert quick.run(["--run-root", str(tmp_path), "diff", "-f", str(stack)]) is None
    monkeypatch.setenv("PYRECONCILE_DAEMON", "never")
    assert quick.run(["--run-root", str(served), "diff", "-f", str(stack)]) is None
