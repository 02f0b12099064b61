"""The last steps of the container's init, after ``pivot_root``: the process's
cwd, identity and privileges, and the program it will exec.

Order matters and follows the kernel's rules (see :mod:`runtime.sys.caps`):
``chdir(cwd)`` inside the new root, then ``getcwd()`` must be a plain
absolute path (CVE-2024-21626: a cwd reachable only through a leaked host fd
reads as "(unreachable)"); ``PR_SET_NO_NEW_PRIVS``; bounding set dropped while
still privileged; supplementary groups and gid; uid with ``PR_SET_KEEPCAPS``;
effective/permitted/inheritable; ambient (only capabilities that are also
permitted and inheritable, as the kernel requires — ``runc spec`` lists
ambient capabilities with no inheritable set, so the others are skipped, as
runc does with a warning); umask. The seccomp filter (when there is one) is
loaded *last*, after the uid change and ``capset`` and right before the
caller's final steps and exec, when ``noNewPrivileges`` is set; without
``no_new_privs`` an unprivileged process may not load a filter, so it is then
loaded before the identity changes, while still privileged (runc's order
too). Either way ``getcwd`` has been checked before, so a profile that denies
``getcwd`` cannot break the check. The program is looked up last, as the
container's user and in the new root, so that "executable file not found in
$PATH" is an error of ``create``, like runc's.

Stdlib only; runs between fork and exec, so it never logs: it raises.
"""

from __future__ import annotations

import os

import runtime.sys as rsys
from runtime import errors
from runtime.oci import config
from runtime.sys import caps

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["DEFAULT_PATH", "finalize", "lookup"]

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def finalize(
    proc: config.Process, last_cap: int, load_seccomp: Callable[[], None] | None = None
) -> tuple[str, dict[str, str]]:
    """Become the container's process; return (program path, environment)."""
    with errors.map_os_errors(f"chdir to process.cwd {proc.cwd}"):
        os.chdir(proc.cwd)
        cwd = os.getcwd()
    if not cwd.startswith("/") or cwd.startswith("(unreachable)"):
        raise errors.FailedPrecondition(f"process.cwd {proc.cwd} is outside the container's root")
    env = _environment(proc)
    if proc.no_new_privileges:
        with errors.map_os_errors("set no_new_privs"):
            rsys.prctl(rsys.PR_SET_NO_NEW_PRIVS, 1)
    if load_seccomp is not None and not proc.no_new_privileges:
        load_seccomp()
    c = proc.capabilities
    every = (1 << (last_cap + 1)) - 1
    with errors.map_os_errors("drop the capability bounding set"):
        caps.drop_bounding(c.bounding & every, last_cap)
    with errors.map_os_errors(f"set groups {proc.additional_gids} and gid {proc.gid}"):
        os.setgroups(proc.additional_gids)
        os.setresgid(proc.gid, proc.gid, proc.gid)
    with errors.map_os_errors(f"set uid {proc.uid}"):
        caps.set_keepcaps(True)
        os.setresuid(proc.uid, proc.uid, proc.uid)
        caps.set_keepcaps(False)
    with errors.map_os_errors(
        "set the process capabilities (effective must be a subset of permitted)"
    ):
        caps.capset(c.effective & every, c.permitted & every, c.inheritable & every)
        caps.ambient_raise(c.ambient & c.permitted & c.inheritable & every, last_cap)
    os.umask(0o022 if proc.umask is None else proc.umask)
    path = lookup(proc.args[0], env.get("PATH", DEFAULT_PATH))
    if load_seccomp is not None and proc.no_new_privileges:
        load_seccomp()
    return path, env


def _environment(proc: config.Process) -> dict[str, str]:
    env: dict[str, str] = {}
    for item in proc.env:
        key, _, value = item.partition("=")
        env[key] = value
    if "HOME" not in env:
        env["HOME"] = _home_of(proc.uid)
    return env


def _home_of(uid: int) -> str:
    """The home directory of ``uid`` in the container's /etc/passwd, else ``/``
    (runc sets HOME the same way when the config does not)."""
    try:
        with open("/etc/passwd", "rb") as f:
            for raw in f.read().decode(errors="replace").splitlines():
                fields = raw.split(":")
                if len(fields) >= 6 and fields[2] == str(uid) and fields[5]:
                    return fields[5]
    except OSError:
        pass
    return "/"


def lookup(name: str, search_path: str) -> str:
    """Resolve ``args[0]`` like execvp would, in the current root, as the current user."""
    if "/" in name:
        candidates = [name]
    else:
        candidates = [os.path.join(d or ".", name) for d in search_path.split(":")]
    for candidate in candidates:
        try:
            st = os.stat(candidate)
        except OSError:
            continue
        if not os.path.isdir(candidate) and st.st_mode & 0o111 and os.access(candidate, os.X_OK):
            return candidate
    if "/" in name:
        raise errors.InvalidSpec(
            f'exec: "{name}": no such executable file in the container (or not executable)'
        )
    raise errors.InvalidSpec(f'exec: "{name}": executable file not found in $PATH')
