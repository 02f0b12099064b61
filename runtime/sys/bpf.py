"""The two bpf(2) commands a runtime needs: load a program, attach it to a cgroup.

cgroup v2 has no devices controller: device access is decided by programs of
type ``BPF_PROG_TYPE_CGROUP_DEVICE`` attached to the cgroup (they see
``struct bpf_cgroup_dev_ctx`` and return 1 to allow, 0 to deny). Programs are
plain ``struct bpf_insn`` arrays; :mod:`runtime.oci.devicefilter` writes them.
Attached with ``BPF_F_ALLOW_MULTI`` so that a parent's program (a systemd
slice's, say) still applies too. The attachment lives as long as the cgroup;
the program fd can be closed right after.

Stdlib only; raises ``OSError`` (with the verifier's log on a load failure).
"""

from __future__ import annotations

import ctypes
import os
import struct

import runtime.sys as rsys

__all__ = [
    "BPF_CGROUP_DEVICE",
    "BPF_F_ALLOW_MULTI",
    "BPF_PROG_TYPE_CGROUP_DEVICE",
    "insn",
    "prog_attach",
    "prog_load",
]

_BPF_PROG_LOAD = 5
_BPF_PROG_ATTACH = 8
BPF_PROG_TYPE_CGROUP_DEVICE = 15
BPF_CGROUP_DEVICE = 6
BPF_F_ALLOW_MULTI = 2
_ATTR_SIZE = 128


def insn(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    """One ``struct bpf_insn`` (8 bytes, little endian)."""
    return struct.pack("<BBhi", code, (dst & 0xF) | ((src & 0xF) << 4), off, imm)


def _bpf(cmd: int, attr: ctypes.Array[ctypes.c_char], what: str) -> int:
    nr = rsys.syscall_number("bpf")
    rc = int(rsys.libc.syscall(nr, cmd, ctypes.byref(attr), _ATTR_SIZE))
    if rc < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")
    return rc


def prog_load(prog_type: int, program: bytes, license: str = "Apache-2.0") -> int:
    """Load ``program`` (concatenated instructions); return its fd (close-on-exec)."""
    code = ctypes.create_string_buffer(program, len(program))
    lic = ctypes.create_string_buffer(license.encode())
    log = ctypes.create_string_buffer(16384)
    attr = ctypes.create_string_buffer(_ATTR_SIZE)
    struct.pack_into(
        "<IIQQIIQ",
        attr,
        0,
        prog_type,
        len(program) // 8,
        ctypes.addressof(code),
        ctypes.addressof(lic),
        1,  # log_level: the verifier explains a refusal
        len(log),
        ctypes.addressof(log),
    )
    try:
        return _bpf(_BPF_PROG_LOAD, attr, "bpf prog load")
    except OSError as exc:
        text = log.value.decode(errors="replace").strip()
        if text:
            raise OSError(exc.errno, f"{exc.strerror}; verifier: {text[-500:]}") from None
        raise


def prog_attach(target_fd: int, prog_fd: int, attach_type: int, flags: int) -> None:
    attr = ctypes.create_string_buffer(_ATTR_SIZE)
    struct.pack_into("<IIII", attr, 0, target_fd, prog_fd, attach_type, flags)
    _bpf(_BPF_PROG_ATTACH, attr, "bpf prog attach")
