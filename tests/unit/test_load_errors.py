"""Every class of manifest mistake, with its exact ``file:line:column: path: message``.

One fixture file per class under ``tests/fixtures/load/errors/``; the table
below is the complete, ordered output of ``load_stack`` for it. Each case runs
with both YAML parsers (the C one when installed, and the pure-Python one).
"""

from __future__ import annotations

import pathlib
from collections.abc import Iterator

import pytest

from reconciler import load
from reconciler.load import yamltree

ERRORS = pathlib.Path(__file__).resolve().parent.parent / "fixtures" / "load" / "errors"


@pytest.fixture(params=["c", "pure"])
def parser(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    if request.param == "c" and not yamltree.HAVE_C_PARSER:
        pytest.skip("the C YAML parser (ruamel.yaml.clibz) is not installed")
    monkeypatch.setattr(yamltree, "USE_C_PARSER", request.param == "c")
    yield request.param


def problems_of(*paths: str, **kwargs: object) -> list[str]:
    with pytest.raises(load.LoadError) as caught:
        load.load_stack(list(paths), **kwargs)  # type: ignore[arg-type]
    assert str(caught.value) == "\n".join(str(p) for p in caught.value.problems)
    return [str(p) for p in caught.value.problems]


CASES: dict[str, list[str]] = {
    "unknown-field.yaml": [
        "errors/unknown-field.yaml:6:3: spec.netwroks: unknown field 'netwroks', "
        "did you mean 'networks'?",
        "errors/unknown-field.yaml:7:3: spec.working_dir: unknown field 'working_dir', "
        "did you mean 'workingDir'?",
        "errors/unknown-field.yaml:8:38: spec.healthcheck.intervall: unknown field 'intervall', "
        "did you mean 'interval'?",
        "errors/unknown-field.yaml:9:15: spec.resources.gpus: unknown field 'gpus', "
        "did you mean 'cpus'?",
    ],
    "unknown-kind.yaml": [
        "errors/unknown-kind.yaml:2:7: kind: unknown kind 'Contaner', did you mean 'Container'? "
        "(kinds: Image, Network, Volume, Container)",
        "errors/unknown-kind.yaml:5:1: kind: missing kind: add one of Image, Network, Volume, "
        "Container",
        "errors/unknown-kind.yaml:9:7: kind: unknown kind 'Deployment' "
        "(kinds: Image, Network, Volume, Container)",
    ],
    "api-version.yaml": [
        "errors/api-version.yaml:1:13: apiVersion: unsupported apiVersion 'v1': use pyreconcile/v1",
        "errors/api-version.yaml:5:1: apiVersion: missing apiVersion: "
        "add apiVersion: pyreconcile/v1",
    ],
    "bad-values.yaml": [
        "errors/bad-values.yaml:3:18: metadata.name: invalid name 'Web_1': use 1-63 lowercase "
        "letters, digits and '-', starting and ending with a letter or digit",
        "errors/bad-values.yaml:4:1: spec.image: missing required field 'image'",
        "errors/bad-values.yaml:5:12: spec.restart: invalid restart policy 'sometimes': "
        "use no, always, unless-stopped or on-failure[:N]",
        "errors/bad-values.yaml:6:21: spec.resources.cpus: expected a number, got 'lots'",
        "errors/bad-values.yaml:6:35: spec.resources.memory: memory must be at least 6Mi "
        "(Docker's minimum)",
        "errors/bad-values.yaml:7:9: spec.init: expected true or false, got 'maybe'",
        "errors/bad-values.yaml:8:22: spec.ports[1]: invalid port '80:eighty': expected numbers "
        "such as 8080:80 or 8000-8001:80-81",
        "errors/bad-values.yaml:9:33: spec.mounts[0].target: target must be an absolute path "
        "inside the container, got 'relative/path'",
        "errors/bad-values.yaml:14:16: spec.driver: invalid value 'brige', did you mean "
        "'bridge'? (use 'bridge', 'host', 'none', 'macvlan' or 'overlay')",
        "errors/bad-values.yaml:14:31: spec.subnet: '10.0.0.1/24' is not a network in CIDR "
        "form: 10.0.0.1/24 has host bits set",
        "errors/bad-values.yaml:19:7: spec: expected a mapping, got a list",
    ],
    "duplicate-keys.yaml": [
        "errors/duplicate-keys.yaml:6:25: spec.env.A: duplicate key 'A' (first at line 6, "
        "column 9)",
        "errors/duplicate-keys.yaml:7:3: spec.image: duplicate key 'image' (first at line 5, "
        "column 3)",
    ],
    "duplicate-names.yaml": [
        "errors/duplicate-names.yaml:12:9: metadata.name: duplicate Volume 'data': also defined "
        "at errors/duplicate-names.yaml:3:18; names are unique per kind in a stack",
    ],
    "references.yaml": [
        "errors/references.yaml:14:14: spec.networks[0].name: unknown network 'backnd', did you "
        "mean 'backend'? (Networks in the stack: backend; built-in: host, none)",
        "errors/references.yaml:14:29: spec.networks[1].name: unknown network 'frontend': add a "
        "Network named 'frontend' (Networks in the stack: backend; built-in: host, none)",
        "errors/references.yaml:15:12: spec.mounts[0].source: unknown volume 'web-dta', did you "
        "mean 'web-data'? (Volumes in the stack: web-data)",
        "errors/references.yaml:15:37: spec.mounts[1].source: unknown volume 'logs': add a "
        "Volume named 'logs' (Volumes in the stack: web-data)",
        "errors/references.yaml:16:15: spec.dependsOn[0].name: container 'web' depends on "
        "itself: remove this entry",
        "errors/references.yaml:16:27: spec.dependsOn[1].name: unknown container 'dbb', did you "
        "mean 'db'? (Containers in the stack: db)",
        "errors/references.yaml:23:14: spec.networks[0].name: unknown network 'nonee', did you "
        "mean 'none'? (Networks in the stack: backend; built-in: host, none)",
    ],
    "cycle.yaml": [
        "errors/cycle.yaml:4:36: spec.dependsOn[0].name: dependency cycle a -> b -> c -> a: "
        "remove one of these dependsOn entries",
        "errors/cycle.yaml:19:36: spec.dependsOn[0].name: container 'd' depends on itself: "
        "remove this entry",
    ],
    "interpolation.yaml": [
        "errors/interpolation.yaml:5:10: spec.image: required variable IMAGE is not set: "
        "set IMAGE to the image to run",
        "errors/interpolation.yaml:6:21: spec.command[2]: invalid interpolation '$(' at "
        "character 6: use $VAR or ${VAR}, and write $$ for a literal $",
        "errors/interpolation.yaml:8:8: spec.env.A: unclosed '${' at character 1: "
        "add the closing '}'",
        "errors/interpolation.yaml:9:8: spec.env.B: invalid interpolation '${1BAD}': "
        "expected a variable name (letters, digits, _) after '${'",
        "errors/interpolation.yaml:10:8: spec.env.C: invalid interpolation '$' at character 7: "
        "use $VAR or ${VAR}, and write $$ for a literal $",
        "errors/interpolation.yaml:11:8: spec.env.D: required variable EMPTY is empty: "
        "must not be empty",
    ],
    "missing-files.yaml": [
        "errors/missing-files.yaml:6:13: spec.envFrom[0]: env file ./missing.env "
        "({dir}/missing.env) does not exist: create it or fix the path",
        "errors/missing-files.yaml:8:7: spec.mounts[0].source: bind source ./no-such-dir "
        "({dir}/no-such-dir) does not exist: create it, fix the path, or set "
        "createHostPath: true",
        "errors/missing-files.yaml:9:28: spec.mounts[1].source: bind source "
        "/no/such/path/anywhere does not exist: create it, fix the path, or set "
        "createHostPath: true",
        "errors/missing-files.yaml:15:18: spec.import.path: import path ./no-such.tar "
        "({dir}/no-such.tar) does not exist: build or copy it there first",
        "errors/missing-files.yaml:21:18: spec.import.path: import path ./not-a-layout is a "
        "directory without index.json: name an OCI image layout directory, or a tarball",
        "errors/bad.env:2:1: expected KEY=value, got 'NO_EQUALS_SIGN': add '=' and a value",
        "errors/bad.env:3:1: invalid variable name '9BAD': use letters, digits, '_', '.' and "
        "'-', not starting with a digit",
        'errors/bad.env:4:3: unterminated double-quoted value: add the closing "',
        "errors/bad.env:5:3: unexpected 'trailing' after the closing quote",
    ],
    "not-a-manifest.yaml": [
        "errors/not-a-manifest.yaml:1:1: expected a mapping with apiVersion, kind, metadata and "
        "spec, got a list",
        "errors/not-a-manifest.yaml:4:1: expected a mapping with apiVersion, kind, metadata and "
        "spec, got a string",
    ],
    "stack-mismatch.yaml": [
        "errors/stack-mismatch.yaml:11:28: metadata.stack: stack 'blog' differs from 'shop' at "
        "errors/stack-mismatch.yaml:3:28: all documents of a stack must name the same one",
    ],
    "billion-laughs.yaml": [
        "errors/billion-laughs.yaml:13:33: too many YAML nodes: the manifests expand to more "
        "than 1000000 (aliases of aliases, as in a 'billion laughs' attack?); write the values "
        "out or split the stack",
    ],
}


@pytest.mark.parametrize("fixture", sorted(CASES))
def test_error_fixture(fixture: str, parser: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ERRORS.parent)
    expected = [line.replace("{dir}", str(ERRORS)) for line in CASES[fixture]]
    assert problems_of(f"errors/{fixture}", environ={"EMPTY": ""}) == expected


def test_every_fixture_is_in_the_table() -> None:
    on_disk = {p.name for p in ERRORS.glob("*.yaml")}
    assert on_disk == set(CASES) | {"bad-yaml.yaml"}


def test_broken_yaml_keeps_the_documents_before(
    parser: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ERRORS.parent)
    found = problems_of("errors/bad-yaml.yaml")
    # the message is the parser's own and differs between the C and the Python parser
    assert len(found) == 1
    assert found[0].startswith("errors/bad-yaml.yaml:8:1: invalid YAML: ")
    assert "flow mapping" in found[0]


def test_problems_of_all_files_are_reported_together(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ERRORS.parent)
    found = problems_of("errors/api-version.yaml", "errors/unknown-kind.yaml", "nowhere.yaml")
    assert found[0] == "nowhere.yaml: no such file or directory: check the path"
    assert [line.split(":")[0] for line in found[1:]] == ["errors/api-version.yaml"] * 2 + [
        "errors/unknown-kind.yaml"
    ] * 3


def test_duplicate_names_across_files(tmp_path: pathlib.Path) -> None:
    doc = "apiVersion: pyreconcile/v1\nkind: Network\nmetadata:\n  name: net\n"
    (tmp_path / "a.yaml").write_text(doc)
    (tmp_path / "b.yaml").write_text("# the same network again\n" + doc)
    found = problems_of(str(tmp_path))
    assert found == [
        f"{tmp_path}/b.yaml:5:9: metadata.name: duplicate Network 'net': also defined at "
        f"{tmp_path}/a.yaml:4:9; names are unique per kind in a stack"
    ]


def test_references_are_checked_even_when_other_fields_are_wrong(
    tmp_path: pathlib.Path,
) -> None:
    (tmp_path / "s.yaml").write_text(
        "apiVersion: pyreconcile/v1\nkind: Container\nmetadata: {name: web}\n"
        "spec: {image: busybox, restart: sometimes, networks: [missing]}\n"
    )
    found = problems_of(str(tmp_path / "s.yaml"))
    assert [p.split(": ")[1] for p in found] == ["spec.restart", "spec.networks[0].name"]


def test_a_broken_network_document_does_not_make_its_users_fail(tmp_path: pathlib.Path) -> None:
    (tmp_path / "s.yaml").write_text(
        "apiVersion: pyreconcile/v1\nkind: Network\nmetadata: {name: net}\nspec: {mtu: 1}\n"
        "---\n"
        "apiVersion: pyreconcile/v1\nkind: Container\nmetadata: {name: web}\n"
        "spec: {image: busybox, networks: [net]}\n"
    )
    found = problems_of(str(tmp_path / "s.yaml"))
    assert len(found) == 1
    assert ": spec.mtu: " in found[0]


def test_load_error_is_an_invalid_spec() -> None:
    from runtime import errors

    error = load.LoadError([load.Problem(None, "", "no manifest given")])
    assert isinstance(error, errors.InvalidSpec)
    assert str(error) == "no manifest given"


@pytest.mark.parametrize(
    ("problem", "text"),
    [
        (
            load.Problem(load.SourceLocation("stack.yaml", 12, 5), "spec.netwroks", "unknown"),
            "stack.yaml:12:5: spec.netwroks: unknown",
        ),
        (load.Problem(load.SourceLocation("-", 1, 1), "", "bad"), "-:1:1: bad"),
        (load.Problem(None, "", "no manifest given"), "no manifest given"),
    ],
)
def test_problem_text(problem: load.Problem, text: str) -> None:
    assert str(problem) == text
