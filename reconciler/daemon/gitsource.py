"""A git repository as a source: fetched on an interval, each commit checked out whole.

The git CLI does the work (``git`` is a Debian package the setup installs; no
Python git library is needed for fetch, rev-parse and archive). Per source, in
``<root>/daemon/git/<name>/``::

    mirror/              a bare repository: ``fetch URL +refs/heads/B:refs/heads/B``
    checkouts/<commit>/  the tree of a commit (``git archive``, extracted)
    current -> checkouts/<commit>   the revision in force, swapped atomically

Manifests load from ``current/<path>``, so paths they resolve (bind mounts,
env files) stay the same across commits. A new commit is checked out, swapped
in and loaded; if it does not load, ``current`` goes back to the last good
commit, the bad one is remembered (not loaded again) and the error says why.
Old checkouts are removed; the good and the newest are kept.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import tarfile
import threading
from collections.abc import Callable

from reconciler.daemon import config as config_mod
from reconciler.daemon import sources
from runtime import errors

GIT_TIMEOUT = 120.0


class GitSource:
    def __init__(self, config: config_mod.SourceConfig, workdir: str) -> None:
        assert config.git is not None
        self.config = config
        self.workdir = workdir
        self.mirror = os.path.join(workdir, "mirror")
        self.checkouts = os.path.join(workdir, "checkouts")
        self.current = os.path.join(workdir, "current")
        self.fetched: str | None = None  # the branch's commit at the last fetch
        self.good: str | None = self._current_commit()
        self.bad: tuple[str, errors.RuntimeError_] | None = None
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        return self.config.name

    def _git(
        self, *args: str, stdout: int | None = subprocess.PIPE
    ) -> subprocess.CompletedProcess[bytes]:
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": self.workdir,
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_CONFIG_NOSYSTEM": "1",
            "LC_ALL": "C",
        }
        try:
            result = subprocess.run(
                ["git", *args],
                env=env,
                stdout=stdout,
                stderr=subprocess.PIPE,
                timeout=GIT_TIMEOUT,
                check=False,
            )
        except FileNotFoundError:
            raise errors.Unavailable(
                "git is not installed; the daemon's git sources need it (apt-get install git)"
            ) from None
        except subprocess.TimeoutExpired:
            raise errors.Transient(
                f"source {self.name}: git {args[0]} took more than {GIT_TIMEOUT:g}s"
            ) from None
        if result.returncode != 0:
            detail = result.stderr.decode(errors="replace").strip().splitlines()
            why = detail[-1] if detail else f"exit {result.returncode}"
            raise errors.Transient(f"source {self.name}: git {args[0]} failed: {why}")
        return result

    def fetch(self) -> str:
        """Fetch the branch; its commit now."""
        with self._lock:
            if not os.path.isdir(self.mirror):
                os.makedirs(self.workdir, mode=0o700, exist_ok=True)
                tmp = self.mirror + ".tmp"
                shutil.rmtree(tmp, ignore_errors=True)
                self._git("init", "--quiet", "--bare", tmp)
                os.replace(tmp, self.mirror)
            branch = self.config.branch
            assert self.config.git is not None
            self._git(
                "--git-dir",
                self.mirror,
                "fetch",
                "--quiet",
                "--force",
                "--no-tags",
                "--",
                self.config.git,
                f"+refs/heads/{branch}:refs/heads/{branch}",
            )
            out = self._git(
                "--git-dir", self.mirror, "rev-parse", "--verify", f"refs/heads/{branch}^{{commit}}"
            )
            self.fetched = out.stdout.decode().strip()
            return self.fetched

    def _checkout(self, commit: str) -> str:
        target = os.path.join(self.checkouts, commit)
        if os.path.isdir(target):
            return target
        os.makedirs(self.checkouts, mode=0o700, exist_ok=True)
        tmp = target + ".tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        os.makedirs(tmp)
        archive = os.path.join(self.checkouts, f".{commit}.tar")
        with open(archive, "wb") as out:
            self._git(
                "--git-dir", self.mirror, "archive", "--format=tar", commit, stdout=out.fileno()
            )
        try:
            with tarfile.open(archive) as tar:
                tar.extractall(tmp, filter="data")
        finally:
            os.unlink(archive)
        os.replace(tmp, target)
        return target

    def _point(self, commit: str | None) -> None:
        """Swap ``current`` to the checkout of ``commit`` (None: remove it)."""
        if commit is None:
            try:
                os.unlink(self.current)
            except FileNotFoundError:
                pass
            return
        tmp = self.current + ".tmp"
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        os.symlink(os.path.join("checkouts", commit), tmp)
        os.replace(tmp, self.current)

    def _current_commit(self) -> str | None:
        try:
            return os.path.basename(os.readlink(self.current))
        except OSError:
            return None

    def load(self) -> sources.Revision:
        commit = self.fetched or self.fetch()
        if self.bad is not None and self.bad[0] == commit:
            raise self.bad[1]
        self._checkout(commit)
        self._point(commit)
        path = os.path.normpath(os.path.join(self.current, self.config.path))
        try:
            revision = sources.load_revision(
                [path], self.config.stack or self.name, dict(self.config.env), revision=commit
            )
        except errors.RuntimeError_ as exc:
            self._point(self.good)
            self.bad = (commit, exc)
            raise
        self.good = commit
        self.bad = None
        self._prune(keep={commit})
        return revision

    def _prune(self, keep: set[str]) -> None:
        try:
            names = os.listdir(self.checkouts)
        except FileNotFoundError:
            return
        for name in names:
            if name not in keep:
                shutil.rmtree(os.path.join(self.checkouts, name), ignore_errors=True)

    def watch_paths(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        return (), ()

    def close(self) -> None:
        return None


class GitPoller:
    """Fetches a git source every ``interval`` (±10%); ``on_new(name)`` when the branch
    moved. Fetch errors are reported once each (``on_error``) and tried again next time."""

    def __init__(
        self,
        source: GitSource,
        on_new: Callable[[str], None],
        on_error: Callable[[str, str], None],
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.source = source
        self.on_new = on_new
        self.on_error = on_error
        self.rand = rand
        self._stop = threading.Event()
        self._seen: str | None = source.good
        self._thread = threading.Thread(target=self._run, name=f"git-{source.name}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        reported: str | None = None
        while not self._stop.is_set():
            try:
                commit = self.source.fetch()
                reported = None
                if commit != self._seen:
                    self._seen = commit
                    self.on_new(self.source.name)
            except errors.RuntimeError_ as exc:
                if str(exc) != reported:
                    reported = str(exc)
                    self.on_error(self.source.name, reported)
            interval = self.source.config.interval
            self._stop.wait(interval * (0.9 + 0.2 * self.rand()))
