"""``.env`` and ``envFrom`` files: ``KEY=value`` lines.

The format is the one Compose and ``docker run --env-file`` users write, made
strict where they are lenient in ways that hide mistakes:

* blank lines and lines starting with ``#`` are ignored; ``export KEY=value``
  is accepted (so the file can be ``source``-d by a shell);
* spaces around the key and after ``=`` are ignored;
* ``'single quoted'`` values are literal; ``"double quoted"`` values know the
  escapes ``\\n \\t \\r \\" \\\\ \\$``; after the closing quote only a ``#``
  comment may follow;
* unquoted values run to the end of the line; `` #`` (a space, then ``#``)
  starts a comment; trailing spaces are dropped;
* a line without ``=`` (Docker's "copy this variable from my environment") is
  an error here: it would make the result depend on who runs the command. Write
  ``KEY=${KEY}`` in the manifest's ``env`` instead.

Values are not interpolated. A later line wins over an earlier one.
"""

from __future__ import annotations

import re

from reconciler.load import problems

__all__ = ["parse_env"]

_LINE = re.compile(r"^\s*(?:export\s+)?(?P<key>[^\s=#][^\s=]*)\s*=\s*(?P<value>.*?)\s*$")
_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]*$")
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\", "$": "$"}


def parse_env(text: str, file: str) -> tuple[dict[str, str], list[problems.Problem]]:
    """The variables in ``text`` (an env file shown as ``file`` in problems)."""
    result: dict[str, str] = {}
    found: list[problems.Problem] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.rstrip("\r")
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        where = problems.SourceLocation(file, number, len(line) - len(line.lstrip()) + 1)
        match = _LINE.match(line)
        if not match:
            found.append(
                problems.Problem(
                    where, "", f"expected KEY=value, got {stripped[:40]!r}: add '=' and a value"
                )
            )
            continue
        key = match.group("key")
        if not _KEY.match(key):
            found.append(
                problems.Problem(
                    where,
                    "",
                    f"invalid variable name {key!r}: use letters, digits, '_', '.' and '-', "
                    "not starting with a digit",
                )
            )
            continue
        try:
            result[key] = _value(match.group("value"))
        except ValueError as exc:
            column = match.start("value") + 1
            found.append(
                problems.Problem(problems.SourceLocation(file, number, column), "", str(exc))
            )
    return result, found


def _value(text: str) -> str:
    if text.startswith("'"):
        end = text.find("'", 1)
        if end < 0:
            raise ValueError("unterminated single-quoted value: add the closing '")
        _only_comment_after(text[end + 1 :])
        return text[1:end]
    if text.startswith('"'):
        out: list[str] = []
        i = 1
        while i < len(text):
            char = text[i]
            if char == "\\" and i + 1 < len(text):
                out.append(_ESCAPES.get(text[i + 1], "\\" + text[i + 1]))
                i += 2
                continue
            if char == '"':
                _only_comment_after(text[i + 1 :])
                return "".join(out)
            out.append(char)
            i += 1
        raise ValueError('unterminated double-quoted value: add the closing "')
    comment = re.search(r"\s#", text)
    return (text[: comment.start()] if comment else text).rstrip()


def _only_comment_after(rest: str) -> None:
    rest = rest.strip()
    if rest and not rest.startswith("#"):
        raise ValueError(f"unexpected {rest[:20]!r} after the closing quote")
