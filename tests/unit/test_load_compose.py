"""Compose files are translated into pyreconcile documents, with positions."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.load import LoadError, load_stack

COMPOSE = Path(__file__).resolve().parent.parent / "fixtures" / "load" / "compose" / "compose.yaml"


def test_a_compose_file_becomes_a_stack() -> None:
    stack = load_stack([str(COMPOSE)], environ={})
    assert stack.name == "shop"
    kinds = sorted((o.kind, o.name) for o in stack.objects)
    assert kinds == [
        ("Container", "db"),
        ("Container", "job"),
        ("Container", "web"),
        ("Network", "backend"),
        ("Network", "default"),
        ("Volume", "data"),
    ]
    web = stack.get("Container", "web")
    assert web is not None
    spec = web.manifest.spec  # type: ignore[union-attr]
    assert spec.command == ["httpd", "-f", "-p", "8080"]
    assert spec.env == {"GREETING": "hello"}
    assert [(p.container_port, p.host_port, p.protocol) for p in spec.ports] == [
        (8080, 8080, "tcp"),
        (9090, 19090, "udp"),
    ]
    assert [(m.type, m.source, m.target) for m in spec.mounts] == [
        ("volume", "data", "/data"),
        ("tmpfs", None, "/cache"),
        ("tmpfs", None, "/run"),
    ]
    assert spec.mounts[1].size == 1048576
    assert [(n.name, n.aliases) for n in spec.networks] == [("backend", ["www"])]
    assert [(d.name, d.condition) for d in spec.depends_on] == [("db", "healthy")]
    assert spec.healthcheck is not None and spec.healthcheck.start_period == 10.0
    assert spec.resources.memory == 64_000_000 and spec.resources.cpus == 0.5
    assert spec.restart == "unless-stopped"
    db = stack.get("Container", "db")
    assert db is not None and db.manifest.spec.networks[0].name == "default"  # type: ignore[union-attr]
    job = stack.get("Container", "job")
    assert job is not None and job.manifest.spec.networks[0].name == "none"  # type: ignore[union-attr]
    net = stack.get("Network", "backend")
    assert net is not None and net.manifest.spec.subnet == "10.89.7.0/24"  # type: ignore[union-attr]
    assert any("container_name is ignored" in str(w) for w in stack.warnings)


def test_unsupported_compose_keys_point_at_their_place(tmp_path: Path) -> None:
    path = tmp_path / "compose.yaml"
    path.write_text(
        "services:\n"
        "  web:\n"
        "    build: .\n"
        "    privileged: true\n"
        "    ports: ['8080:80']\n"
        "    environment: {A: 1}\n"
        "    netwroks: [x]\n"
        "secrets: {}\n"
    )
    with pytest.raises(LoadError) as raised:
        load_stack([str(path)], environ={})
    text = str(raised.value)
    assert "compose.yaml:3:5: services.web.build: build is not supported" in text
    assert "compose.yaml:4:5: services.web.privileged: the Compose key 'privileged'" in text
    assert "compose.yaml:7:5: services.web.netwroks: the Compose key 'netwroks'" in text
    assert "compose.yaml:8:1: secrets: the Compose key 'secrets' is not supported" in text


def test_errors_in_translated_fields_point_at_the_compose_text(tmp_path: Path) -> None:
    path = tmp_path / "compose.yaml"
    path.write_text(
        "services:\n  web:\n    image: busybox\n    restart: sometimes\n    network_mode: none\n"
    )
    with pytest.raises(LoadError) as raised:
        load_stack([str(path)], environ={})
    assert "compose.yaml:4:14: spec.restart: " in str(raised.value)


def test_interpolation_applies_to_compose_values(tmp_path: Path) -> None:
    path = tmp_path / "compose.yaml"
    path.write_text(
        "services:\n"
        "  web:\n"
        "    image: busybox\n"
        "    network_mode: none\n"
        "    ports: ['${PORT:-8080}:80']\n"
    )
    stack = load_stack([str(path)], environ={"PORT": "9999"})
    web = stack.get("Container", "web")
    assert web is not None and web.manifest.spec.ports[0].host_port == 9999  # type: ignore[union-attr]
