"""The seccomp profile: parsing, the default profile's conditions, and
compiling with the host's libseccomp (no filter is loaded here)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from runtime import errors
from runtime.engine import bundle
from runtime.oci import seccomp
from runtime.sys import seccomp as scmp

DEFAULT_CAPS = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
]  # fmt: skip  (Docker's default bounding set)


def _profile(
    capabilities: list[str], machine: str | None = None, kernel: tuple[int, int] | None = None
) -> dict[str, Any]:
    return seccomp.default_profile(capabilities, machine, kernel)


def _names(profile: dict[str, Any]) -> set[str]:
    return {n for rule in profile["syscalls"] if "args" not in rule for n in rule["names"]}


def test_the_data_file_is_valid_and_sorted() -> None:
    path = Path(seccomp.__file__).with_name("seccomp_default.json")
    doc = json.loads(path.read_text())
    assert doc["defaultAction"] == "SCMP_ACT_ERRNO" and doc["defaultErrnoRet"] == 1
    for rule in doc["rules"]:
        assert rule["names"] == sorted(rule["names"]), rule
        assert rule["action"] in scmp.ACTIONS
        assert set(rule) <= {"names", "action", "errnoRet", "args", "ifCaps", "unlessCaps",
                             "ifArches", "unlessArches", "minKernel", "why"}  # fmt: skip


def test_default_profile_for_dockers_capabilities_on_x86_64() -> None:
    prof = _profile(DEFAULT_CAPS, "x86_64", (6, 1))
    names = _names(prof)
    assert prof["architectures"] == ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
    assert {"read", "openat", "execve", "arch_prctl", "chroot", "ptrace"} <= names
    # the documented dangerous calls stay blocked without their capability
    for blocked in (
        "mount",
        "unshare",
        "setns",
        "kexec_load",
        "reboot",
        "bpf",
        "init_module",
        "open_by_handle_at",
        "keyctl",
        "add_key",
        "userfaultfd",
        "s390_runtime_instr",
    ):
        assert blocked not in names, blocked
    clone = [r for r in prof["syscalls"] if r["names"] == ["clone"]]
    assert clone[0]["args"][0]["op"] == "SCMP_CMP_MASKED_EQ" and clone[0]["args"][0]["index"] == 0
    clone3 = [r for r in prof["syscalls"] if r["names"] == ["clone3"]]
    assert clone3 == [{"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38}]


def test_capabilities_arches_and_kernel_change_the_rules() -> None:
    admin = _names(_profile([*DEFAULT_CAPS, "CAP_SYS_ADMIN"], "x86_64", (6, 1)))
    assert {"mount", "unshare", "setns", "clone", "clone3"} <= admin
    plain = _profile(DEFAULT_CAPS, "aarch64", (6, 1))
    assert "arch_prctl" not in _names(plain) and "set_tls" in _names(plain)
    assert plain["architectures"] == ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"]
    s390 = [r for r in _profile([], "s390x", (6, 1))["syscalls"] if "clone" in r["names"]]
    assert s390[0]["args"][0]["index"] == 1  # clone's flags are its second argument there
    old = _names(_profile([], "x86_64", (4, 4)))
    assert "ptrace" not in old


def test_parse_errors_name_the_field() -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({"defaultAction": "SCMP_ACT_NOTIFY"}, "defaultAction cannot be SCMP_ACT_NOTIFY"),
        ({"defaultAction": "SCMP_ACT_ALLOW", "flags": ["SECCOMP_FILTER_FLAG_X"]}, "flags[0]"),
        (
            {"defaultAction": "SCMP_ACT_ALLOW",
             "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW", "errnoRet": 3}]},
            "errnoRet is only for",
        ),
        (
            {"defaultAction": "SCMP_ACT_ALLOW",
             "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ERRNO",
                           "args": [{"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}]}]},
            "args[0].index",
        ),
        ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": [], "action": "X"}]}, "names"),
    ]  # fmt: skip
    for doc, needle in cases:
        with pytest.raises(
            errors.InvalidSpec, match=needle.replace("[", r"\[").replace("]", r"\]")
        ):
            seccomp.parse(doc)


@pytest.mark.skipif(not scmp.available(), reason="libseccomp2 is not installed")
def test_libseccomp_compiles_the_default_profile_and_odd_rules() -> None:
    prof = seccomp.parse(seccomp.default_profile(DEFAULT_CAPS))
    seccomp.compile_filter(prof).release()
    odd = seccomp.parse(
        {
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
            "flags": ["SECCOMP_FILTER_FLAG_LOG"],
            "syscalls": [
                {"names": ["getcwd", "no_such_call_anywhere"], "action": "SCMP_ACT_ERRNO"},
                {"names": ["read"], "action": "SCMP_ACT_ALLOW"},  # = default: dropped
                {
                    "names": ["personality"],
                    "action": "SCMP_ACT_ERRNO",
                    "args": [  # the same index twice: two rules
                        {"index": 0, "value": 1, "op": "SCMP_CMP_EQ"},
                        {"index": 0, "value": 2, "op": "SCMP_CMP_EQ"},
                    ],
                },
            ],
        }
    )
    seccomp.compile_filter(odd).release()
    assert scmp.version() >= (2, 5, 0)
    assert scmp.resolve_syscall("getcwd") == 79 or scmp.resolve_syscall("getcwd") is not None
    assert scmp.resolve_syscall("no_such_call_anywhere") is None
    assert scmp.action_value("SCMP_ACT_ERRNO", 38) == 0x00050026


@pytest.mark.skipif(not scmp.available(), reason="libseccomp2 is not installed")
def test_the_generated_program_is_cached_by_profile(tmp_path: Path) -> None:
    prof = seccomp.parse(seccomp.default_profile(DEFAULT_CAPS))
    program, flags = seccomp.program_for(prof, str(tmp_path))
    [cached] = list(tmp_path.iterdir())
    assert cached.read_bytes() == program and len(program) % 8 == 0 and flags == 0
    cached.write_bytes(b"\x06\x00\x00\x00\x00\x00\xff\x7f")  # a one-instruction "allow"
    assert seccomp.program_for(prof, str(tmp_path))[0] == program  # this process kept it
    seccomp._PROGRAMS.clear()  # a new process
    again, _ = seccomp.program_for(prof, str(tmp_path))
    assert again == cached.read_bytes()  # read back, not regenerated
    seccomp._PROGRAMS.clear()
    other = seccomp.parse({"defaultAction": "SCMP_ACT_ALLOW", "flags": ["SECCOMP_FILTER_FLAG_LOG"]})
    _, other_flags = seccomp.program_for(other, str(tmp_path))
    assert other_flags == scmp.FILTER_FLAG_LOG and len(list(tmp_path.iterdir())) == 2
    assert seccomp.program_for(prof, None)[0] == program  # no cache: compiled afresh


@pytest.mark.skipif(not scmp.available(), reason="libseccomp2 is not installed")
def test_a_warmed_program_is_found_in_memory_without_a_compile(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """What the shims' fork server does: a forked shim's create neither compiles
    nor hashes Docker's default profile (the engine's capability set)."""
    seccomp._PROGRAMS.clear()
    seccomp.warm()
    assert seccomp.DOCKER_CAPABILITIES == bundle.DEFAULT_CAPABILITIES

    def refuse(*args: object) -> None:
        raise AssertionError("compiled again")

    monkeypatch.setattr(seccomp, "compile_filter", refuse)
    monkeypatch.setattr(seccomp, "_sha256", refuse)
    monkeypatch.setattr(seccomp, "_rule", refuse)  # not parsed again either
    raw = json.loads(json.dumps(bundle.seccomp_profile(bundle.DEFAULT_CAPABILITIES)))
    prof = seccomp.parse_cached(raw)  # what config.json's section is parsed with
    program, flags = seccomp.program_for(prof, "/nonexistent/never-read")
    assert program and len(program) % 8 == 0 and flags == 0
    seccomp._PROGRAMS.clear()
    seccomp._PARSED.clear()


def test_a_cached_parse_is_the_same_verdict() -> None:
    bad = {"defaultAction": "SCMP_ACT_NOPE"}
    for _ in range(2):  # an invalid section is never kept: it fails every time
        with pytest.raises(errors.InvalidSpec, match="SCMP_ACT_NOPE"):
            seccomp.parse_cached(bad)
    good = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["getcwd"], "action": "SCMP_ACT_ERRNO"}],
    }
    first = seccomp.parse_cached(good)
    assert seccomp.parse_cached(json.loads(json.dumps(good))) is first
    assert [r.names for r in first.rules] == [["getcwd"]]
    seccomp._PARSED.clear()


@pytest.mark.skipif(not scmp.available(), reason="libseccomp2 is not installed")
def test_the_engines_config_takes_the_known_profile_by_its_bytes(tmp_path: Path) -> None:
    """config.json as the engine writes it (compact JSON, Docker's profile for its
    capabilities): once warmed, the section is recognised by its bytes and not
    decoded again — and the spec is the one a full decode gives."""
    from runtime.oci import config

    section = bundle.seccomp_profile(bundle.DEFAULT_CAPABILITIES)
    doc = {
        "ociVersion": "1.0.2",
        "root": {"path": "rootfs"},
        "process": {"args": ["true"], "cwd": "/"},
        "annotations": {"note": json.dumps(section)},  # the text as a string: never taken
        "linux": {"namespaces": [{"type": "pid"}], "seccomp": section},
    }
    (tmp_path / "config.json").write_text(json.dumps(doc, separators=(",", ":")))
    seccomp._KNOWN.clear()
    seccomp._PARSED.clear()
    plain = config.load(str(tmp_path))
    seccomp.warm()
    [(raw, prof)] = seccomp._KNOWN.items()
    assert raw in (tmp_path / "config.json").read_bytes()
    known = config.load(str(tmp_path))
    assert known.seccomp is prof
    assert plain.seccomp is not None and plain.seccomp.raw == prof.raw
    assert known.annotations == plain.annotations == {"note": json.dumps(section)}
    # elsewhere than linux.seccomp, the same bytes mean nothing special
    doc["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW"}  # type: ignore[index]
    doc["x-other"] = {"seccomp": section}
    (tmp_path / "config.json").write_text(json.dumps(doc, separators=(",", ":")))
    other = config.load(str(tmp_path))
    assert other.seccomp is not None and other.seccomp.default_action == "SCMP_ACT_ALLOW"
    seccomp._KNOWN.clear()
    seccomp._PARSED.clear()
    seccomp._PROGRAMS.clear()
