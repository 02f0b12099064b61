"""OCI hooks: parse ``hooks``, run one list of them with the state on stdin.

Who runs which hook, and where (runtime-spec "Lifecycle" and runc's choices):

==================  =====================================  ======================
hook                run by, when                           a failure
==================  =====================================  ======================
prestart (old)      ``create``, in the runtime's           create fails, the
createRuntime       namespaces, after the mounts are made  container is destroyed
                    and before ``pivot_root``              (poststop hooks run)
createContainer     the init, in the container's mount     same
                    namespace, before ``pivot_root``
startContainer      the init, inside the container (after  start fails; the init
                    pivot, as the container's user), right exits 127
                    before the exec of the process
poststart           ``start``, after the process started   a warning
poststop            ``delete``, after the container is     a warning
                    gone
==================  =====================================  ======================

A hook is ``fork`` + ``execve(path, args, env)`` (``path`` absolute, ``args``
including argv[0], ``env`` exactly the given list), stdin a pipe holding the
state JSON then closed, stdout and stderr captured (their tail goes into the
error message). ``timeout`` (seconds) kills the hook with SIGKILL when it
runs too long. Waiting uses a pidfd and ``poll``: no busy loop, no SIGCHLD
handler, and a hook that daemonizes does not hold us once it has exited.

Stdlib only; runs in the forked init too, so it imports nothing lazily.
"""

from __future__ import annotations

import os
import select
import time

from runtime import errors
from runtime.oci.config_process import want
from runtime.shim import jsonio

__all__ = ["HOOK_KINDS", "Hook", "HookFailed", "parse", "run_all", "to_json"]

HOOK_KINDS = (
    "prestart",
    "createRuntime",
    "createContainer",
    "startContainer",
    "poststart",
    "poststop",
)
_OUTPUT_LIMIT = 16 * 1024


class HookFailed(errors.FailedPrecondition):
    """A hook exited non-zero, was killed, timed out, or could not be run."""


class Hook:
    __slots__ = ("args", "env", "path", "timeout")

    def __init__(self, path: str, args: list[str], env: list[str], timeout: int | None) -> None:
        self.path = path
        self.args = args
        self.env = env
        self.timeout = timeout


def parse(value: object) -> dict[str, list[Hook]]:
    """The ``hooks`` object: kind -> hooks in order. Unknown kinds are errors."""
    out: dict[str, list[Hook]] = {}
    for kind, items in want(value if value is not None else {}, dict, "hooks").items():
        if kind not in HOOK_KINDS:
            raise errors.InvalidSpec(
                f"config.json: hooks.{kind}: unknown hook kind; use one of {', '.join(HOOK_KINDS)}"
            )
        hooks = []
        for i, item in enumerate(want(items if items is not None else [], list, f"hooks.{kind}")):
            where = f"hooks.{kind}[{i}]"
            h = want(item, dict, where)
            path = want(h.get("path"), str, f"{where}.path")
            if not path.startswith("/"):
                raise errors.InvalidSpec(f"config.json: {where}.path: {path!r} must be absolute")
            args = [
                want(a, str, f"{where}.args[{j}]")
                for j, a in enumerate(want(h.get("args", []), list, f"{where}.args"))
            ]
            env = [
                want(e, str, f"{where}.env[{j}]")
                for j, e in enumerate(want(h.get("env", []), list, f"{where}.env"))
            ]
            timeout = h.get("timeout")
            if timeout is not None:
                timeout = want(timeout, int, f"{where}.timeout")
                if timeout <= 0:
                    raise errors.InvalidSpec(f"config.json: {where}.timeout must be above 0")
            hooks.append(Hook(path, args or [path], env, timeout))
        if hooks:
            out[kind] = hooks
    return out


def to_json(hooks: dict[str, list[Hook]]) -> dict[str, object]:
    """Back to the config.json shape (kept in state.json for start and delete)."""
    return {
        kind: [
            {"path": h.path, "args": h.args, "env": h.env}
            | ({"timeout": h.timeout} if h.timeout else {})
            for h in items
        ]
        for kind, items in hooks.items()
    }


def run_all(
    kind: str, hooks: list[Hook], state: dict[str, object], *, keep_going: bool = False
) -> list[str]:
    """Run ``hooks`` in order. The first failure raises :class:`HookFailed`,
    unless ``keep_going`` (poststart, poststop: "the remaining hooks and the
    lifecycle continue"): then every hook runs and the failures are returned."""
    data = jsonio.dumps(state).encode()
    failures = []
    for i, hook in enumerate(hooks):
        try:
            _run(f"{kind} hook #{i} ({hook.path})", hook, data)
        except HookFailed as exc:
            if not keep_going:
                raise
            failures.append(str(exc))
    return failures


def _run(what: str, hook: Hook, data: bytes) -> None:
    in_r, in_w = os.pipe2(os.O_CLOEXEC)
    out_r, out_w = os.pipe2(os.O_CLOEXEC)
    try:
        pid = os.fork()
    except OSError as exc:
        for fd in (in_r, in_w, out_r, out_w):
            os.close(fd)
        raise HookFailed(f"{what}: cannot fork: {exc.strerror}") from None
    if pid == 0:
        try:
            os.dup2(in_r, 0)
            os.dup2(out_w, 1)
            os.dup2(out_w, 2)
            os.setpgid(0, 0)  # a timeout kills the whole group it started
            os.execve(hook.path, hook.args, _env(hook.env))
        except OSError as exc:
            os.write(2, f"cannot execute {hook.path}: {exc.strerror}".encode())
        finally:
            os._exit(127)
    os.close(in_r)
    os.close(out_w)
    try:
        _feed(in_w, data)
        status, output, timed_out = _wait(pid, out_r, hook.timeout)
    finally:
        os.close(out_r)
    if timed_out:
        raise HookFailed(f"{what} timed out after {hook.timeout}s and was killed")
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        how = f"exited with status {code}" if code > 0 else f"was killed by signal {-code}"
        tail = output[-2000:].decode(errors="replace").strip()
        raise HookFailed(f"{what} {how}" + (f": {tail}" if tail else ""))


def _env(items: list[str]) -> dict[str, str]:
    env: dict[str, str] = {}
    for item in items:
        key, _, value = item.partition("=")
        env[key] = value
    return env


def _feed(fd: int, data: bytes) -> None:
    """Write the state; a hook that does not read stdin must not block us."""
    try:
        os.set_blocking(fd, False)
        os.write(fd, data[:65536])  # a pipe holds 64 KiB: state documents are far smaller
    except (BlockingIOError, BrokenPipeError):
        pass
    finally:
        os.close(fd)


def _wait(pid: int, out_r: int, timeout: int | None) -> tuple[int, bytes, bool]:
    pidfd = os.pidfd_open(pid)
    try:
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
        poller.register(out_r, select.POLLIN)
        deadline = None if timeout is None else time.monotonic() + timeout
        output = b""
        exited = False
        while not exited:
            left = None if deadline is None else max(deadline - time.monotonic(), 0)
            if left == 0:
                _kill_group(pid)
                os.waitpid(pid, 0)
                return 0, output, True
            for fd, _ in poller.poll(None if left is None else int(left * 1000) + 1):
                if fd == pidfd:
                    exited = True
                    continue
                chunk = os.read(out_r, 65536)
                if not chunk:
                    poller.unregister(out_r)
                elif len(output) < _OUTPUT_LIMIT:
                    output += chunk
        _, status = os.waitpid(pid, 0)
        os.set_blocking(out_r, False)
        try:
            output += os.read(out_r, _OUTPUT_LIMIT)
        except BlockingIOError:
            pass
        return status, output, False
    finally:
        os.close(pidfd)


def _kill_group(pid: int) -> None:
    for target in (-pid, pid):
        try:
            os.kill(target, 9)
        except ProcessLookupError:
            pass
