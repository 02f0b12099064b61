"""The generated JSON Schemas: checked in and current, valid draft-07, and accepting
exactly what the loader accepts on the good fixtures (short forms included)."""

from __future__ import annotations

import json
import pathlib
from typing import Any

import pytest

from reconciler import schemagen

FIXTURES = pathlib.Path(__file__).resolve().parent.parent / "fixtures" / "load"
DEMO = pathlib.Path(__file__).resolve().parent.parent.parent / "manifests" / "demo" / "stack.yaml"


def test_checked_in_schemas_are_current() -> None:
    stale = schemagen.check()
    assert stale == [], (
        f"stale JSON schemas {[p.name for p in stale]}: run python -m reconciler.schemagen"
    )


def test_every_schema_is_stable_and_identified() -> None:
    for name in schemagen.SCHEMAS:
        text = schemagen.render(name)
        assert text == schemagen.render(name)
        assert text.endswith("}\n")
        schema = json.loads(text)
        assert schema["$schema"] == "http://json-schema.org/draft-07/schema#"
        assert schema["$id"] == f"{schemagen.BASE_ID}{name}.schema.json"
        assert json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n" == text
        assert "$defs" not in text


def test_check_and_write_with_an_added_schema(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(schemagen.SCHEMAS, "extra", lambda: {"type": "object"})
    assert schemagen.main(["--check", "--out", str(tmp_path)]) == 1
    assert "stale: " in capsys.readouterr().err
    assert schemagen.main(["--out", str(tmp_path)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        f"{n}.schema.json" for n in schemagen.SCHEMAS
    )
    assert (tmp_path / "extra.schema.json").read_text() == '{\n  "type": "object"\n}\n'
    assert schemagen.main(["--check", "--out", str(tmp_path)]) == 0
    (tmp_path / "volume.schema.json").write_text("{}\n")
    assert schemagen.check(tmp_path) == [tmp_path / "volume.schema.json"]


def _documents(path: pathlib.Path) -> list[Any]:
    from ruamel.yaml import YAML

    return [d for d in YAML(typ="safe", pure=True).load_all(path.read_text()) if d is not None]


def _good_documents() -> list[Any]:
    docs = []
    for path in [*sorted((FIXTURES / "good").glob("*.yaml")), DEMO]:
        docs.extend(_documents(path))
    return docs


def test_the_schemas_accept_the_good_manifests_and_refuse_mistakes() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    document = json.loads(schemagen.render("document"))
    jsonschema.Draft7Validator.check_schema(document)
    validator = jsonschema.Draft7Validator(document)
    docs = _good_documents()
    assert len(docs) >= 9
    for doc in docs:
        errors = [e.message for e in validator.iter_errors(doc)]
        assert errors == [], (doc["metadata"]["name"], errors)
    for name in ("image", "container", "volume", "network"):
        schema = json.loads(schemagen.render(name))
        jsonschema.Draft7Validator.check_schema(schema)
        one = jsonschema.Draft7Validator(schema)
        for doc in docs:
            assert one.is_valid(doc) == (doc["kind"].lower() == name)
    bad = {
        "apiVersion": "pyreconcile/v1",
        "kind": "Container",
        "metadata": {"name": "web"},
        "spec": {"image": "busybox", "netwroks": ["backend"]},
    }
    assert not validator.is_valid(bad)
    assert not validator.is_valid({**bad, "kind": "Deployment"})


def test_short_forms_are_in_the_schema() -> None:
    container = json.loads(schemagen.render("container"))
    definitions = container["definitions"]
    for model in ("Mount", "NetworkAttachment", "Dependency"):
        assert {"type": "string"}.items() <= definitions[model]["anyOf"][0].items()
    ports = definitions["ContainerSpec"]["properties"]["ports"]["items"]["anyOf"]
    assert [p.get("type", p.get("$ref")) for p in ports] == [
        "integer",
        "string",
        "#/definitions/PortMapping",
    ]
    assert "title" not in definitions["ContainerSpec"]["properties"]["dependsOn"]
