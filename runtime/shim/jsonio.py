"""JSON for the shim, without importing the ``json`` package.

``json`` imports ``re`` and ``enum``: about 5 ms and 0.5 MB of PSS in every
shim, for a process that parses a few short lines. The work is done by
CPython's C accelerator ``_json`` either way; this module calls it directly
(the way ``json.encoder``/``json.decoder`` do), with compact separators and
UTF-8 kept as is (no ``\\uXXXX`` escapes), like Docker's json-file lines.

One quirk is handled here: the C scanner builds its error from
``json.decoder.JSONDecodeError`` and finds it only once ``json`` has been
imported. So on any parse failure :func:`loads` imports ``json`` and lets it
raise the real error (a ``ValueError``): the import is paid only on bad input.
On an interpreter without ``_json`` this module is ``json`` itself.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

_WHITESPACE = " \t\n\r"

try:
    import _json
except ImportError:  # pragma: no cover - CPython always has it
    _json = None  # type: ignore[assignment]


def _reject_constant(name: str) -> object:
    raise ValueError(f"{name} is not valid JSON")


class _Context:
    """What ``_json.make_scanner`` reads from a ``json.JSONDecoder``."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = staticmethod(_reject_constant)


def _not_serializable(obj: object) -> object:
    raise TypeError(f"object of type {type(obj).__name__} is not JSON serializable")


if _json is not None:
    _scan = _json.make_scanner(_Context)  # type: ignore[arg-type]


def _encoder(sort_keys: bool, default: Callable[[object], object] | None) -> Callable[..., object]:
    assert _json is not None
    return _json.make_encoder(
        {}, default or _not_serializable, _json.encode_basestring, None, ":", ",",
        sort_keys, False, False,
    )  # fmt: skip


def dumps(
    obj: object, *, sort_keys: bool = False, default: Callable[[object], object] | None = None
) -> str:
    """Compact JSON text of ``obj``; ``default`` turns unknown objects into JSON-able ones."""
    if _json is None:  # pragma: no cover
        import json

        return json.dumps(
            obj, separators=(",", ":"), ensure_ascii=False, sort_keys=sort_keys, default=default
        )
    chunks = _encoder(sort_keys, default)(obj, 0)
    return "".join(chunks)  # type: ignore[arg-type]


def quote(text: str) -> str:
    """``text`` as a JSON string literal."""
    if _json is None:  # pragma: no cover
        import json

        return json.dumps(text, ensure_ascii=False)
    return _json.encode_basestring(text)


def loads(data: str | bytes | bytearray) -> object:
    """Parse one JSON document; ValueError (``json.JSONDecodeError``) when it is not one."""
    text = data.decode() if isinstance(data, (bytes, bytearray)) else data
    if _json is None:  # pragma: no cover
        import json

        return json.loads(text)
    start = len(text) - len(text.lstrip(_WHITESPACE))
    try:
        value, end = _scan(text, start)
    except Exception:  # StopIteration (nothing there), SystemError (see the docstring)
        return _slow_loads(text)
    if text[end:].strip(_WHITESPACE):
        return _slow_loads(text)  # extra data after the document
    return value


def _slow_loads(text: str) -> object:
    import json

    return json.loads(text, parse_constant=_reject_constant)
