"""The engine's structured logger, with structlog imported when a line is logged.

``import structlog`` costs a CLI start 45-80 ms (it imports rich and twisted
when they are installed) and a CLI run at the default level logs nothing: so
:func:`get_logger` returns a stand-in that drops what the CLI's level filters
out and imports structlog only for a line that is written. The daemon
configures structlog itself and never sets a level here: every call goes
through to its configuration.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

__all__ = ["Logger", "get_logger", "use_console"]

_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "exception": logging.ERROR,
}

#: Set by :func:`use_console`: calls below it are dropped here (None: all go through).
_threshold: int | None = None
_configured = False


def use_console(verbosity: int) -> None:
    """The CLI's logging: human lines on stderr, WARNING (0), INFO (1) or DEBUG (2+)."""
    global _threshold, _configured
    _threshold = {0: logging.WARNING, 1: logging.INFO}.get(verbosity, logging.DEBUG)
    _configured = False


def _structlog_logger(name: str) -> Any:
    global _configured
    import structlog

    if _threshold is not None and not _configured:
        structlog.configure(
            processors=[
                _stack_is_a_name,
                structlog.processors.add_log_level,
                structlog.processors.TimeStamper(fmt="iso"),
                structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty()),
            ],
            wrapper_class=structlog.make_filtering_bound_logger(_threshold),
            logger_factory=structlog.PrintLoggerFactory(sys.stderr),
            cache_logger_on_first_use=True,
        )
        _configured = True
    return structlog.get_logger(name)


def _stack_is_a_name(_logger: Any, _method: str, values: Any) -> Any:
    """The engine binds ``stack`` to a stack's name; structlog's console renderer
    would print that key on a line of its own, as a stack trace."""
    if "stack" in values:
        values["stack_name"] = values.pop("stack")
    return values


class Logger:
    """``structlog.get_logger(name).bind(**context)``, made on the first line written."""

    def __init__(self, name: str, context: dict[str, Any] | None = None) -> None:
        self._name = name
        self._context = context or {}

    def bind(self, **values: Any) -> Logger:
        return Logger(self._name, {**self._context, **values})

    def _log(self, method: str, event: str, **values: Any) -> None:
        if _threshold is not None and _LEVELS[method] < _threshold:
            return
        getattr(_structlog_logger(self._name), method)(event, **self._context, **values)

    def debug(self, event: str, **values: Any) -> None:
        self._log("debug", event, **values)

    def info(self, event: str, **values: Any) -> None:
        self._log("info", event, **values)

    def warning(self, event: str, **values: Any) -> None:
        self._log("warning", event, **values)

    def error(self, event: str, **values: Any) -> None:
        self._log("error", event, **values)

    def exception(self, event: str, **values: Any) -> None:
        self._log("exception", event, **values)


def get_logger(name: str) -> Logger:
    return Logger(name)
