"""Helpers for the builtin OCI runtime's integration tests (no tests here).

:func:`environment` gives a test what the shim has in production: a process
that is a child subreaper (so it can ``waitpid`` the container's init), a
runtime root under the test's ``roots`` and a cgroup parent of the test's own.
On the way out it force-deletes any container the test left, reaps, removes
the cgroup parent from every hierarchy and turns the subreaper off again.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import runtime.sys as rsys
from runtime import errors
from runtime.oci import cgroups, lifecycle, spec


class Result:
    def __init__(self, code: int, out: str, err: str) -> None:
        self.code, self.out, self.err = code, out, err

    def lines(self) -> list[str]:
        return self.out.splitlines()


class Env:
    """One test's runtime root, bundles and cgroup parent."""

    def __init__(self, base: Path, rootfs: Path, cgroup_parent: str) -> None:
        self.base = base
        self.rootfs = rootfs
        self.root = str(base / "runc")
        self.cgroup_parent = cgroup_parent

    def cgroups_path(self, cid: str) -> str:
        return f"/{self.cgroup_parent}/{cid}"

    def bundle(
        self, cid: str, args: list[str], mutate: Callable[[dict[str, Any]], None] | None = None
    ) -> str:
        """A bundle whose config is ``runc spec``'s with ``args``, no terminal,
        our rootfs and cgroup path; ``mutate`` edits the document further."""
        doc: dict[str, Any] = spec.default_spec()
        doc["process"]["terminal"] = False
        doc["process"]["args"] = args
        doc["root"]["path"] = str(self.rootfs)
        doc["linux"]["cgroupsPath"] = self.cgroups_path(cid)
        if mutate is not None:
            mutate(doc)
        bundle = self.base / f"bundle-{cid}"
        bundle.mkdir(exist_ok=True)
        (bundle / "config.json").write_text(json.dumps(doc))
        return str(bundle)

    def create(
        self,
        cid: str,
        args: list[str],
        mutate: Callable[[dict[str, Any]], None] | None = None,
        **kwargs: Any,
    ) -> int:
        out = os.open(self.base / f"{cid}.out", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        err = os.open(self.base / f"{cid}.err", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            kwargs.setdefault("stdout", out)
            kwargs.setdefault("stderr", err)
            return lifecycle.create(self.root, cid, self.bundle(cid, args, mutate), **kwargs)
        finally:
            os.close(out)
            os.close(err)

    def output(self, cid: str) -> tuple[str, str]:
        return (
            (self.base / f"{cid}.out").read_text(),
            (self.base / f"{cid}.err").read_text(),
        )

    def run(
        self, cid: str, args: list[str], mutate: Callable[[dict[str, Any]], None] | None = None
    ) -> Result:
        """create, start, wait, delete: the container's exit code and output."""
        pid = self.create(cid, args, mutate)
        lifecycle.start(self.root, cid)
        code = wait(pid)
        lifecycle.delete(self.root, cid)
        return Result(code, *self.output(cid))


def wait(pid: int) -> int:
    """The exit code of our (subreaped) child ``pid``; 128+n for signal n."""
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


def until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    """Poll ``predicate`` until true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(0.005)


def cgroup_dirs_of(cgroup_parent: str) -> list[str]:
    hier = cgroups.discover()
    mounts = [hier.v2] if hier.v2 else [hier.unified, *hier.v1.values()]
    return [os.path.join(m, cgroup_parent) for m in dict.fromkeys(mounts) if m]


@contextlib.contextmanager
def environment(base: Path, rootfs: Path, cgroup_parent: str) -> Iterator[Env]:
    env = Env(base, rootfs, cgroup_parent)
    rsys.prctl(rsys.PR_SET_CHILD_SUBREAPER, 1)
    try:
        yield env
    finally:
        for st in lifecycle.list_containers(env.root):
            with contextlib.suppress(errors.RuntimeError_):
                lifecycle.delete(env.root, str(st["id"]), force=True)
        rsys.prctl(rsys.PR_SET_CHILD_SUBREAPER, 0)
        while True:  # reap what the test did not wait for
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
        for d in cgroup_dirs_of(cgroup_parent):
            with contextlib.suppress(FileNotFoundError):
                os.rmdir(d)
