"""``.env`` and ``envFrom`` files: the accepted lines and the refused ones."""

from __future__ import annotations

import pytest

from reconciler.load import envfile


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("A=1", {"A": "1"}),
        ("A=", {"A": ""}),
        ("export A=1", {"A": "1"}),
        ("  A = spaced value  ", {"A": "spaced value"}),
        ("A=x=y", {"A": "x=y"}),
        ("A=value # comment", {"A": "value"}),
        ("A=value#not-a-comment", {"A": "value#not-a-comment"}),
        ("A='single $x # kept'", {"A": "single $x # kept"}),
        ('A="double \\"q\\" \\n \\t \\\\ \\$"', {"A": 'double "q" \n \t \\ $'}),
        ('A="x" # trailing comment', {"A": "x"}),
        ('A="unknown \\q escape"', {"A": "unknown \\q escape"}),
        ("a.b-c_D=1", {"a.b-c_D": "1"}),
        ("# only a comment", {}),
        ("   ", {}),
        ("A=1\r", {"A": "1"}),
    ],
)
def test_accepted_lines(line: str, expected: dict[str, str]) -> None:
    values, found = envfile.parse_env(line + "\n", "x.env")
    assert found == []
    assert values == expected


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("JUST_A_NAME", "x.env:1:1: expected KEY=value, got 'JUST_A_NAME': add '=' and a value"),
        ("=value", "x.env:1:1: expected KEY=value, got '=value': add '=' and a value"),
        ("A B=1", "x.env:1:1: expected KEY=value, got 'A B=1': add '=' and a value"),
        (
            "  1A=x",
            "x.env:1:3: invalid variable name '1A': use letters, digits, '_', '.' and "
            "'-', not starting with a digit",
        ),
        ("A='open", "x.env:1:3: unterminated single-quoted value: add the closing '"),
        ('A="open', 'x.env:1:3: unterminated double-quoted value: add the closing "'),
        ("A='x' y", "x.env:1:3: unexpected 'y' after the closing quote"),
    ],
)
def test_refused_lines(line: str, message: str) -> None:
    _, found = envfile.parse_env(line + "\n", "x.env")
    assert [str(p) for p in found] == [message]


def test_later_lines_win_and_problems_do_not_stop_the_file() -> None:
    values, found = envfile.parse_env("A=1\nbad line\nA=2\nB=3\n", "x.env")
    assert values == {"A": "2", "B": "3"}
    assert [p.location.line for p in found if p.location] == [2]
