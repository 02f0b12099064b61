"""The ``process`` section of config.json, and the small typed getter that
all of the config parsing shares (:func:`want`).

Capabilities become bit masks here, rlimit names become numbers (a static
table, the same on every Linux architecture we run on, so the ``resource``
module is not needed), so the init only applies numbers.
"""

from __future__ import annotations

from runtime import errors
from runtime.sys import caps

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import TypeVar

    T = TypeVar("T")

__all__ = ["RLIMITS", "Capabilities", "Process", "Rlimit", "parse", "want"]

#: RLIMIT_* numbers of asm-generic/resource.h (x86_64 and aarch64 alike).
RLIMITS = {
    "RLIMIT_CPU": 0,
    "RLIMIT_FSIZE": 1,
    "RLIMIT_DATA": 2,
    "RLIMIT_STACK": 3,
    "RLIMIT_CORE": 4,
    "RLIMIT_RSS": 5,
    "RLIMIT_NPROC": 6,
    "RLIMIT_NOFILE": 7,
    "RLIMIT_MEMLOCK": 8,
    "RLIMIT_AS": 9,
    "RLIMIT_LOCKS": 10,
    "RLIMIT_SIGPENDING": 11,
    "RLIMIT_MSGQUEUE": 12,
    "RLIMIT_NICE": 13,
    "RLIMIT_RTPRIO": 14,
    "RLIMIT_RTTIME": 15,
}
_CAP_SETS = ("bounding", "effective", "permitted", "inheritable", "ambient")
_JSON_NAMES = {
    dict: "an object",
    list: "a list",
    str: "a string",
    int: "an integer",
    bool: "a boolean",
}


def want(value: object, kind: type[T], where: str) -> T:
    """``value`` if it is a ``kind``, else InvalidSpec naming ``where``.

    ``bool`` is not accepted as an ``int`` (JSON ``true`` is not a number).
    """
    if isinstance(value, kind) and not (kind is int and isinstance(value, bool)):
        return value
    name = _JSON_NAMES.get(kind, kind.__name__)
    shown = "missing" if value is None else f"got {type(value).__name__} {value!r:.40}"
    raise errors.InvalidSpec(f"config.json: {where} must be {name} ({shown})")


class Capabilities:
    """The five sets as masks (bit n = capability n)."""

    __slots__ = _CAP_SETS

    def __init__(self) -> None:
        self.bounding = 0
        self.effective = 0
        self.permitted = 0
        self.inheritable = 0
        self.ambient = 0


class Rlimit:
    __slots__ = ("hard", "name", "number", "soft")

    def __init__(self, name: str, number: int, soft: int, hard: int) -> None:
        self.name = name
        self.number = number
        self.soft = soft
        self.hard = hard


class Process:
    def __init__(self) -> None:
        self.args: list[str] = []
        self.env: list[str] = []
        self.cwd = "/"
        self.uid = 0
        self.gid = 0
        self.additional_gids: list[int] = []
        self.umask: int | None = None
        self.capabilities = Capabilities()
        self.rlimits: list[Rlimit] = []
        self.no_new_privileges = False
        self.oom_score_adj: int | None = None
        self.terminal = False
        self.console_size: tuple[int, int] | None = None  # rows, columns

    def env_value(self, key: str) -> str | None:
        """The value of ``key`` in ``env`` (the last one wins, as in execve users)."""
        found = None
        prefix = key + "="
        for item in self.env:
            if item.startswith(prefix):
                found = item[len(prefix) :]
        return found


def parse(value: object) -> Process:
    p = want(value, dict, "process")
    out = Process()
    out.terminal = want(p.get("terminal", False), bool, "process.terminal")
    if p.get("consoleSize") is not None:
        size = want(p.get("consoleSize"), dict, "process.consoleSize")
        rows = want(size.get("height", 0), int, "process.consoleSize.height")
        cols = want(size.get("width", 0), int, "process.consoleSize.width")
        if not (0 <= rows < 65536 and 0 <= cols < 65536):
            raise errors.InvalidSpec("config.json: process.consoleSize must fit in 16 bits")
        out.console_size = (rows, cols)
    for key in ("apparmorProfile", "selinuxLabel", "ioPriority", "scheduler"):
        if p.get(key):
            raise errors.InvalidSpec(
                f"config.json: process.{key} is not supported by pyreconcile-runc yet: remove it"
            )
    args = want(p.get("args"), list, "process.args")
    if not args:
        raise errors.InvalidSpec("config.json: process.args must name the program to run")
    out.args = [want(a, str, f"process.args[{i}]") for i, a in enumerate(args)]
    if not out.args[0]:
        raise errors.InvalidSpec("config.json: process.args[0] must not be empty")
    for i, item in enumerate(want(p.get("env", []), list, "process.env")):
        text = want(item, str, f"process.env[{i}]")
        if "=" not in text or text.startswith("="):
            raise errors.InvalidSpec(f"config.json: process.env[{i}]: {text!r} is not KEY=value")
        out.env.append(text)
    out.cwd = want(p.get("cwd"), str, "process.cwd")
    if not out.cwd.startswith("/"):
        raise errors.InvalidSpec(f"config.json: process.cwd: {out.cwd!r} must be absolute")
    user = want(p.get("user", {}), dict, "process.user")
    out.uid = _id(user.get("uid", 0), "process.user.uid")
    out.gid = _id(user.get("gid", 0), "process.user.gid")
    gids = want(user.get("additionalGids", []), list, "process.user.additionalGids")
    out.additional_gids = [_id(g, f"process.user.additionalGids[{i}]") for i, g in enumerate(gids)]
    if user.get("umask") is not None:
        out.umask = want(user.get("umask"), int, "process.user.umask")
        if not 0 <= out.umask <= 0o777:
            raise errors.InvalidSpec("config.json: process.user.umask must be within 0..0o777")
    if user.get("username"):
        raise errors.InvalidSpec("config.json: process.user.username is for Windows: use uid")
    _capabilities(want(p.get("capabilities", {}), dict, "process.capabilities"), out.capabilities)
    _rlimits(want(p.get("rlimits", []), list, "process.rlimits"), out)
    out.no_new_privileges = want(p.get("noNewPrivileges", False), bool, "process.noNewPrivileges")
    if p.get("oomScoreAdj") is not None:
        out.oom_score_adj = want(p.get("oomScoreAdj"), int, "process.oomScoreAdj")
        if not -1000 <= out.oom_score_adj <= 1000:
            raise errors.InvalidSpec("config.json: process.oomScoreAdj must be within -1000..1000")
    return out


def _id(value: object, where: str) -> int:
    n = want(value, int, where)
    if not 0 <= n < 2**32 - 1:
        raise errors.InvalidSpec(f"config.json: {where}: {n} is not a valid id")
    return n


def _capabilities(section: dict[str, object], out: Capabilities) -> None:
    for name in _CAP_SETS:
        mask = 0
        items = want(section.get(name, []), list, f"process.capabilities.{name}")
        for i, item in enumerate(items):
            where = f"process.capabilities.{name}[{i}]"
            cap = want(item, str, where)
            try:
                mask |= 1 << caps.number(cap)
            except KeyError:
                raise errors.InvalidSpec(
                    f"config.json: {where}: unknown capability {cap!r} (names look like CAP_KILL)"
                ) from None
        setattr(out, name, mask)


def _rlimits(items: list[object], out: Process) -> None:
    seen = set()
    for i, item in enumerate(items):
        where = f"process.rlimits[{i}]"
        r = want(item, dict, where)
        name = want(r.get("type"), str, f"{where}.type")
        if name not in RLIMITS:
            raise errors.InvalidSpec(f"config.json: {where}.type: unknown rlimit {name!r}")
        if name in seen:
            raise errors.InvalidSpec(f"config.json: {where}.type: {name} is set twice")
        seen.add(name)
        soft = want(r.get("soft"), int, f"{where}.soft")
        hard = want(r.get("hard"), int, f"{where}.hard")
        for value, which in ((soft, "soft"), (hard, "hard")):
            if not 0 <= value < 2**64:
                raise errors.InvalidSpec(f"config.json: {where}.{which} must be within 0..2^64-1")
        if soft > hard:
            raise errors.InvalidSpec(
                f"config.json: {where}: soft limit {soft} is above hard {hard}"
            )
        out.rlimits.append(Rlimit(name, RLIMITS[name], soft, hard))
