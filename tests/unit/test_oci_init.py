"""Small pieces of the container init and of the CLI that need no privileges."""

from __future__ import annotations

import subprocess
import sys

import pytest

from runtime import errors
from runtime.oci import cli


def test_sealed_imports_cannot_load_files_but_loaded_modules_still_work() -> None:
    code = (
        "from runtime.oci import init\n"
        "init._seal_imports()\n"
        "import sys, os\n"  # already loaded
        "print(init.jsonio.dumps({'ok': 1}))\n"
        "try:\n"
        "    import colorsys\n"  # a stdlib module nobody has imported yet
        "except ImportError:\n"
        "    print('blocked')\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert (r.returncode, r.stdout) == (0, '{"ok":1}\nblocked\n'), r.stderr


@pytest.mark.parametrize(
    ("text", "number"), [("9", 9), ("KILL", 9), ("SIGKILL", 9), ("term", 15), ("SIGUSR1", 10)]
)
def test_signal_names_and_numbers(text: str, number: int) -> None:
    assert cli.parse_signal(text) == number


@pytest.mark.parametrize("text", ["SIGNOPE", "-1", "", "KILL 9"])
def test_unknown_signals(text: str) -> None:
    with pytest.raises(errors.InvalidSpec, match="unknown signal"):
        cli.parse_signal(text)


@pytest.mark.parametrize(
    ("namespaces", "direct"),
    [
        ([{"type": "pid"}, {"type": "mount"}, {"type": "network"}], True),
        ([{"type": "mount"}], True),  # the host's pid namespace
        ([{"type": "pid"}, {"type": "network", "path": "/proc/1/ns/net"}], True),
        ([{"type": "pid", "path": "/proc/1/ns/pid"}], False),  # setns(pid): children only
        ([{"type": "pid"}, {"type": "user"}], False),  # maps between unshare and fork
        ([{"type": "pid"}, {"type": "time"}], False),  # offsets between unshare and fork
    ],
)
def test_which_configs_the_init_may_be_cloned_for_directly(
    namespaces: list[dict[str, str]], direct: bool
) -> None:
    from runtime.oci import config, init

    doc = {
        "ociVersion": "1.0.2",
        "root": {"path": "rootfs"},
        "process": {"args": ["true"], "cwd": "/"},
        "linux": {"namespaces": namespaces},
    }
    if any(ns["type"] == "user" for ns in namespaces):
        doc["linux"]["uidMappings"] = doc["linux"]["gidMappings"] = [  # type: ignore[index]
            {"containerID": 0, "hostID": 100000, "size": 1}
        ]
    assert init.can_fork_direct(config.parse(doc, "/bundle")) is direct
