"""YAML text → plain Python documents, with the position of every key and value.

Design choices:

* **Events, not ruamel's composer or constructor.** ruamel.yaml's parser (the C
  one from ``ruamel.yaml.clibz``/``clib`` when installed: about 20 times faster,
  the pure-Python one otherwise) yields events; this module builds plain
  ``dict``/``list``/scalar values from them with an explicit stack. That gives
  us, in one pass: positions for every key and value (keyed by field path, so
  that pydantic's error ``loc`` maps straight back to ``file:line:column``);
  duplicate keys reported with both places and without stopping; and the limits
  below enforced *while* parsing, before any work is spent on a hostile input.
  (ruamel's C composer recurses in C and crashes the interpreter on deeply
  nested input; libyaml's scanner is quadratic in flow nesting: stopping at
  :data:`MAX_DEPTH` while reading events avoids both.)
* **YAML 1.2 core schema** for values (:mod:`.scalars`), whatever parser
  backend is in use. Mapping keys are always strings (their text): keys in
  manifests are field names, variable names and label keys.
* **Aliases** are allowed (anchors for shared env maps, ``<<`` merge keys), and
  share the Python object instead of copying it; every alias costs the size of
  what it stands for against a node budget, so a "billion laughs" document is
  rejected in microseconds. Positions inside an expanded alias are those of
  the alias itself.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

from ruamel.yaml import YAML, events
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.reader import ReaderError

from reconciler.load import problems, scalars

try:  # the C parser (optional, "ruamel.yaml[libyaml]"); the pure one is the fallback
    from ruamel.yaml import cyaml as _cyaml

    _CLoader: Any = _cyaml.CBaseLoader
except ImportError:  # pragma: no cover - depends on what is installed
    _CLoader = None

__all__ = [
    "HAVE_C_PARSER",
    "USE_C_PARSER",
    "MAX_DEPTH",
    "MAX_DOCUMENTS",
    "MAX_NODES",
    "Budget",
    "Path",
    "Positions",
    "RawDocument",
    "parse_documents",
]

#: Most documents in one stack (all inputs together).
MAX_DOCUMENTS = 1000
#: Most YAML nodes in one stack, counting every alias as the nodes it stands for.
MAX_NODES = 1_000_000
#: Deepest nesting of mappings and sequences (manifests need about 6).
MAX_DEPTH = 64

HAVE_C_PARSER = _CLoader is not None
#: Whether to use the C parser when it is installed (tests switch it off to cover both).
USE_C_PARSER = True

Path = tuple[str | int, ...]


class Budget:
    """What is left of the limits for one load (shared by all its inputs)."""

    def __init__(self, documents: int = MAX_DOCUMENTS, nodes: int = MAX_NODES) -> None:
        self.max_documents = self.documents = documents
        self.max_nodes = self.nodes = nodes


@dataclasses.dataclass(frozen=True)
class Positions:
    """Where each field path of one document is in its file (1-based line, column)."""

    file: str
    keys: dict[Path, tuple[int, int]]
    values: dict[Path, tuple[int, int]]

    def _loc(self, where: tuple[int, int]) -> problems.SourceLocation:
        return problems.SourceLocation(self.file, where[0], where[1])

    def value(self, path: Path) -> problems.SourceLocation:
        """The value at ``path``; for a path that is not in the file (a missing field, a
        place inside an alias), the key of the nearest enclosing field that is."""
        if path in self.values:
            return self._loc(self.values[path])
        for end in range(len(path) - 1, -1, -1):
            prefix = path[:end]
            if prefix in self.keys:
                return self._loc(self.keys[prefix])
            if prefix in self.values:
                return self._loc(self.values[prefix])
        return self._loc((1, 1))  # pragma: no cover - the root always has a position

    def key(self, path: Path) -> problems.SourceLocation:
        """The key that names ``path`` (for unknown fields), else as :meth:`value`."""
        if path in self.keys:
            return self._loc(self.keys[path])
        return self.value(path)

    def has(self, path: Path) -> bool:
        return path in self.values


@dataclasses.dataclass(frozen=True)
class RawDocument:
    """One non-empty document: plain data, the positions, where it starts."""

    data: Any
    positions: Positions
    start: problems.SourceLocation


class _Abort(Exception):
    """Stop reading this input: a limit was hit or the YAML is broken."""

    def __init__(self, problem: problems.Problem) -> None:
        super().__init__(problem.message)
        self.problem = problem


_SKIP = object()  # a pending key whose value is read but dropped (duplicate, bad key)
_MERGE = object()  # the pending key is ``<<``


@dataclasses.dataclass
class _Frame:
    value: Any  # the dict or list being built
    path: Path
    record: bool  # whether positions are recorded (not for dropped values)
    anchor: str | None
    mark: tuple[int, int]
    size: int = 1
    key: Any = None  # mappings: None (expecting a key), a str, _SKIP or _MERGE
    key_mark: tuple[int, int] = (0, 0)
    merges: list[tuple[Any, tuple[int, int]]] = dataclasses.field(default_factory=list)


def _mark(event: Any) -> tuple[int, int]:
    return (event.start_mark.line + 1, event.start_mark.column + 1)


def _events(text: str, use_c: bool) -> Iterator[Any]:
    if use_c and _CLoader is not None:
        loader = _CLoader(text)
        try:
            while True:
                event = loader.get_event()
                yield event
                if event is None or isinstance(event, events.StreamEndEvent):
                    return
        finally:
            loader.dispose()
    else:
        yield from YAML(typ="safe", pure=True).parse(text)


def _char(character: Any) -> str:
    if isinstance(character, bytes | bytearray) and character:
        return f"byte 0x{character[0]:02x}"
    code = ord(character) if isinstance(character, str) and character else character
    return f"U+{code:04X}" if isinstance(code, int) else repr(character)


def _yaml_problem(exc: YAMLError, file: str, text: str) -> problems.Problem:
    if isinstance(exc, MarkedYAMLError) and exc.problem_mark is not None:
        mark = exc.problem_mark
        message = f"invalid YAML: {exc.problem}"
        if exc.context:
            message += f" ({exc.context})"
        return problems.Problem(
            problems.SourceLocation(file, mark.line + 1, mark.column + 1), "", message
        )
    if isinstance(exc, ReaderError) and isinstance(exc.position, int):
        before = text[: exc.position]
        line = before.count("\n") + 1
        column = exc.position - (before.rfind("\n") + 1) + 1
        return problems.Problem(
            problems.SourceLocation(file, line, column),
            "",
            f"invalid YAML: unacceptable character {_char(exc.character)}: {exc.reason}",
        )
    first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return problems.Problem(problems.SourceLocation(file, 1, 1), "", f"invalid YAML: {first}")


def parse_documents(
    text: str, file: str, budget: Budget, *, use_c: bool | None = None
) -> tuple[list[RawDocument], list[problems.Problem]]:
    """The non-empty documents of ``text`` and the problems found reading them.

    A broken document, or a limit hit, stops the reading of this input (the
    documents before it are kept); duplicate keys and bad tags do not.
    """
    builder = _Builder(file, budget)
    try:
        for event in _events(text, USE_C_PARSER if use_c is None else use_c):
            builder.feed(event)
    except _Abort as abort:
        builder.problems.append(abort.problem)
    except YAMLError as exc:
        builder.problems.append(_yaml_problem(exc, file, text))
    except RecursionError:  # pragma: no cover - MAX_DEPTH stops well before
        builder.problems.append(
            problems.Problem(problems.SourceLocation(file, 1, 1), "", "the YAML nests too deeply")
        )
    return builder.documents, builder.problems


class _Builder:
    """Turns one input's events into :class:`RawDocument` values."""

    def __init__(self, file: str, budget: Budget) -> None:
        self.file = file
        self.budget = budget
        self.documents: list[RawDocument] = []
        self.problems: list[problems.Problem] = []
        self._stack: list[_Frame] = []
        self._anchors: dict[str, tuple[Any, int]] = {}
        self._keys: dict[Path, tuple[int, int]] = {}
        self._values: dict[Path, tuple[int, int]] = {}
        self._doc_mark = (1, 1)

    # -- helpers

    def _problem(self, mark: tuple[int, int], message: str, path: Path = ()) -> None:
        self.problems.append(
            problems.Problem(problems.SourceLocation(self.file, *mark), path_text(path), message)
        )

    def _abort(self, mark: tuple[int, int], message: str) -> None:
        raise _Abort(problems.Problem(problems.SourceLocation(self.file, *mark), "", message))

    def _spend(self, nodes: int, mark: tuple[int, int]) -> None:
        self.budget.nodes -= nodes
        if self.budget.nodes < 0:
            self._abort(
                mark,
                f"too many YAML nodes: the manifests expand to more than {self.budget.max_nodes} "
                "(aliases of aliases, as in a 'billion laughs' attack?); "
                "write the values out or split the stack",
            )

    def _child(self) -> tuple[Path, bool, bool]:
        """The path of the node about to start, whether to record it, whether it is a key."""
        if not self._stack:
            return (), True, False
        top = self._stack[-1]
        if isinstance(top.value, list):
            return (*top.path, len(top.value)), top.record, False
        if top.key is None:
            return top.path, False, True
        if top.key is _SKIP or top.key is _MERGE:
            return top.path, False, False
        return (*top.path, top.key), top.record, False

    # -- events

    def feed(self, event: Any) -> None:
        if isinstance(event, events.ScalarEvent):
            self._scalar(event)
        elif isinstance(event, events.AliasEvent):
            self._alias(event)
        elif isinstance(event, events.MappingStartEvent | events.SequenceStartEvent):
            self._start(event)
        elif isinstance(event, events.MappingEndEvent | events.SequenceEndEvent):
            self._end()
        elif isinstance(event, events.DocumentStartEvent):
            self._anchors = {}
            self._keys, self._values = {}, {}
            self._doc_mark = _mark(event)
            self.budget.documents -= 1
            if self.budget.documents < 0:
                self._abort(
                    self._doc_mark,
                    f"too many documents: a stack holds at most {self.budget.max_documents}; "
                    "split it",
                )

    def _scalar(self, event: Any) -> None:
        mark = _mark(event)
        path, record, is_key = self._child()
        if is_key:
            self._key(event, mark)
            return
        try:
            value = scalars.resolve_scalar(event.value, event.style or None, event.tag)
        except ValueError as exc:
            self._problem(mark, str(exc), path)
            value = event.value
        self._spend(1, mark)
        if record:
            self._values[path] = mark
        if event.anchor:
            self._anchors[event.anchor] = (value, 1)
        self._emit(value, 1, mark)

    def _key(self, event: Any, mark: tuple[int, int]) -> None:
        top = self._stack[-1]
        self._spend(1, mark)
        text = event.value
        if text == "<<" and not event.style and event.tag is None:
            top.key, top.key_mark = _MERGE, mark
        elif text in top.value:
            first = self._keys.get((*top.path, text))
            where = f" (first at line {first[0]}, column {first[1]})" if first else ""
            self._problem(mark, f"duplicate key {text!r}{where}", (*top.path, text))
            top.key, top.key_mark = _SKIP, mark
        else:
            top.key, top.key_mark = text, mark
            if top.record:
                self._keys[(*top.path, text)] = mark

    def _alias(self, event: Any) -> None:
        mark = _mark(event)
        path, record, is_key = self._child()
        if event.anchor not in self._anchors:
            self._abort(
                mark,
                f"unknown alias *{event.anchor}: define the anchor &{event.anchor} before "
                "its aliases, and outside the value it names",
            )
        value, size = self._anchors[event.anchor]
        if is_key:
            self._problem(mark, "an alias cannot be a mapping key", path)
            self._stack[-1].key = _SKIP
            return
        self._spend(size, mark)
        if record:
            self._values[path] = mark
        self._emit(value, size, mark)

    def _start(self, event: Any) -> None:
        mark = _mark(event)
        path, record, is_key = self._child()
        if len(self._stack) >= MAX_DEPTH:
            self._abort(mark, f"the YAML nests deeper than {MAX_DEPTH} levels")
        is_map = isinstance(event, events.MappingStartEvent)
        expected = scalars.TAG_MAP if is_map else scalars.TAG_SEQ
        if event.tag not in (None, "!", expected):
            self._problem(mark, f"unsupported tag {scalars.short_tag(event.tag)!r}", path)
        if is_key:
            self._problem(mark, "a mapping key must be a plain value, not a collection", path)
        self._spend(1, mark)
        if record and not is_key:
            self._values[path] = mark
        self._stack.append(
            _Frame(
                value={} if is_map else [],
                path=path,
                record=record and not is_key,
                anchor=event.anchor,
                mark=mark,
            )
        )

    def _end(self) -> None:
        frame = self._stack.pop()
        value = frame.value
        if isinstance(value, dict):
            for source, mark in frame.merges:
                for key, item in source.items():
                    if key not in value:
                        value[key] = item
                        if frame.record:
                            self._values.setdefault((*frame.path, key), mark)
                            self._keys.setdefault((*frame.path, key), mark)
        if frame.anchor:
            self._anchors[frame.anchor] = (value, frame.size)
        if self._stack and self._stack[-1].key is None and isinstance(self._stack[-1].value, dict):
            self._stack[-1].key = _SKIP  # a collection used as a key (reported in _start)
            self._stack[-1].size += frame.size
            return
        self._emit(value, frame.size, frame.mark)

    def _emit(self, value: Any, size: int, mark: tuple[int, int]) -> None:
        if not self._stack:
            if value is not None:
                self.documents.append(
                    RawDocument(
                        data=value,
                        positions=Positions(self.file, self._keys, self._values),
                        start=problems.SourceLocation(self.file, *mark),
                    )
                )
            return
        top = self._stack[-1]
        top.size += size
        if isinstance(top.value, list):
            top.value.append(value)
            return
        key, top.key = top.key, None
        if key is _SKIP:
            return
        if key is _MERGE:
            sources = value if isinstance(value, list) else [value]
            if not all(isinstance(s, dict) for s in sources):
                self._problem(
                    top.key_mark, "a merge key (<<) takes a mapping or a list of mappings", top.path
                )
                return
            top.merges.extend((s, mark) for s in sources)
            return
        top.value[key] = value


def path_text(path: Path) -> str:
    """``("spec", "mounts", 1, "target")`` → ``spec.mounts[1].target``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out
