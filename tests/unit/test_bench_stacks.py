"""The apply suite's stacks describe the same containers for every engine:
names, command, environment, the one volume, the grace period, no network."""

from __future__ import annotations

import io
import json
from typing import Any

from ruamel.yaml import YAML

from bench import stacks
from bench.suites import diff


def _yaml_docs(text: str) -> list[Any]:
    return list(YAML(typ="safe").load_all(io.StringIO(text)))


def test_the_three_stacks_are_equivalent() -> None:
    n = 3
    ours = [
        d for d in _yaml_docs(stacks.pyreconcile(n, changed="c001")) if d["kind"] == "Container"
    ]
    compose = json.loads(stacks.compose(n, changed="c001"))
    pods = [d for d in _yaml_docs(stacks.kube(n, changed="c001")) if d["kind"] == "Pod"]

    assert [d["metadata"]["name"] for d in ours] == stacks.container_names(n)
    assert sorted(compose["services"]) == stacks.container_names(n)
    assert [p["metadata"]["name"] for p in pods] == stacks.container_names(n)
    for doc, pod in zip(ours, pods, strict=True):
        name = doc["metadata"]["name"]
        gen = "1" if name == "c001" else "0"
        service = compose["services"][name]
        container = pod["spec"]["containers"][0]
        assert doc["spec"]["command"] == service["command"] == container["command"]
        assert doc["spec"]["command"] == list(stacks.COMMAND)
        assert doc["spec"]["env"] == service["environment"] == {"GEN": gen}
        assert container["env"] == [{"name": "GEN", "value": gen}]
        assert doc["spec"]["mounts"] == service["volumes"] == ["data:/data"]
        assert container["volumeMounts"] == [{"name": "data", "mountPath": "/data"}]
        assert doc["spec"]["stopGracePeriod"] == service["stop_grace_period"] == "1s"
        assert pod["spec"]["terminationGracePeriodSeconds"] == 1
        assert "networks" not in doc["spec"] and service["network_mode"] == "none"
    assert compose["volumes"] == {"data": {}}


def test_drift_changes_a_tenth_of_the_containers() -> None:
    docs = _yaml_docs(diff._drifted_manifest(25))
    changed = [d["metadata"]["name"] for d in docs if d.get("spec", {}).get("env") == {"GEN": "1"}]
    assert changed == ["c000", "c010", "c020"]
