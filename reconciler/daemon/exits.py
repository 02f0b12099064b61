"""Container exit events, from the shims' state dirs in the run root.

A shim writes ``<run root>/containers/<id>/exit`` (atomically: a temporary
file renamed into place) when its container has stopped for good, and rewrites
``run.json`` at every (re)start (``runtime.shim.statedir``). Watching those
names with inotify (watchdog) tells the loop about an exit within
milliseconds, without polling the runtime; the loop then re-observes, as it
always does, so a missed event only delays a repair until the resync.

Not recursive: a bundle holds the container's ``rootfs``, whose tree is none
of our business. The ``containers`` directory is watched for bundles that
come and go, and each bundle on its own.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable

import structlog
from watchdog import events as wd_events
from watchdog import observers

log = structlog.get_logger(__name__)

EXIT = "exit"  # runtime.shim.statedir.EXIT (not imported: the shim's module is stdlib-only code)
RUN = "run.json"

OnExit = Callable[[str, dict[str, object]], None]
"""on_exit(container_id, exit record)."""


class _BundlesHandler(wd_events.FileSystemEventHandler):
    def __init__(self, watcher: ExitWatcher) -> None:
        self.watcher = watcher

    def on_any_event(self, event: wd_events.FileSystemEvent) -> None:
        if not event.is_directory:
            return
        if event.event_type in ("created", "moved"):
            target = getattr(event, "dest_path", "") or event.src_path
            self.watcher._bundle_added(os.fsdecode(target))
        if event.event_type in ("deleted", "moved"):
            self.watcher._bundle_gone(os.fsdecode(event.src_path))


class _BundleHandler(wd_events.FileSystemEventHandler):
    def __init__(self, watcher: ExitWatcher, bundle: str) -> None:
        self.watcher = watcher
        self.bundle = bundle

    def on_any_event(self, event: wd_events.FileSystemEvent) -> None:
        if event.event_type not in ("created", "moved", "modified", "closed"):
            return
        target = os.fsdecode(getattr(event, "dest_path", "") or event.src_path)
        if os.path.basename(target) == EXIT and os.path.dirname(target) == self.bundle:
            self.watcher._exited(self.bundle)


class ExitWatcher:
    def __init__(self, run_root: str, on_exit: OnExit) -> None:
        self.directory = os.path.join(run_root, "containers")
        self.on_exit = on_exit
        self._observer = observers.Observer()
        self._observer.daemon = True
        self._lock = threading.Lock()
        self._watches: dict[str, object] = {}
        self._reported: dict[str, float] = {}  # bundle → the exit record's mtime reported

    def start(self) -> None:
        os.makedirs(self.directory, mode=0o711, exist_ok=True)
        self._observer.schedule(_BundlesHandler(self), self.directory, recursive=False)
        self._observer.start()
        for name in sorted(os.listdir(self.directory)):
            self._bundle_added(os.path.join(self.directory, name), report=False)

    def stop(self) -> None:
        self._observer.stop()
        self._observer.join(timeout=5)

    def watched(self) -> int:
        with self._lock:
            return len(self._watches)

    def _bundle_added(self, bundle: str, report: bool = True) -> None:
        if os.path.dirname(bundle) != self.directory or not os.path.isdir(bundle):
            return
        with self._lock:
            if bundle in self._watches:
                return
            try:
                self._watches[bundle] = self._observer.schedule(
                    _BundleHandler(self, bundle), bundle, recursive=False
                )
            except OSError:
                return  # gone again already
        if not report:
            self._remember(bundle)
        elif os.path.exists(os.path.join(bundle, EXIT)):
            self._exited(bundle)

    def _remember(self, bundle: str) -> None:
        try:
            self._reported[bundle] = os.stat(os.path.join(bundle, EXIT)).st_mtime
        except OSError:
            pass

    def _bundle_gone(self, bundle: str) -> None:
        with self._lock:
            watch = self._watches.pop(bundle, None)
            self._reported.pop(bundle, None)
        if watch is not None:
            try:
                self._observer.unschedule(watch)  # type: ignore[arg-type]
            except (KeyError, OSError):
                pass

    def _exited(self, bundle: str) -> None:
        path = os.path.join(bundle, EXIT)
        try:
            mtime = os.stat(path).st_mtime
            with open(path, "rb") as f:
                record = json.loads(f.read(65536))
        except (OSError, ValueError):
            return
        with self._lock:
            if self._reported.get(bundle) == mtime:
                return  # the same record seen through a second event
            self._reported[bundle] = mtime
        if not isinstance(record, dict):
            record = {}
        try:
            self.on_exit(os.path.basename(bundle), record)
        except Exception:
            log.exception("exit_callback_failed", bundle=bundle)
