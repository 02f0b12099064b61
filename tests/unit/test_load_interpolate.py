"""Compose-style interpolation: every form, nested defaults, escapes, and the errors."""

from __future__ import annotations

import pytest

from reconciler.load import interpolate, yamltree

VARS = {"NAME": "web", "EMPTY": "", "PORT": "8080", "DOLLAR": "$HOME"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("plain", "plain"),
        ("$NAME", "web"),
        ("${NAME}", "web"),
        ("pre-${NAME}-post", "pre-web-post"),
        ("$NAME.example", "web.example"),
        ("$NAME_x", ""),  # the name runs on: NAME_x is unset
        ("${NAME}_x", "web_x"),
        ("${UNSET:-dflt}", "dflt"),
        ("${EMPTY:-dflt}", "dflt"),
        ("${EMPTY-dflt}", ""),
        ("${UNSET-dflt}", "dflt"),
        ("${NAME:-dflt}", "web"),
        ("${NAME:+alt}", "alt"),
        ("${EMPTY:+alt}", ""),
        ("${EMPTY+alt}", "alt"),
        ("${UNSET+alt}", ""),
        ("${EMPTY?msg}", ""),
        ("${NAME:?msg}", "web"),
        ("${UNSET:-${NAME}}", "web"),
        ("${UNSET:-${ALSO_UNSET:-deep}}", "deep"),
        ("${UNSET:-a}b}", "ab}"),
        ("${UNSET:-{x}}", "{x}"),
        ("$$", "$"),
        ("$$NAME", "$NAME"),
        ("$${NAME}", "${NAME}"),
        ("echo $$(date)", "echo $(date)"),
        ("${UNSET:-$$}", "$"),
        ("$DOLLAR", "$HOME"),  # values are not interpolated again
        ("${PORT}:${PORT}", "8080:8080"),
        ("${UNSET:?never evaluated}${NAME}", None),
    ],
)
def test_interpolate(text: str, expected: str | None) -> None:
    if expected is None:
        with pytest.raises(interpolate.InterpolationError):
            interpolate.interpolate(text, VARS)
        return
    assert interpolate.interpolate(text, VARS) == expected


def test_unused_branches_are_not_evaluated() -> None:
    assert interpolate.interpolate("${NAME:-${UNSET:?boom}}", VARS) == "web"
    assert interpolate.interpolate("${EMPTY:+${UNSET:?boom}}", VARS) == ""


def test_unset_variables_are_collected() -> None:
    unset: list[str] = []
    assert interpolate.interpolate("$A-${B}-${C:-c}-$NAME", VARS, unset) == "--c-web"
    assert unset == ["A", "B"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("${UNSET:?set it}", "required variable UNSET is not set: set it"),
        ("${UNSET?}", "required variable UNSET is not set"),
        ("${EMPTY:?no empty please}", "required variable EMPTY is empty: no empty please"),
        ("${UNSET:?need ${NAME}}", "required variable UNSET is not set: need web"),
        (
            "$1",
            "invalid interpolation '$1' at character 1: use $VAR or ${VAR}, "
            "and write $$ for a literal $",
        ),
        (
            "5$",
            "invalid interpolation '$' at character 2: use $VAR or ${VAR}, "
            "and write $$ for a literal $",
        ),
        ("${", "unclosed '${' at character 1: add the closing '}'"),
        ("a ${B:-${C}", "unclosed '${' at character 3: add the closing '}'"),
        (
            "${}",
            "invalid interpolation '${}': expected a variable name (letters, digits, _) after '${'",
        ),
        ("${A B}", "invalid interpolation '${A B}': after the name use }, :-, -, :?, ?, :+ or +"),
        ("${A:=x}", "invalid interpolation '${A:=x}': after the name use }, :-, -, :?, ?, :+ or +"),
    ],
)
def test_interpolation_errors(text: str, message: str) -> None:
    with pytest.raises(interpolate.InterpolationError) as caught:
        interpolate.interpolate(text, VARS)
    assert str(caught.value) == message


def test_tree_interpolates_values_not_keys_and_reports_positions() -> None:
    text = "$KEY: $NAME\nlist: [a, '${UNSET}', 3, true]\nnested: {x: '${MISSING:?oops}'}\n"
    docs, _ = yamltree.parse_documents(text, "f.yaml", yamltree.Budget())
    doc = docs[0]
    result = interpolate.interpolate_tree(doc.data, VARS, doc.positions)
    assert result.data == {
        "$KEY": "web",
        "list": ["a", "", 3, True],
        "nested": {"x": "${MISSING:?oops}"},
    }
    assert [str(p) for p in result.errors] == [
        "f.yaml:3:13: nested.x: required variable MISSING is not set: oops"
    ]
    assert [str(p) for p in result.warnings] == [
        "f.yaml:2:11: list[1]: variable UNSET is not set: using an empty string "
        "(set it, or write ${UNSET:-default})"
    ]
    assert result.failed == {("nested", "x")}
    assert doc.data["list"][1] == "${UNSET}"  # the input is not changed
