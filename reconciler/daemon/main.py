"""``pyreconcile daemon``: the API server, the loop and its watchers, signals, systemd.

Start-up order: open the engine (it restores what the shims left: reattach,
record exits), bind the socket (0660, group ``pyreconcile`` if it exists), start
the workers, the watchers and the git pollers, then tell systemd READY. Signals:
SIGTERM and SIGINT shut down gracefully — the socket stops taking requests,
rounds in flight get :data:`~reconciler.daemon.controller.STOP_GRACE` seconds,
and every container keeps running (the shims own them); SIGHUP reads the
configuration file again. The main thread only waits for signals and pings
systemd's watchdog, so a daemon whose main loop hangs is restarted.
"""

from __future__ import annotations

import dataclasses
import faulthandler
import http.server
import importlib.metadata
import logging
import os
import select
import signal
import sys
import threading
from types import FrameType
from typing import Any

import structlog

from reconciler.daemon import (
    api_daemon,
    api_runtime,
    api_stacks,
    events,
    exits,
    gitsource,
    metrics,
    server,
    sources,
    systemd,
    watch,
)
from reconciler.daemon import (
    app as app_mod,
)
from reconciler.daemon import (
    client as api_client,
)
from reconciler.daemon import (
    config as config_mod,
)
from reconciler.daemon import (
    controller as controller_mod,
)
from runtime import client, errors

log = structlog.get_logger(__name__)


@dataclasses.dataclass(frozen=True)
class Options:
    root: str | None = None
    run_root: str | None = None
    config_path: str | None = None
    socket: str | None = None
    sources: tuple[config_mod.SourceConfig, ...] = ()
    workers: int | None = None
    resync: float | None = None
    metrics_address: str | None = None
    verbosity: int = 0


@dataclasses.dataclass(frozen=True)
class Roots:
    """The engine's roots as ``runtime.client.open_local`` chooses them (flags, then
    ``PYRECONCILE_*``, then the defaults), for the daemon's own paths."""

    root: str
    run_root: str
    cgroup_parent: str | None

    @classmethod
    def from_env(cls, root: str | None, run_root: str | None) -> Roots:
        return cls(
            root=os.path.abspath(
                root or os.environ.get("PYRECONCILE_ROOT") or "/var/lib/pyreconcile"
            ),
            run_root=os.path.abspath(
                run_root or os.environ.get("PYRECONCILE_RUN_ROOT") or "/run/pyreconcile"
            ),
            cgroup_parent=os.environ.get("PYRECONCILE_CGROUP_PARENT") or None,
        )


def configure_logging(verbosity: int) -> None:
    """JSON lines on stderr (journald keeps them); one line per event."""
    level = logging.DEBUG if verbosity > 0 else logging.INFO
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=True,
    )


class Daemon:
    def __init__(self, options: Options) -> None:
        self.options = options
        self.layout = Roots.from_env(options.root, options.run_root)
        self.config = self._read_config()
        self.socket_path = (
            options.socket
            or self.config.socket
            or os.path.join(self.layout.run_root, api_client.SOCKET_NAME)
        )
        self.events = events.EventLog()
        self.metrics = metrics.Metrics()
        self.runtime: client.RuntimeClient | None = None
        # the main thread sleeps in select() on this pipe; signals write to it
        # (``signal.set_wakeup_fd``: a signal that another thread receives still wakes
        # the main thread at once), and so does an API reload
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.stopping = False
        self.reload_asked = False
        self._pollers: dict[str, gitsource.GitPoller] = {}

    def _read_config(self) -> config_mod.DaemonConfig:
        base = config_mod.load_config(self.options.config_path)
        updates: dict[str, Any] = {}
        if self.options.workers is not None:
            updates["workers"] = self.options.workers
        if self.options.resync is not None:
            updates["resync"] = self.options.resync
        if self.options.metrics_address is not None:
            updates["metrics_address"] = self.options.metrics_address
        merged = config_mod.with_sources(base.model_copy(update=updates), self.options.sources)
        return config_mod.DaemonConfig.model_validate(merged.model_dump())

    def _sources(self) -> list[sources.Source]:
        made: list[sources.Source] = []
        for cfg in self.config.source:
            if cfg.git:
                workdir = os.path.join(self.layout.root, "daemon", "git", cfg.name)
                made.append(gitsource.GitSource(cfg, workdir))
            else:
                made.append(sources.FileSource(cfg))
        return made

    def _on_loaded(self, key: str, revision: sources.Revision | None) -> None:
        controller = self.controller
        found = [s for s in controller.sources() if s.name == key]
        if not found:
            self.files.remove(key)
            return
        files, dirs = found[0].watch_paths()
        if revision is not None:
            files = (*files, *revision.watch)
            dirs = (*dirs, *revision.watch_dirs)
        if files or dirs:
            self.files.set_paths(key, files, dirs)

    def _start_pollers(self) -> None:
        wanted = {
            s.name: s for s in self.controller.sources() if isinstance(s, gitsource.GitSource)
        }
        for name in set(self._pollers) - set(wanted):
            self._pollers.pop(name).stop()
        for name, source in wanted.items():
            poller = self._pollers.get(name)
            if poller is not None and poller.source is source:
                continue
            if poller is not None:
                poller.stop()
            poller = gitsource.GitPoller(
                source,
                on_new=lambda key: self.controller.trigger(key, "git"),
                on_error=self._fetch_failed,
            )
            self._pollers[name] = poller
            poller.start()

    def _fetch_failed(self, key: str, message: str) -> None:
        with self.metrics.lock:
            self.metrics.source_errors.inc(source=key)
        self.events.emit("source_fetch_failed", source=key, message=message, result="error")

    def reload(self) -> None:
        """Read the configuration again; sources added, changed, removed take effect now."""
        systemd.notify("RELOADING=1", "STATUS=reloading the configuration")
        try:
            fresh = self._read_config()
        except errors.RuntimeError_ as exc:
            self.events.emit("config_invalid", message=str(exc), result="error")
            systemd.notify("READY=1", "STATUS=configuration invalid; the previous one stays")
            return
        for key in ("socket", "workers", "metrics_address", "max_request_bytes"):
            if getattr(fresh, key) != getattr(self.config, key):
                self.events.emit("config_needs_restart", message=f"{key} changes at the next start")
        self.config = fresh
        self.controller.resync = fresh.resync
        self.controller.set_sources(self._sources())
        self._start_pollers()
        self.events.emit("config_reloaded", message=f"{len(fresh.source)} sources", result="ok")
        systemd.notify("READY=1", "STATUS=serving")

    def run(self) -> int:
        configure_logging(self.options.verbosity)
        faulthandler.register(signal.SIGUSR1, all_threads=True)  # stacks to stderr, for a hang
        try:
            version = importlib.metadata.version("pyreconcile")
        except importlib.metadata.PackageNotFoundError:
            version = "0"
        os.chdir("/")
        self.runtime = client.open_local(
            self.layout.root, self.layout.run_root, self.layout.cgroup_parent
        )
        self.controller = controller_mod.Controller(
            self.runtime,
            self.layout.run_root,
            self.events,
            self.metrics,
            workers=self.config.workers,
            resync=self.config.resync,
            on_loaded=self._on_loaded,
        )
        self.app = app_mod.App(
            runtime=self.runtime,
            root=self.layout.root,
            run_root=self.layout.run_root,
            events=self.events,
            metrics=self.metrics,
            controller=self.controller,
            on_api_write=self.controller.on_api_write,
            reload=self._ask_reload,
            version=version,
        )
        routes = [*api_daemon.ROUTES, *api_stacks.ROUTES, *api_runtime.ROUTES]
        server.prepare_socket(self.socket_path, self.config.socket_group)
        self.server = server.Server(
            self.socket_path, self.app, routes, self.config.max_request_bytes
        )
        server.bind(self.server, self.socket_path, self.config.socket_group)
        self.files = watch.FileWatcher(self.controller.on_file_change)
        self.exits = exits.ExitWatcher(self.layout.run_root, self.controller.on_exit)
        self.files.start()
        self.exits.start()
        self.controller.start()
        self.controller.set_sources(self._sources())
        self._start_pollers()
        serving = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.5}, name="api", daemon=True
        )
        serving.start()
        metrics_server = self._serve_metrics()
        signal.set_wakeup_fd(self._wake_w, warn_on_full_buffer=False)
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._on_stop)
        signal.signal(signal.SIGHUP, self._on_hup)
        self.events.emit(
            "daemon_started",
            message=f"serving {self.socket_path}; {len(self.config.source)} sources",
            result="ok",
        )
        systemd.notify("READY=1", f"STATUS=serving {self.socket_path}", f"MAINPID={os.getpid()}")
        interval = systemd.watchdog_interval()
        try:
            while not self.stopping:
                select.select([self._wake_r], [], [], interval)
                try:
                    os.read(self._wake_r, 4096)
                except BlockingIOError:
                    pass
                if interval is not None:
                    systemd.notify("WATCHDOG=1")
                if self.reload_asked and not self.stopping:
                    self.reload_asked = False
                    self.reload()
        finally:
            self._shutdown(metrics_server)
        return 0

    def _ask_reload(self) -> None:
        self.reload_asked = True
        self._wake()

    def _on_hup(self, signum: int, frame: FrameType | None) -> None:
        self._ask_reload()

    def _on_stop(self, signum: int, frame: FrameType | None) -> None:
        self.stopping = True
        self._wake()

    def _wake(self) -> None:
        try:
            os.write(self._wake_w, b"\0")
        except BlockingIOError:
            pass  # full: the main thread has wake-ups enough

    def _shutdown(self, metrics_server: http.server.HTTPServer | None) -> None:
        systemd.notify("STOPPING=1", "STATUS=stopping; containers keep running")
        self.events.emit("daemon_stopping", message="containers keep running")
        self.server.stopping.set()
        self.server.shutdown()
        self.server.server_close()
        try:
            os.unlink(self.socket_path)
        except FileNotFoundError:
            pass
        if metrics_server is not None:
            metrics_server.shutdown()
            metrics_server.server_close()
        for poller in self._pollers.values():
            poller.stop()
        self.files.stop()
        self.exits.stop()
        self.controller.stop()
        if self.runtime is not None:
            self.runtime.close()

    def _serve_metrics(self) -> http.server.HTTPServer | None:
        address = self.config.metrics_address
        if address is None:
            return None
        host, _, port = address.rpartition(":")
        registry = self.metrics

        class MetricsHandler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path.split("?")[0] != "/metrics":
                    self.send_error(404)
                    return
                body = registry.render().encode()
                self.send_response(200)
                self.send_header("Content-Type", api_daemon.METRICS_TYPE)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                return None

        metrics_server = http.server.ThreadingHTTPServer(
            (host.strip("[]"), int(port)), MetricsHandler
        )
        metrics_server.daemon_threads = True
        threading.Thread(target=metrics_server.serve_forever, name="metrics", daemon=True).start()
        return metrics_server


def run(options: Options) -> int:
    return Daemon(options).run()
