"""YAML → plain documents with positions: the YAML 1.2 core schema, duplicate keys,
aliases and merge keys, tags, and the limits that protect against hostile input.
Every test runs with both parsers (C when installed, pure Python)."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from typing import Any

import pytest

from reconciler.load import yamltree


@pytest.fixture(params=["c", "pure"], autouse=True)
def parser(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    if request.param == "c" and not yamltree.HAVE_C_PARSER:
        pytest.skip("the C YAML parser (ruamel.yaml.clibz) is not installed")
    monkeypatch.setattr(yamltree, "USE_C_PARSER", request.param == "c")
    yield request.param


def parse(text: str, budget: yamltree.Budget | None = None) -> tuple[list[Any], list[str]]:
    docs, found = yamltree.parse_documents(text, "f.yaml", budget or yamltree.Budget())
    return [d.data for d in docs], [str(p) for p in found]


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("no", "no"),
        ("yes", "yes"),
        ("on", "on"),
        ("off", "off"),
        ("y", "y"),
        ("true", True),
        ("False", False),
        ("TRUE", True),
        ("~", None),
        ("null", None),
        ("", None),
        ("42", 42),
        ("-7", -7),
        ("017", 17),
        ("0o17", 15),
        ("0x1F", 31),
        ("1_000", "1_000"),
        ("1.5", 1.5),
        ("1e3", 1000.0),
        (".5", 0.5),
        ("-.inf", -math.inf),
        ("2001-12-14", "2001-12-14"),
        ("8080:80", "8080:80"),
        ("'42'", "42"),
        ('"true"', "true"),
        ("!!str 42", "42"),
        ("!!int 42", 42),
        ("!!float 1", 1.0),
        ("|\n  text\n", "text\n"),
    ],
)
def test_core_schema_scalars(text: str, value: Any) -> None:
    docs, found = parse(f"v: {text}\n")
    assert found == []
    assert docs == [{"v": value}]
    assert type(docs[0]["v"]) is type(value)


def test_nan() -> None:
    docs, _ = parse("v: .nan\n")
    assert math.isnan(docs[0]["v"])


def test_keys_are_always_their_text() -> None:
    docs, _ = parse("1: a\ntrue: b\nno: c\n")
    assert docs == [{"1": "a", "true": "b", "no": "c"}]


def test_positions_of_keys_and_values() -> None:
    text = "a: 1\nb:\n  c: [x, {d: y}]\n  e:\n    - z\n"
    docs, _ = yamltree.parse_documents(text, "f.yaml", yamltree.Budget())
    pos = docs[0].positions
    assert str(pos.key(("b", "c"))) == "f.yaml:3:3"
    assert str(pos.value(("b", "c"))) == "f.yaml:3:6"
    assert str(pos.value(("b", "c", 1, "d"))) == "f.yaml:3:14"
    assert str(pos.value(("b", "e", 0))) == "f.yaml:5:7"
    # a path that is not in the file: the key of the nearest field that is
    assert str(pos.value(("b", "missing"))) == "f.yaml:2:1"
    assert str(docs[0].start) == "f.yaml:1:1"


def test_documents_empty_ones_skipped_and_starts() -> None:
    text = "---\n# nothing\n---\na: 1\n...\n---\n\n---\nb: 2\n"
    docs, found = yamltree.parse_documents(text, "f.yaml", yamltree.Budget())
    assert found == []
    assert [d.data for d in docs] == [{"a": 1}, {"b": 2}]
    assert [str(d.start) for d in docs] == ["f.yaml:4:1", "f.yaml:9:1"]


def test_duplicate_keys_are_reported_and_the_first_kept() -> None:
    docs, found = parse("a: 1\nb: {c: 1, c: 2}\na: 3\n")
    assert docs == [{"a": 1, "b": {"c": 1}}]
    assert found == [
        "f.yaml:2:11: b.c: duplicate key 'c' (first at line 2, column 5)",
        "f.yaml:3:1: a: duplicate key 'a' (first at line 1, column 1)",
    ]


def test_aliases_share_and_merge_keys_merge() -> None:
    text = (
        "base: &base {a: 1, b: 2}\n"
        "list: &l [1, 2]\n"
        "copy: *l\n"
        "merged: {<<: *base, b: 3}\n"
        "many: {<<: [{x: 1}, {x: 2, y: 2}], y: 3}\n"
    )
    docs, found = parse(text)
    assert found == []
    assert docs[0]["copy"] == [1, 2]
    assert docs[0]["merged"] == {"b": 3, "a": 1}
    assert docs[0]["many"] == {"y": 3, "x": 1}


def test_merge_of_a_scalar_is_an_error() -> None:
    _, found = parse("a: {<<: 5}\n")
    assert found == ["f.yaml:1:5: a: a merge key (<<) takes a mapping or a list of mappings"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "a: !foo x\n",
            "f.yaml:1:4: a: unsupported tag '!foo': only !!str, !!int, !!float, !!bool and !!null",
        ),
        (
            "a: !!binary aGk=\n",
            "f.yaml:1:4: a: unsupported tag '!!binary': only !!str, !!int, "
            "!!float, !!bool and !!null",
        ),
        ("a: !!int x\n", "f.yaml:1:4: a: 'x' is not a valid int"),
        ("a: !!set {x}\n", "f.yaml:1:4: a: unsupported tag '!!set'"),
        ("? [a]\n: b\n", "f.yaml:1:3: a mapping key must be a plain value, not a collection"),
    ],
)
def test_tags_and_keys_that_are_refused(text: str, message: str) -> None:
    _, found = parse(text)
    assert found == [message]


def test_undefined_and_recursive_aliases() -> None:
    _, found = parse("a: *nope\n")
    assert found == [
        "f.yaml:1:4: unknown alias *nope: define the anchor &nope before its aliases, "
        "and outside the value it names"
    ]
    _, found = parse("a: &x [1, *x]\n")
    assert found[0].startswith("f.yaml:1:11: unknown alias *x")


def billion_laughs(levels: int) -> str:
    lines = ['l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, levels):
        refs = ", ".join([f"*l{i - 1}"] * 10)
        lines.append(f"l{i}: &l{i} [{refs}]")
    return "\n".join(lines) + "\n"


def test_alias_bomb_is_refused_quickly() -> None:
    started = time.perf_counter()
    docs, found = parse(billion_laughs(9))
    elapsed = time.perf_counter() - started
    assert docs == []
    assert len(found) == 1
    assert "too many YAML nodes" in found[0] and "billion laughs" in found[0]
    assert elapsed < 1.0


def test_aliases_count_against_the_budget() -> None:
    # 3 levels: 10 + 100 + 1000 strings behind aliases, 1,237 nodes with the keys, lists and root
    _, found = parse(billion_laughs(3), yamltree.Budget(nodes=1237))
    assert found == []
    _, found = parse(billion_laughs(3), yamltree.Budget(nodes=1236))
    assert found and "more than 1236" in found[0]


def test_the_budget_is_shared_by_all_inputs() -> None:
    budget = yamltree.Budget(documents=3)
    _, found = parse("a: 1\n---\nb: 2\n", budget)
    assert found == []
    docs, found = parse("c: 3\n---\nd: 4\n", budget)
    assert docs == [{"c": 3}]
    assert found == ["f.yaml:2:1: too many documents: a stack holds at most 3; split it"]


@pytest.mark.parametrize(
    "text",
    [
        "[" * 100_000,
        "- " * 100_000 + "x\n",
        "".join(" " * i + "k:\n" for i in range(100)),
        "a: " + "{b: " * 70 + "c" + "}" * 70 + "\n",
    ],
    ids=["flow-sequences", "block-sequences", "block-mappings", "flow-mappings"],
)
def test_deep_nesting_is_refused_quickly(text: str) -> None:
    started = time.perf_counter()
    docs, found = parse(text)
    assert docs == []
    assert len(found) == 1 and f"nests deeper than {yamltree.MAX_DEPTH} levels" in found[0]
    assert time.perf_counter() - started < 2.0


def test_control_characters() -> None:
    _, found = parse("a: \x07\n")
    assert len(found) == 1
    assert found[0].startswith("f.yaml:1:4: invalid YAML: unacceptable character U+0007")


def test_path_text() -> None:
    assert yamltree.path_text(("spec", "mounts", 1, "target")) == "spec.mounts[1].target"
    assert yamltree.path_text(()) == ""
