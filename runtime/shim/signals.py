"""Signal numbers, names and dispositions for the shim, without the ``signal`` module.

``signal`` wraps the C module ``_signal`` in ``enum`` classes; importing it
costs every shim ~4 ms and ~0.3 MB of PSS (``runtime.sys.reset_signals`` makes
the same choice). The shim needs only numbers, names and a handful of calls,
which ``_signal`` has. Stdlib only.
"""

from __future__ import annotations

import _signal  # type: ignore[import-not-found]  # the C half of `signal` (no stub)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    Handler = Callable[[int, object], None]

SIGHUP: int = _signal.SIGHUP
SIGINT: int = _signal.SIGINT
SIGQUIT: int = _signal.SIGQUIT
SIGKILL: int = _signal.SIGKILL
SIGUSR1: int = _signal.SIGUSR1
SIGUSR2: int = _signal.SIGUSR2
SIGPIPE: int = _signal.SIGPIPE
SIGTERM: int = _signal.SIGTERM
SIGCHLD: int = _signal.SIGCHLD
SIGSTOP: int = _signal.SIGSTOP
SIGXFSZ: int = _signal.SIGXFSZ
NSIG: int = _signal.NSIG
SIG_DFL: int = _signal.SIG_DFL
SIG_IGN: int = _signal.SIG_IGN

_BY_NAME: dict[str, int] = {
    name: getattr(_signal, name)
    for name in dir(_signal)
    if name.startswith("SIG") and not name.startswith("SIG_")
}
_BY_NUMBER: dict[int, str] = {}
for _name, _number in sorted(_BY_NAME.items()):
    _BY_NUMBER.setdefault(_number, _name)  # SIGABRT before SIGIOT, SIGCHLD before SIGCLD


def number(name: str) -> int | None:
    """The number of ``SIGTERM`` / ``TERM`` (any case); None when unknown."""
    upper = name.upper()
    return _BY_NAME.get(upper if upper.startswith("SIG") else "SIG" + upper)


def name(signum: int) -> str:
    return _BY_NUMBER.get(signum, f"SIG{signum}")


def handle(signum: int, handler: Handler) -> None:
    """Run ``handler`` (in the main thread, between bytecodes) when ``signum`` arrives."""
    _signal.signal(signum, handler)


def set_default(signum: int) -> None:
    _signal.signal(signum, SIG_DFL)


def is_ignored(signum: int) -> bool:
    return bool(_signal.getsignal(signum) == SIG_IGN)


def valid_signals() -> set[int]:
    return set(_signal.valid_signals())


def set_wakeup_fd(fd: int) -> None:
    """Have the C handler write each caught signal's number to ``fd`` (-1: stop)."""
    _signal.set_wakeup_fd(fd, warn_on_full_buffer=False)
