"""The shim's wire format and its stdlib-lean helpers (jsonio, signals), options parsing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from runtime import errors
from runtime.shim import jsonio, launch, protocol, signals
from runtime.shim import main as shim_main

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    "value",
    [{"a": [1, 2.5, None, True, 'é\n"\\']}, [], "x", 0, {"nested": {"k": [{}]}}],
)
def test_jsonio_round_trips_like_json(value: object) -> None:
    text = jsonio.dumps(value)
    assert json.loads(text) == value
    assert jsonio.loads(text) == value
    assert jsonio.loads(json.dumps(value, indent=2).encode()) == value


def test_jsonio_is_compact_keeps_utf8_and_sorts_on_request() -> None:
    assert jsonio.dumps({"b": 1, "a": "é"}) == '{"b":1,"a":"é"}'
    assert jsonio.dumps({"b": 1, "a": 2}, sort_keys=True) == '{"a":2,"b":1}'
    assert jsonio.quote('say "hi"\n') == '"say \\"hi\\"\\n"'
    assert jsonio.dumps({"t": object()}, default=lambda o: "obj") == '{"t":"obj"}'
    with pytest.raises(TypeError):
        jsonio.dumps(object())
    with pytest.raises(ValueError):
        jsonio.dumps(float("nan"))


@pytest.mark.parametrize(
    "text", ["", "   ", "{bad", "[1,]", "1 2", "NaN", '{"a": Infinity}', b"\xff"]
)
def test_jsonio_rejects_what_json_rejects(text: str | bytes) -> None:
    with pytest.raises(ValueError):
        jsonio.loads(text)


def test_the_shim_imports_neither_json_nor_enum() -> None:
    code = f"""
import sys
sys.path.insert(0, {str(REPO)!r})
from runtime.shim import main, supervisor, server, loop, runtimes, logwriter, events
from runtime.shim import statedir, protocol
protocol.decode_request(b'{{"op": "state"}}')
print(' '.join(sorted(sys.modules)))
"""
    out = subprocess.run(
        [sys.executable, "-I", "-S", "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    for heavy in ("json", "re", "enum", "signal", "socket", "selectors", "typing", "dataclasses",
                  "subprocess", "threading", "asyncio"):  # fmt: skip
        assert heavy not in out, f"the shim imports {heavy}"


@pytest.mark.parametrize(
    ("value", "number"),
    [("SIGTERM", 15), ("term", 15), ("KILL", 9), (9, 9), ("9", 9), ("sigusr1", signal.SIGUSR1)],
)
def test_parse_signal(value: object, number: int) -> None:
    assert protocol.parse_signal(value) == number


@pytest.mark.parametrize("value", ["SIGNOPE", "", 0, -1, 65, "999", True, None, 1.5, [9]])
def test_parse_signal_rejects(value: object) -> None:
    with pytest.raises(protocol.ProtocolError):
        protocol.parse_signal(value)


def test_signal_names_match_the_signal_module() -> None:
    for sig in signal.Signals:
        assert signals.number(sig.name) == sig.value
        assert signals.name(sig.value) == sig.name


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (b"nope", "not valid JSON"),
        (b"[1]", "must be a JSON object"),
        (b'{"op": "fly"}', "unknown op 'fly'"),
        (b'{"noop": 1}', "unknown op None"),
        (b"\xff\xfe", "not valid JSON"),
    ],
)
def test_decode_request_rejects(line: bytes, message: str) -> None:
    with pytest.raises(protocol.ProtocolError, match=message):
        protocol.decode_request(line)


def test_replies() -> None:
    assert protocol.ok({"a": 1}, 7) == {"ok": True, "result": {"a": 1}, "id": 7}
    assert protocol.error("NotFound", "gone") == {
        "ok": False,
        "error": {"category": "NotFound", "message": "gone"},
    }
    assert protocol.encode({"ok": True}) == b'{"ok":true}\n'
    with pytest.raises(protocol.ProtocolError, match="'timeout' must be a number"):
        protocol.get_float({"timeout": "soon"}, "timeout", None)
    with pytest.raises(protocol.ProtocolError):
        protocol.get_float({"timeout": True}, "timeout", None)
    assert protocol.get_float({}, "timeout", 3) == 3.0


def test_options_round_trip_through_the_command_line(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    opts = launch.ShimOptions(
        container_id="web-1",
        bundle=str(tmp_path),
        runtime_root="/run/x/runc",
        log_path="/var/log/x.log",
        runtime_binary="/usr/sbin/runc",
        restart_policy="on-failure:3",
        stop_signal="SIGINT",
        stop_timeout=2.5,
        log_max_size=1000,
        log_max_files=2,
    )
    opts.check()
    parsed = shim_main.parse_args(opts.argv())
    assert parsed.container_id == "web-1"
    assert parsed.bundle == str(tmp_path)
    assert parsed.runtime_binary == "/usr/sbin/runc"
    assert str(parsed.restart) == "on-failure:3"
    assert parsed.stop_signal == signal.SIGINT
    assert parsed.stop_timeout == 2.5
    assert (parsed.log_max_size, parsed.log_max_files) == (1000, 2)
    assert shim_main.parse_args([*opts.argv(), "--sync-fd=5"]).sync_fd == 5


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"container_id": "a/b"}, "may hold only"),
        ({"restart_policy": "sometimes"}, "restart policy"),
        ({"stop_signal": "SIGWHAT"}, "SIGWHAT"),
        ({"bundle": "/nonexistent-bundle"}, "has no config.json"),
        ({"stop_timeout": -1}, "must be >= 0"),
    ],
)
def test_bad_options_are_invalid_spec(
    tmp_path: Path, change: dict[str, object], message: str
) -> None:
    (tmp_path / "config.json").write_text("{}")
    values: dict[str, object] = {
        "container_id": "c1",
        "bundle": str(tmp_path),
        "runtime_root": "/r",
        "log_path": "/l",
    }
    values.update(change)
    with pytest.raises(errors.InvalidSpec, match=message):
        launch.ShimOptions(**values).check()  # type: ignore[arg-type]


def test_shim_command_line_errors() -> None:
    with pytest.raises(ValueError, match="--id is required"):
        shim_main.parse_args([])
    with pytest.raises(ValueError, match="unknown option"):
        shim_main.parse_args(["--nope", "1"])
    with pytest.raises(ValueError, match="needs a value"):
        shim_main.parse_args(["--id"])
    assert shim_main.main(["--help"]) == 2


def test_bootstrap_runs_under_isolated_mode(tmp_path: Path) -> None:
    """The bootstrap finds the package without site-packages or PYTHONPATH."""
    argv = launch.bootstrap_argv(launch.ShimOptions("c1", str(tmp_path), "/r", "/l"), sync_fd=99)
    assert argv[:4] == [sys.executable, "-I", "-S", "-c"]
    proc = subprocess.run(argv, capture_output=True, text=True, env={"PATH": os.defpath})
    assert proc.returncode == 2
    assert "has no config.json" in proc.stderr or proc.stderr == ""
