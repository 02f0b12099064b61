"""The devices cgroup of cgroup v2: the device rules as an eBPF program.

:func:`program` turns the rule list that v1 writes into ``devices.allow`` /
``devices.deny`` (config rules first, then the runtime's defaults) into a
``BPF_PROG_TYPE_CGROUP_DEVICE`` program with the same outcome: the rules are
checked from the **last** to the first and the first one that matches
decides; nothing matching means deny (runc's deny-all baseline). A rule
matches a request when its type (``a`` = any) and major/minor (-1 = any)
match and, for an allow rule, every requested access (r/w/m) is among its
letters, for a deny rule any requested access is. The program reads
``struct bpf_cgroup_dev_ctx`` (``access_type`` = access << 16 | type,
``major``, ``minor``) into registers once, then one block of compare-and-jump
instructions per rule.

:func:`attach` loads it and attaches it to the container's cgroup directory
(:mod:`runtime.sys.bpf`). A kernel without cgroup BPF makes this
:class:`~runtime.errors.Unavailable`: a container never runs on v2 with
device access the config did not grant.
"""

from __future__ import annotations

import os

from runtime import errors
from runtime.oci import config
from runtime.sys import bpf

__all__ = ["attach", "program"]

# struct bpf_cgroup_dev_ctx field offsets, and its constants
_ACCESS_TYPE, _MAJOR, _MINOR = 0, 4, 8
_DEV_BLOCK, _DEV_CHAR = 1, 2
_ACC = {"m": 1, "r": 2, "w": 4}
# opcodes (BPF_CLASS | BPF_OP | BPF_SRC)
_LDXW = 0x61  # dst = *(u32 *)(src + off)
_MOV_K, _MOV_X = 0xB7, 0xBF
_AND_K, _RSH_K = 0x57, 0x77
_JNE_K, _JEQ_K = 0x55, 0x15
_EXIT = 0x95
# registers: r1 ctx; r2 type; r3 access; r4 major; r5 minor; r6 scratch; r0 result
_R0, _R1, _R2, _R3, _R4, _R5, _R6 = range(7)


def _access_mask(letters: str) -> int:
    mask = 0
    for c in letters:
        mask |= _ACC[c]
    return mask


def _block(rule: config.DeviceRule) -> list[bytes]:
    """The instructions of one rule; jumps (to the next block) are patched in
    as offsets from the end of the block, marked by ``off=None`` in ``pending``."""
    checks: list[tuple[int, int, int]] = []  # (opcode, dst, imm) of "go to next if"
    pre: list[list[bytes]] = []
    if rule.type != "a":
        checks.append((_JNE_K, _R2, _DEV_BLOCK if rule.type == "b" else _DEV_CHAR))
        pre.append([])
    mask = _access_mask(rule.access)
    if rule.allow and mask != 7:
        pre.append(
            [bpf.insn(_MOV_X, _R6, _R3), bpf.insn(_AND_K, _R6, imm=~mask & 7)]
        )  # requested bits outside the rule's
        checks.append((_JNE_K, _R6, 0))
    elif not rule.allow and mask != 7:
        pre.append([bpf.insn(_MOV_X, _R6, _R3), bpf.insn(_AND_K, _R6, imm=mask)])
        checks.append((_JEQ_K, _R6, 0))  # no requested bit among the rule's
    if rule.major >= 0:
        checks.append((_JNE_K, _R4, rule.major))
        pre.append([])
    if rule.minor >= 0:
        checks.append((_JNE_K, _R5, rule.minor))
        pre.append([])
    tail = [bpf.insn(_MOV_K, _R0, imm=1 if rule.allow else 0), bpf.insn(_EXIT)]
    total = sum(len(p) + 1 for p in pre) + len(tail)
    out: list[bytes] = []
    for p, (op, dst, imm) in zip(pre, checks, strict=True):
        out += p
        off = total - len(out) - 1  # from the next instruction to the end of the block
        out.append(bpf.insn(op, dst, off=off, imm=imm))
    return out + tail


def program(rules: list[config.DeviceRule]) -> bytes:
    """The program for ``rules`` (later rules take precedence, default deny)."""
    code = [
        bpf.insn(_LDXW, _R2, _R1, _ACCESS_TYPE),
        bpf.insn(_MOV_X, _R3, _R2),
        bpf.insn(_AND_K, _R2, imm=0xFFFF),  # type
        bpf.insn(_RSH_K, _R3, imm=16),  # access
        bpf.insn(_LDXW, _R4, _R1, _MAJOR),
        bpf.insn(_LDXW, _R5, _R1, _MINOR),
    ]
    for rule in reversed(rules):
        block = _block(rule)
        code += block
        if len(block) == 2:  # matches everything: what follows is unreachable,
            return b"".join(code)  # and the verifier refuses dead code
    code += [bpf.insn(_MOV_K, _R0, imm=0), bpf.insn(_EXIT)]
    return b"".join(code)


def attach(directory: str, rules: list[config.DeviceRule]) -> None:
    """Load the program for ``rules`` and attach it to the cgroup ``directory``."""
    with errors.map_os_errors(f"device filter (eBPF) for cgroup {directory}"):
        prog = bpf.prog_load(bpf.BPF_PROG_TYPE_CGROUP_DEVICE, program(rules))
        try:
            dfd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                bpf.prog_attach(dfd, prog, bpf.BPF_CGROUP_DEVICE, bpf.BPF_F_ALLOW_MULTI)
            finally:
                os.close(dfd)
        finally:
            os.close(prog)
