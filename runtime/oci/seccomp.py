"""``linux.seccomp``: parse it, compile it with libseccomp, and the default profile.

Parsing is pure and strict: an unknown action, operator, architecture or flag
is an :class:`~runtime.errors.InvalidSpec` naming the field (a container must
not run with a weaker filter than asked). Syscall *names* unknown to this
host's libseccomp are skipped, as runc and crun do, because profiles list
calls of every kernel generation and architecture.

Compiling (:func:`compile_filter`) happens in ``create`` before anything is
forked, so a profile libseccomp refuses fails ``create`` cleanly. What the
init installs is the BPF program libseccomp generates from it
(:func:`program_for`), loaded with a bare ``seccomp(2)``: generating the
program is most of the cost of a large profile (~10 ms for Docker's on three
x86 ABIs), so it is done once and kept in ``<runtime root>/@seccomp/`` under
the SHA-256 of the profile, libseccomp's version and the architecture — the
next container with the same profile loads it in microseconds. A process
also keeps the profiles it parsed and the programs it made or read in
memory (:func:`parse_cached`, :func:`warm`): the shims' fork server does
Docker's default profile once, and every shim forked from it finds both
there, without parsing, hashing or reading a file (parsing its ~300 rules
took ~1 ms and the ``hashlib`` import alone, which loads OpenSSL, ~3 ms per
create in a freshly forked helper). Programs are built as a
binary tree of syscall numbers (libseccomp's ``SCMP_FLTATR_CTL_OPTIMIZE``
2, where it has it): the same verdicts, fewer instructions run per system
call, and the kernel, which evaluates a new filter for every syscall number
when it loads it, takes ~0.4 ms instead of ~0.9 ms for Docker's profile —
on every container start. Rules whose
action equals the default action are dropped (libseccomp refuses them).
When the same argument index appears twice in one rule, the comparisons
become separate rules (libseccomp cannot AND two comparisons of one
argument; this is runc's reading of such profiles too).

The default profile (:func:`default_profile`) is data, ``seccomp_default.json``
beside this module: the rules of the profile Docker applies by default, in
our own schema, resolved here for a process's capabilities and the host's
architecture into the OCI ``linux.seccomp`` form — what Docker writes into a
container's config.json.

Stdlib only; imported by ``create`` only when the config has a seccomp section.
"""

from __future__ import annotations

import os

from runtime import errors
from runtime.oci.config_process import want
from runtime.sys import seccomp as scmp

__all__ = [
    "FLAGS",
    "Profile",
    "Rule",
    "compile_filter",
    "default_profile",
    "known_in",
    "parse",
    "parse_cached",
    "program_for",
    "warm",
]

#: The bounding set Docker gives a container by default (what the engine puts in
#: config.json, see runtime.engine.bundle): the profile warmed for it.
DOCKER_CAPABILITIES = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
)  # fmt: skip

#: OCI architecture names this runtime accepts.
ARCHES = (
    "SCMP_ARCH_X86", "SCMP_ARCH_X86_64", "SCMP_ARCH_X32", "SCMP_ARCH_ARM", "SCMP_ARCH_AARCH64",
    "SCMP_ARCH_MIPS", "SCMP_ARCH_MIPS64", "SCMP_ARCH_MIPS64N32", "SCMP_ARCH_MIPSEL",
    "SCMP_ARCH_MIPSEL64", "SCMP_ARCH_MIPSEL64N32", "SCMP_ARCH_PPC", "SCMP_ARCH_PPC64",
    "SCMP_ARCH_PPC64LE", "SCMP_ARCH_S390", "SCMP_ARCH_S390X", "SCMP_ARCH_PARISC",
    "SCMP_ARCH_PARISC64", "SCMP_ARCH_RISCV64",
)  # fmt: skip
#: OCI filter flag -> libseccomp attribute that sets it.
FLAGS = {
    "SECCOMP_FILTER_FLAG_TSYNC": scmp.ATTR_CTL_TSYNC,
    "SECCOMP_FILTER_FLAG_LOG": scmp.ATTR_CTL_LOG,
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW": scmp.ATTR_CTL_SSB,
}
# os.uname().machine -> the Go-style arch words of the default profile's conditions
_GO_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "i686": "x86", "armv7l": "arm",
            "s390x": "s390x", "ppc64le": "ppc64le", "riscv64": "riscv64"}  # fmt: skip
_NATIVE_OCI_ARCH = {"x86_64": "SCMP_ARCH_X86_64", "aarch64": "SCMP_ARCH_AARCH64",
                    "s390x": "SCMP_ARCH_S390X", "riscv64": "SCMP_ARCH_RISCV64",
                    "ppc64le": "SCMP_ARCH_PPC64LE"}  # fmt: skip


class Rule:
    __slots__ = ("action", "args", "errno_ret", "names")

    def __init__(self) -> None:
        self.names: list[str] = []
        self.action = "SCMP_ACT_ALLOW"
        self.errno_ret: int | None = None
        self.args: list[tuple[int, int, int, int]] = []  # index, op, value, valueTwo


class Profile:
    """A validated ``linux.seccomp``."""

    def __init__(self) -> None:
        self.default_action = "SCMP_ACT_ALLOW"
        self.default_errno_ret: int | None = None
        self.architectures: list[str] = []
        self.flags: list[str] = []
        self.listener_path = ""
        self.listener_metadata = ""
        self.rules: list[Rule] = []
        self.raw: object = None  # the section as given
        self.key = ""  # its canonical JSON (sorted keys): the caches' key

    @property
    def needs_listener(self) -> bool:
        return any(r.action == "SCMP_ACT_NOTIFY" for r in self.rules)


def _action(value: object, where: str) -> str:
    name = want(value, str, where)
    if name not in scmp.ACTIONS:
        raise errors.InvalidSpec(
            f"config.json: {where}: unknown seccomp action {name!r}; use one of "
            + ", ".join(sorted(scmp.ACTIONS))
        )
    return name


def _errno(obj: dict[str, object], key: str, where: str) -> int | None:
    value = obj.get(key)
    if value is None:
        return None
    n = want(value, int, f"{where}.{key}")
    if not 0 <= n <= 0xFFFF:
        raise errors.InvalidSpec(f"config.json: {where}.{key} must be within 0..65535")
    return n


#: Profiles this process parsed, by canonical JSON (shared: read them, never change them).
_PARSED: dict[str, Profile] = {}


def parse_cached(value: object) -> Profile:
    """:func:`parse`, answered from this process's memory when the same section
    (same canonical JSON) was parsed before — what the fork server did for
    Docker's default profile (:func:`warm`), which is ~300 rules: ~1 ms of
    parsing in every freshly forked helper otherwise. Same content, same
    verdict: an invalid section is never kept, so it fails every time."""
    from runtime.shim import jsonio

    try:
        key = jsonio.dumps(value, sort_keys=True)
    except (TypeError, ValueError):
        return parse(value)  # not JSON data: let parse say what is wrong
    prof = _PARSED.get(key)
    if prof is None:
        prof = parse(value)
        prof.key = key
        _PARSED[key] = prof
    return prof


def parse(value: object) -> Profile:
    where = "linux.seccomp"
    sec = want(value, dict, where)
    prof = Profile()
    prof.raw = value
    prof.default_action = _action(sec.get("defaultAction"), f"{where}.defaultAction")
    if prof.default_action == "SCMP_ACT_NOTIFY":
        raise errors.InvalidSpec(f"config.json: {where}.defaultAction cannot be SCMP_ACT_NOTIFY")
    prof.default_errno_ret = _errno(sec, "defaultErrnoRet", where)
    for i, arch in enumerate(want(sec.get("architectures", []), list, f"{where}.architectures")):
        name = want(arch, str, f"{where}.architectures[{i}]")
        if name not in ARCHES:
            raise errors.InvalidSpec(
                f"config.json: {where}.architectures[{i}]: unknown architecture {name!r}"
            )
        prof.architectures.append(name)
    for i, flag in enumerate(want(sec.get("flags", []), list, f"{where}.flags")):
        name = want(flag, str, f"{where}.flags[{i}]")
        if name not in FLAGS:
            raise errors.InvalidSpec(
                f"config.json: {where}.flags[{i}]: unsupported flag {name!r}; supported: "
                + ", ".join(sorted(FLAGS))
            )
        prof.flags.append(name)
    prof.listener_path = want(sec.get("listenerPath", ""), str, f"{where}.listenerPath")
    prof.listener_metadata = want(sec.get("listenerMetadata", ""), str, f"{where}.listenerMetadata")
    for i, item in enumerate(want(sec.get("syscalls", []), list, f"{where}.syscalls")):
        prof.rules.append(_rule(item, f"{where}.syscalls[{i}]"))
    if prof.needs_listener and not prof.listener_path:
        raise errors.InvalidSpec(
            f"config.json: {where}: SCMP_ACT_NOTIFY needs listenerPath (a unix socket that "
            "receives the notify fd)"
        )
    return prof


def _rule(value: object, where: str) -> Rule:
    r = want(value, dict, where)
    rule = Rule()
    names = want(r.get("names"), list, f"{where}.names")
    if not names:
        raise errors.InvalidSpec(f"config.json: {where}.names must list at least one syscall")
    rule.names = [want(n, str, f"{where}.names[{j}]") for j, n in enumerate(names)]
    rule.action = _action(r.get("action"), f"{where}.action")
    rule.errno_ret = _errno(r, "errnoRet", where)
    if rule.errno_ret is not None and rule.action not in ("SCMP_ACT_ERRNO", "SCMP_ACT_TRACE"):
        raise errors.InvalidSpec(
            f"config.json: {where}.errnoRet is only for SCMP_ACT_ERRNO and SCMP_ACT_TRACE"
        )
    for j, arg in enumerate(want(r.get("args", []), list, f"{where}.args")):
        aw = f"{where}.args[{j}]"
        a = want(arg, dict, aw)
        index = want(a.get("index"), int, f"{aw}.index")
        if not 0 <= index <= 5:
            raise errors.InvalidSpec(f"config.json: {aw}.index must be within 0..5")
        op = want(a.get("op"), str, f"{aw}.op")
        if op not in scmp.COMPARE:
            raise errors.InvalidSpec(f"config.json: {aw}.op: unknown operator {op!r}")
        val = want(a.get("value"), int, f"{aw}.value")
        two = want(a.get("valueTwo", 0), int, f"{aw}.valueTwo")
        rule.args.append((index, scmp.COMPARE[op], val, two))
    return rule


def compile_filter(prof: Profile) -> scmp.Filter:
    """A libseccomp context for ``prof``, ready to ``load()`` (the caller releases it).

    ``no_new_privs`` is left to the runtime (libseccomp would set it itself).
    """
    with errors.map_os_errors("linux.seccomp: libseccomp"):
        default = scmp.action_value(prof.default_action, prof.default_errno_ret)
        filt = scmp.Filter(default)
    try:
        with errors.map_os_errors("linux.seccomp: set up the filter"):
            filt.set_attr(scmp.ATTR_CTL_NNP, 0)
            try:  # same verdicts, and the kernel loads it in ~0.4 ms instead of ~0.9
                filt.set_attr(scmp.ATTR_CTL_OPTIMIZE, 2)
            except OSError:
                pass  # libseccomp < 2.5: the linear program
            for flag in prof.flags:
                filt.set_attr(FLAGS[flag], 1)
            for arch in prof.architectures:
                token = scmp.arch_token(arch)
                if token:
                    filt.add_arch(token)
        for i, rule in enumerate(prof.rules):
            action = scmp.action_value(rule.action, rule.errno_ret)
            if action == default:
                continue
            indexes = [a[0] for a in rule.args]
            groups = [[a] for a in rule.args] if len(set(indexes)) != len(indexes) else [rule.args]
            for name in rule.names:
                nr = scmp.resolve_syscall(name)
                if nr is None:
                    continue  # not a syscall this libseccomp knows: skipped, as runc does
                for args in groups:
                    with errors.map_os_errors(
                        f"config.json: linux.seccomp.syscalls[{i}]: rule for {name}"
                    ):
                        filt.add_rule(action, nr, args)
    except BaseException:
        filt.release()
        raise
    return filt


_KERNEL_FLAGS = {
    "SECCOMP_FILTER_FLAG_TSYNC": scmp.FILTER_FLAG_TSYNC,
    "SECCOMP_FILTER_FLAG_LOG": scmp.FILTER_FLAG_LOG,
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW": scmp.FILTER_FLAG_SPEC_ALLOW,
}


#: Programs this process made or read: cache key -> BPF program.
_PROGRAMS: dict[str, bytes] = {}


def program_for(prof: Profile, cache_dir: str | None) -> tuple[bytes, int]:
    """(BPF program, seccomp(2) flags) for ``prof``: from this process's memory,
    else from ``cache_dir`` when it was made before, else compiled, exported
    and stored there (atomically)."""
    flags = 0
    for name in prof.flags:
        flags |= _KERNEL_FLAGS[name]
    if prof.needs_listener:
        flags |= scmp.FILTER_FLAG_NEW_LISTENER
    from runtime.shim import jsonio

    version = ".".join(str(n) for n in scmp.version())
    raw = prof.key or jsonio.dumps(prof.raw, sort_keys=True)
    key = f"{version}|tree|{os.uname().machine}|{raw}"  # "tree": see compile_filter
    program = _PROGRAMS.get(key)
    if program is not None:
        return program, flags
    path = None
    if cache_dir:
        path = os.path.join(cache_dir, _sha256(key.encode()) + ".bpf")
        try:
            with open(path, "rb") as f:
                program = f.read()
            if program and len(program) % 8 == 0:
                _PROGRAMS[key] = program
                return program, flags
        except FileNotFoundError:
            pass
    filt = compile_filter(prof)
    try:
        with errors.map_os_errors("linux.seccomp: generate the filter"):
            program = filt.export_bpf()
    finally:
        filt.release()
    _PROGRAMS[key] = program
    if path is not None:
        from runtime.oci import state

        try:
            os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
            state.write_file(path, program, 0o600)
        except OSError:
            pass  # a cache: the next create compiles again
    return program, flags


#: Sections known by their exact bytes (compact JSON, as the engine writes them):
#: text -> parsed profile. See :func:`known_in`.
_KNOWN: dict[bytes, Profile] = {}


def warm(capabilities: tuple[str, ...] = DOCKER_CAPABILITIES) -> None:
    """Make the default profile's program for ``capabilities`` now and keep it in
    memory, so that processes forked from this one find it (the shims' fork server);
    remember its compact JSON text too (:func:`known_in`)."""
    from runtime.shim import jsonio

    section = default_profile(capabilities)
    prof = parse_cached(section)
    program_for(prof, None)
    _KNOWN[jsonio.dumps(section).encode()] = prof


def known_in(text: bytes) -> tuple[bytes, Profile] | None:
    """A section of :func:`warm`'s, found in ``text`` (a config.json) by its exact
    bytes, with its parsed profile — so the caller need not decode and parse
    ~10 KB of JSON it already knows (Docker's profile is most of an engine's
    config.json). The caller must still check that the bytes stood where a
    ``linux.seccomp`` value stands (see :func:`runtime.oci.config.load`)."""
    for raw, prof in _KNOWN.items():
        if raw in text:
            return raw, prof
    return None


def _sha256(data: bytes) -> str:
    """The hex SHA-256 of ``data``, without loading OpenSSL when CPython has its own."""
    try:
        from _sha256 import sha256  # type: ignore[import-not-found]  # CPython 3.11
    except ImportError:
        from hashlib import sha256
    return str(sha256(data).hexdigest())


def _load_default() -> dict[str, object]:
    from runtime.shim import jsonio

    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "seccomp_default.json")
    with open(path, "rb") as f:
        doc = jsonio.loads(f.read())
    assert isinstance(doc, dict)
    return doc


def default_profile(
    capabilities: list[str] | tuple[str, ...],
    machine: str | None = None,
    kernel: tuple[int, int] | None = None,
) -> dict[str, object]:
    """The default profile as an OCI ``linux.seccomp`` section for a process
    whose bounding set is ``capabilities``, on ``machine`` (``os.uname()``'s
    word, default this host) and ``kernel`` (major, minor; default this host's).

    Rules carry conditions: ``ifCaps``/``unlessCaps`` (any of the listed
    capabilities), ``ifArches``/``unlessArches`` (Go-style words: amd64 …),
    ``minKernel``. A rule applies when its if-conditions hold and none of its
    unless-conditions does.
    """
    doc = _load_default()
    machine = machine or os.uname().machine
    if kernel is None:
        release = os.uname().release.split(".")
        kernel = (int(release[0]), int("".join(c for c in release[1] if c.isdigit()) or 0))
    arch = _GO_ARCH.get(machine, machine)
    have = set(capabilities)
    syscalls: list[dict[str, object]] = []
    for raw in doc["rules"]:  # type: ignore[attr-defined]
        rule: dict[str, object] = raw
        if_caps = rule.get("ifCaps")
        if isinstance(if_caps, list) and not have.intersection(if_caps):
            continue
        if_arches = rule.get("ifArches")
        if isinstance(if_arches, list) and arch not in if_arches:
            continue
        unless_caps = rule.get("unlessCaps")
        if isinstance(unless_caps, list) and have.intersection(unless_caps):
            continue
        unless_arches = rule.get("unlessArches")
        if isinstance(unless_arches, list) and arch in unless_arches:
            continue
        min_kernel = rule.get("minKernel")
        if isinstance(min_kernel, str):
            major, minor = (int(x) for x in min_kernel.split("."))
            if kernel < (major, minor):
                continue
        entry: dict[str, object] = {"names": rule["names"], "action": rule["action"]}
        if "errnoRet" in rule:
            entry["errnoRet"] = rule["errnoRet"]
        if "args" in rule:
            entry["args"] = rule["args"]
        syscalls.append(entry)
    arch_map = doc["archMap"]
    assert isinstance(arch_map, dict)
    native = _NATIVE_OCI_ARCH.get(machine)
    architectures = [native, *arch_map.get(native, [])] if native else []
    return {
        "defaultAction": doc["defaultAction"],
        "defaultErrnoRet": doc["defaultErrnoRet"],
        "architectures": architectures,
        "syscalls": syscalls,
    }
