"""Where manifests come from, and reading the files they refer to.

The only module of the loader that touches the file system (and only to read):
the ``-f`` arguments (files, directories, ``-`` for stdin), env files, and the
digests of referenced files. Every read is capped at :data:`MAX_FILE_BYTES`, so
a hostile or mistaken input (``-f /dev/zero``) fails with a message instead of
eating the memory.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import os
from collections.abc import Mapping, Sequence
from typing import TextIO

from reconciler.load import problems

__all__ = [
    "MAX_FILE_BYTES",
    "STDIN",
    "Input",
    "expand_home",
    "file_digest",
    "list_inputs",
    "read_stdin",
    "read_text",
]

#: Largest manifest or env file read (4 MiB: a stack of a thousand containers is ~1 MiB).
MAX_FILE_BYTES = 4 * 2**20

STDIN = "-"


@dataclasses.dataclass(frozen=True)
class Input:
    """One manifest source: ``display`` as the user named it, ``path`` absolute (``-``:
    stdin), ``base_dir`` the directory relative paths in it are resolved against."""

    display: str
    path: str
    base_dir: str


def list_inputs(paths: Sequence[str]) -> tuple[list[Input], list[problems.Problem]]:
    """The manifest files named by ``paths``, in order, each once.

    A directory stands for the ``*.yaml`` and ``*.yml`` files directly inside it,
    sorted by name (hidden files, editor backups and subdirectories are skipped,
    as ``kubectl apply -f DIR`` does without ``-R``). A file named twice (also
    through a directory) is read once.
    """
    found: list[Input] = []
    errors: list[problems.Problem] = []
    seen: set[str] = set()
    cwd = os.getcwd()
    if not paths:
        errors.append(
            problems.Problem(None, "", "no manifest given: name a file, a directory or -")
        )
    for given in paths:
        if given == STDIN:
            if STDIN in seen:
                errors.append(problems.Problem(None, "", "'-' (stdin) is named more than once"))
            seen.add(STDIN)
            found.append(Input(STDIN, STDIN, cwd))
            continue
        absolute = os.path.abspath(given)
        if os.path.isdir(absolute):
            try:
                names = sorted(os.listdir(absolute))
            except OSError as exc:
                errors.append(_os_problem(given, exc, "cannot list directory"))
                continue
            files = [
                n
                for n in names
                if n.endswith((".yaml", ".yml"))
                and not n.startswith(".")
                and os.path.isfile(os.path.join(absolute, n))
            ]
            if not files:
                errors.append(
                    problems.Problem(
                        None, "", f"directory {given} has no *.yaml or *.yml file in it"
                    )
                )
            for name in files:
                _add(found, seen, os.path.join(given, name), os.path.join(absolute, name))
        elif os.path.exists(absolute):
            _add(found, seen, given, absolute)
        else:
            errors.append(
                problems.Problem(None, "", f"{given}: no such file or directory: check the path")
            )
    return found, errors


def _add(found: list[Input], seen: set[str], display: str, absolute: str) -> None:
    real = os.path.realpath(absolute)
    if real in seen:
        return
    seen.add(real)
    found.append(Input(display, absolute, os.path.dirname(absolute)))


def _os_problem(display: str, exc: OSError, what: str) -> problems.Problem:
    reason = exc.strerror or str(exc)
    return problems.Problem(None, "", f"{what} {display}: {reason.lower()}")


def _decode(data: bytes, display: str) -> tuple[str | None, problems.Problem | None]:
    if len(data) > MAX_FILE_BYTES:
        return None, problems.Problem(
            problems.SourceLocation(display, 1, 1),
            "",
            f"file is larger than {MAX_FILE_BYTES // 2**20} MiB: split it into several files",
        )
    try:
        return data.decode("utf-8-sig"), None
    except UnicodeDecodeError as exc:
        before = data[: exc.start]
        line = before.count(b"\n") + 1
        column = len(before) - (before.rfind(b"\n") + 1) + 1
        return None, problems.Problem(
            problems.SourceLocation(display, line, column),
            "",
            f"not UTF-8 text (byte 0x{data[exc.start]:02x}): save the file as UTF-8",
        )


def read_text(path: str, display: str) -> tuple[str | None, problems.Problem | None]:
    """The text of ``path``, or why not (too large, not UTF-8, unreadable)."""
    try:
        with open(path, "rb") as stream:
            data = stream.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        return None, _os_problem(display, exc, "cannot read")
    return _decode(data, display)


def read_stdin(stdin: TextIO) -> tuple[str | None, problems.Problem | None]:
    """The text on ``stdin``, capped like a file."""
    text = stdin.read(MAX_FILE_BYTES + 1)
    if len(text) > MAX_FILE_BYTES:
        return _decode(text.encode("utf-8", "surrogateescape"), STDIN)
    return text.removeprefix("\ufeff"), None


def expand_home(path: str, environ: Mapping[str, str]) -> str:
    """``~`` and ``~/x`` from ``HOME`` in ``environ`` (else the password database); ``~user``."""
    if path == "~" or path.startswith("~/"):
        home = environ.get("HOME") or os.path.expanduser("~")
        return home + path[1:]
    return os.path.expanduser(path)


def file_digest(path: str) -> str:
    """``sha256:<hex>`` of the file's content (raises ``OSError``).

    Files of more than 1 MiB (image tarballs, big bind-mounted files) are
    remembered per process by identity and change time (device, inode, size,
    mtime, ctime), so that a watch loop reloading the stack every few seconds
    does not re-read them. Smaller files (env and config files) are always read:
    the kernel's file times are coarse (a few milliseconds), and two same-size
    edits of a config file within one tick must not look alike.
    """
    st = os.stat(path)
    if st.st_size <= _CACHE_ABOVE:
        return _sha256(path)
    return _sha256_cached(path, (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns))


_CACHE_ABOVE = 2**20


@functools.lru_cache(maxsize=256)
def _sha256_cached(path: str, identity: tuple[int, ...]) -> str:
    return _sha256(path)


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return "sha256:" + digest.hexdigest()
