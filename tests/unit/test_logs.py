"""The engine's lazy logger: below the CLI's level nothing is written (and
structlog need not be imported); at or above it, the line is written through
structlog with the bound context."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest
import structlog

from reconciler import logs


@pytest.fixture(autouse=True)
def _reset() -> Iterator[None]:
    yield
    logs._threshold = None
    logs._configured = False
    structlog.reset_defaults()  # it was configured to write to a captured stderr


def test_below_the_level_nothing_is_written(capsys: pytest.CaptureFixture[str]) -> None:
    logs.use_console(0)
    log = logs.get_logger("test").bind(stack="s")
    log.info("change_applied", op="create")
    log.debug("round_planned")
    assert capsys.readouterr().err == ""


def test_at_the_level_the_line_carries_its_context(capsys: pytest.CaptureFixture[str]) -> None:
    logs.use_console(1)
    logs.get_logger("test").bind(round=1, stack="web").info("change_applied", op="create")
    err = capsys.readouterr().err
    assert "change_applied" in err and "round=1" in err and "op=create" in err
    assert "stack_name=web" in err and "\nweb" not in err  # a name, not a stack trace


def test_a_quiet_cli_run_does_not_import_structlog() -> None:
    code = (
        "import sys; from reconciler import engine, logs; logs.use_console(0); "
        "engine.log.bind(stack='s').info('x'); print('structlog' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
