"""Watching manifest files: watchdog (inotify) on their directories, debounced.

Directories are watched, not files, and not recursively, because that is what
survives how files really change:

- editors that save by writing a temporary file and renaming it over the
  original (the watched inode is replaced; the directory sees the rename);
- Kubernetes ConfigMap-style directories, where each file is a symlink
  through ``..data`` and an update swaps ``..data`` to a new timestamped
  directory with one rename (seen in the top directory; entries starting with
  ``..`` are always relevant);
- files that do not exist yet, or are deleted and created again.

An event is relevant to a source when it touches one of its files, a
manifest (``*.yaml``, ``*.yml``) or ``.env`` in one of its directories, or a
``..`` entry. Events are debounced per source: the callback runs
:data:`DEBOUNCE` seconds after the last relevant event, and at most
:data:`MAX_DELAY` after the first, so an editor's burst of writes is one
reload, and a file that is invalid for a moment mid-save is usually never seen.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable

import structlog
from watchdog import events as wd_events
from watchdog import observers

log = structlog.get_logger(__name__)

DEBOUNCE = 0.1
MAX_DELAY = 0.5
MANIFEST_SUFFIXES = (".yaml", ".yml", ".env")


class Debouncer:
    """Calls ``fire(key)`` once a key has been quiet for ``delay`` (at most ``max_delay``
    after its first poke). One thread for all keys."""

    def __init__(
        self,
        fire: Callable[[str], None],
        delay: float = DEBOUNCE,
        max_delay: float = MAX_DELAY,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.fire = fire
        self.delay = delay
        self.max_delay = max_delay
        self.clock = clock
        self._pending: dict[str, tuple[float, float]] = {}  # key → (first, deadline)
        self._cond = threading.Condition()
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name="debounce", daemon=True)
        self._thread.start()

    def poke(self, key: str) -> None:
        with self._cond:
            now = self.clock()
            first, _ = self._pending.get(key, (now, now))
            self._pending[key] = (first, min(now + self.delay, first + self.max_delay))
            self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stopped:
                    now = self.clock()
                    due = [k for k, (_, at) in self._pending.items() if at <= now]
                    if due:
                        for key in due:
                            del self._pending[key]
                        break
                    wait = min((at for _, at in self._pending.values()), default=None)
                    self._cond.wait(None if wait is None else max(0.0, wait - now))
                if self._stopped:
                    return
            for key in due:
                try:
                    self.fire(key)
                except Exception:
                    log.exception("debounce_callback_failed", key=key)

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify()


class _Handler(wd_events.FileSystemEventHandler):
    def __init__(self, watcher: FileWatcher, directory: str) -> None:
        self.watcher = watcher
        self.directory = directory

    def on_any_event(self, event: wd_events.FileSystemEvent) -> None:
        if event.event_type in ("opened", "closed_no_write"):
            return
        paths = [event.src_path, getattr(event, "dest_path", "")]
        self.watcher._seen(self.directory, [os.fsdecode(p) for p in paths if p])


class FileWatcher:
    """Per key (a source's name): files and directories; ``on_change(key)`` when they change."""

    def __init__(self, on_change: Callable[[str], None], debounce: float = DEBOUNCE) -> None:
        self._debouncer = Debouncer(on_change, debounce)
        self._observer = observers.Observer()
        self._observer.daemon = True
        self._lock = threading.Lock()
        self._files: dict[str, set[str]] = {}
        self._dirs: dict[str, set[str]] = {}
        self._watches: dict[str, object] = {}  # directory → watchdog's watch
        self._started = False

    def start(self) -> None:
        self._observer.start()
        self._started = True

    def stop(self) -> None:
        self._debouncer.stop()
        if self._started:
            self._observer.stop()
            self._observer.join(timeout=5)

    def set_paths(self, key: str, files: Iterable[str], dirs: Iterable[str] = ()) -> None:
        with self._lock:
            self._files[key] = {os.path.abspath(f) for f in files}
            self._dirs[key] = {os.path.abspath(d) for d in dirs}
            self._resync_watches()

    def remove(self, key: str) -> None:
        with self._lock:
            self._files.pop(key, None)
            self._dirs.pop(key, None)
            self._resync_watches()

    def watched(self) -> set[str]:
        with self._lock:
            return set(self._watches)

    def _wanted(self) -> set[str]:
        wanted: set[str] = set()
        for files in self._files.values():
            wanted.update(os.path.dirname(f) for f in files)
        for dirs in self._dirs.values():
            wanted.update(dirs)
            wanted.update(os.path.dirname(d) for d in dirs)  # the directory replaced whole
        return wanted

    def _resync_watches(self) -> None:
        wanted = self._wanted()
        for directory in sorted(set(self._watches) - wanted):
            watch = self._watches.pop(directory)
            try:
                self._observer.unschedule(watch)  # type: ignore[arg-type]
            except (KeyError, OSError):
                pass
        for directory in sorted(wanted - set(self._watches)):
            if not os.path.isdir(directory):
                continue  # not there yet: the resync loads it when it comes
            try:
                self._watches[directory] = self._observer.schedule(
                    _Handler(self, directory), directory, recursive=False
                )
            except OSError as exc:
                log.warning("watch_failed", directory=directory, error=str(exc))

    def _seen(self, directory: str, paths: list[str]) -> None:
        with self._lock:
            keys = [
                key
                for key in set(self._files) | set(self._dirs)
                if any(self._relevant(key, directory, p) for p in paths)
            ]
        for key in keys:
            self._debouncer.poke(key)

    def _relevant(self, key: str, directory: str, path: str) -> bool:
        files = self._files.get(key, set())
        dirs = self._dirs.get(key, set())
        if path in files or path in dirs:
            return True
        name = os.path.basename(path)
        parent = os.path.dirname(path)
        if parent in dirs and (name.endswith(MANIFEST_SUFFIXES) or name.startswith("..")):
            return True
        return bool(name.startswith("..") and any(os.path.dirname(f) == parent for f in files))
