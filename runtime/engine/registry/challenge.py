"""``WWW-Authenticate`` challenges (RFC 7235 / RFC 6750), parsed as data.

A header may carry several challenges (``Basic realm="x", Bearer realm="y"``);
each is a scheme and quoted or bare auth-params. Values are read with their
quotes and backslash escapes, so a realm holding ``:``, ``/`` or ``,`` (every
token realm does) and a scope holding two space-separated scopes survive.
Pure: no I/O.
"""

from __future__ import annotations

import dataclasses

_TOKEN_CHARS = frozenset(
    "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
)


@dataclasses.dataclass(frozen=True)
class Challenge:
    scheme: str  # lowercase: "basic", "bearer"
    params: tuple[tuple[str, str], ...]  # keys lowercase, in header order

    def get(self, key: str) -> str | None:
        return dict(self.params).get(key)

    @property
    def scopes(self) -> tuple[str, ...]:
        """The space-separated scopes of a bearer challenge."""
        return tuple((self.get("scope") or "").split())


class _Cursor:
    def __init__(self, text: str) -> None:
        self.text, self.pos = text, 0

    def skip(self, chars: str = " \t") -> None:
        while self.pos < len(self.text) and self.text[self.pos] in chars:
            self.pos += 1

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def token(self) -> str:
        start = self.pos
        while self.pos < len(self.text) and self.text[self.pos] in _TOKEN_CHARS:
            self.pos += 1
        return self.text[start : self.pos]

    def quoted(self) -> str:
        self.pos += 1  # opening quote
        out = []
        while self.pos < len(self.text):
            char = self.text[self.pos]
            self.pos += 1
            if char == "\\" and self.pos < len(self.text):
                out.append(self.text[self.pos])
                self.pos += 1
            elif char == '"':
                break
            else:
                out.append(char)
        return "".join(out)


def parse(header: str) -> list[Challenge]:
    """Every challenge in a ``WWW-Authenticate`` value; malformed tails are dropped."""
    cur = _Cursor(header)
    found: list[Challenge] = []
    while True:
        cur.skip(" \t,")
        scheme = cur.token()
        if not scheme:
            break
        params: list[tuple[str, str]] = []
        while True:
            cur.skip()
            mark = cur.pos
            key = cur.token()
            cur.skip()
            if not key or cur.peek() != "=":
                cur.pos = mark  # the next challenge's scheme (or the end)
                break
            cur.pos += 1
            cur.skip()
            value = cur.quoted() if cur.peek() == '"' else cur.token()
            params.append((key.lower(), value))
            cur.skip()
            if cur.peek() == ",":
                cur.pos += 1
                continue
            break
        found.append(Challenge(scheme.lower(), tuple(params)))
        if cur.pos >= len(cur.text):
            break
    return found
