"""Compose files, translated into pyreconcile documents (DESIGN.md §2).

A document with top-level ``services`` (and no ``kind``) is a Compose file. It
becomes one Container per service, one Volume per top-level volume, one
Network per top-level network, plus the ``default`` network Compose creates
for services that name none. The translation keeps positions: every field of
the new documents points back at the Compose key it came from, so a problem
in a service reads ``compose.yaml:7:5: services.web.ports[0]``-style places.

What has no equivalent is an error naming the key (``build``, ``configs``,
``secrets``, ``external`` objects, ``network_mode: service:…``) rather than
a silent difference; what is only cosmetic (``version``, ``container_name``)
is a warning. Extension fields (``x-…``) are ignored as Compose ignores them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from reconciler.load import problems, yamltree

Path = tuple[Any, ...]

API = "pyreconcile/v1"

# service keys: compose name -> (our spec field, how the value is converted)
_SAME = {
    "image": "image",
    "command": "command",
    "entrypoint": "entrypoint",
    "environment": "env",
    "working_dir": "workingDir",
    "user": "user",
    "hostname": "hostname",
    "labels": "labels",
    "restart": "restart",
    "stop_signal": "stopSignal",
    "stop_grace_period": "stopGracePeriod",
    "init": "init",
}
_IGNORED_WITH_WARNING = {
    "container_name": "pyreconcile names containers STACK_SERVICE",
    "pull_policy": "set pullPolicy on an Image document instead",
}
_COMPOSE_CONDITIONS = {"service_started", "service_healthy", "service_completed_successfully"}


def is_compose(data: Any) -> bool:
    return isinstance(data, dict) and "services" in data and "kind" not in data


@dataclasses.dataclass
class _Out:
    """One document being built, and where each of its paths came from."""

    data: dict[str, Any]
    origins: list[tuple[Path, Path]] = dataclasses.field(default_factory=list)

    def put(self, ours: Path, value: Any, theirs: Path) -> None:
        node = self.data
        for key in ours[:-1]:
            node = node.setdefault(key, {})
        node[ours[-1]] = value
        self.origins.append((ours, theirs))


def translate(
    document: yamltree.RawDocument,
) -> tuple[list[yamltree.RawDocument], list[problems.Problem], list[problems.Problem]]:
    """The pyreconcile documents of a Compose document, its problems, its warnings."""
    data: dict[str, Any] = document.data
    pos = document.positions
    found: list[problems.Problem] = []
    warnings: list[problems.Problem] = []
    outs: list[_Out] = []

    def problem(path: Path, message: str) -> None:
        found.append(problems.Problem(pos.key(path), _dotted(path), message))

    def warn(path: Path, message: str) -> None:
        warnings.append(problems.Problem(pos.key(path), _dotted(path), message))

    stack = data.get("name")
    for key in data:
        if key in ("services", "volumes", "networks", "name", "version") or str(key).startswith(
            "x-"
        ):
            continue
        problem((key,), f"the Compose key {key!r} is not supported by pyreconcile")
    if "version" in data:
        warn(("version",), "'version' is obsolete in Compose files and is ignored")

    def new(kind: str, name: Any, origin: Path) -> _Out:
        out = _Out({"apiVersion": API, "kind": kind, "metadata": {"name": name}})
        out.origins.append((("metadata", "name"), origin))
        out.origins.append(((), origin))
        if stack is not None:
            out.put(("metadata", "stack"), stack, ("name",))
        outs.append(out)
        return out

    for name, spec in _mapping(data.get("volumes")):
        path = ("volumes", name)
        out = new("Volume", name, path)
        for key, value in _mapping(spec):
            if key == "driver":
                out.put(("spec", "driver"), value, (*path, key))
            elif key == "driver_opts":
                out.put(("spec", "driverOpts"), value, (*path, key))
            elif key == "labels":
                out.put(("metadata", "labels"), value, (*path, key))
            elif not str(key).startswith("x-"):
                problem((*path, key), _unsupported("volume", name, key))

    defined_networks = {n for n, _ in _mapping(data.get("networks"))}
    for name, spec in _mapping(data.get("networks")):
        path = ("networks", name)
        out = new("Network", name, path)
        _network(out, path, spec, problem)

    needs_default = False
    for name, spec in _mapping(data.get("services")):
        path = ("services", name)
        if not isinstance(spec, dict):
            problem(path, f"service {name!r} must be a mapping of its settings")
            continue
        out = new("Container", name, path)
        out.data["spec"] = {}
        if not _service(out, path, spec, problem, warn):
            needs_default = True  # Compose puts a service that names no network on "default"
            out.put(("spec", "networks"), ["default"], path)
        if "build" in spec and "image" not in spec:
            problem(
                (*path, "build"),
                "build is not supported: build the image elsewhere, then "
                "pull it or import it, and name it in image",
            )
    if needs_default and "default" not in defined_networks:
        out = new("Network", "default", ("services",))
        out.put(("spec", "driver"), "bridge", ("services",))

    documents = []
    for out in outs:
        documents.append(
            yamltree.RawDocument(out.data, _remap(pos, out.origins), pos.key(out.origins[0][1]))
        )
    return documents, found, warnings


def _network(out: _Out, path: Path, spec: Any, problem: Callable[[Path, str], None]) -> None:
    for key, value in _mapping(spec):
        where = (*path, key)
        if key == "driver":
            out.put(("spec", "driver"), value, where)
        elif key == "internal":
            out.put(("spec", "internal"), value, where)
        elif key == "labels":
            out.put(("metadata", "labels"), value, where)
        elif key == "driver_opts" and isinstance(value, dict):
            for opt, opt_value in value.items():
                if opt == "parent":
                    out.put(("spec", "parent"), opt_value, (*where, opt))
                elif opt in ("com.docker.network.driver.mtu", "mtu"):
                    out.put(("spec", "mtu"), opt_value, (*where, opt))
                else:
                    problem((*where, opt), f"network driver option {opt!r} is not supported")
        elif key == "ipam" and isinstance(value, dict):
            configs = value.get("config") or []
            if not isinstance(configs, list) or len(configs) > 1:
                problem(
                    (*where, "config"), "pyreconcile networks take one subnet (one ipam.config)"
                )
                continue
            for entry_key, entry_value in _mapping(configs[0] if configs else None):
                field = {"subnet": "subnet", "gateway": "gateway", "ip_range": "ipRange"}.get(
                    entry_key
                )
                if field is None:
                    problem(
                        (*where, "config", 0, entry_key), f"ipam key {entry_key!r} is not supported"
                    )
                else:
                    out.put(("spec", field), entry_value, (*where, "config", 0, entry_key))
        elif not str(key).startswith("x-"):
            problem(where, _unsupported("network", path[-1], key))


def _service(
    out: _Out,
    path: Path,
    spec: dict[str, Any],
    problem: Callable[[Path, str], None],
    warn: Callable[[Path, str], None],
) -> bool:
    """Translate one service; whether it names its networks (else: the default one)."""
    has_networks = False
    mounts: list[Any] = []
    mount_origins: list[Path] = []
    resources: dict[str, Any] = {}
    for key, value in spec.items():
        where = (*path, key)
        if key in _SAME:
            out.put(("spec", _SAME[key]), value, where)
        elif key in _IGNORED_WITH_WARNING:
            warn(where, f"{key} is ignored: {_IGNORED_WITH_WARNING[key]}")
        elif key == "env_file":
            files = value if isinstance(value, list) else [value]
            out.put(
                ("spec", "envFrom"),
                [f.get("path") if isinstance(f, dict) else f for f in files],
                where,
            )
        elif key == "ports":
            out.put(("spec", "ports"), [_port(p) for p in _list(value)], where)
        elif key == "volumes":
            for i, item in enumerate(_list(value)):
                mounts.append(_volume_mount(item, (*where, i), problem))
                mount_origins.append((*where, i))
        elif key == "tmpfs":
            for i, target in enumerate(_list(value)):
                mounts.append({"type": "tmpfs", "target": target})
                mount_origins.append((*where, i))
        elif key == "networks":
            has_networks = True
            out.put(("spec", "networks"), _networks(value), where)
        elif key == "network_mode":
            has_networks = True
            if value in ("host", "none"):
                out.put(("spec", "networks"), [value], where)
            else:
                problem(
                    where, f"network_mode {value!r} is not supported: use host, none or networks"
                )
        elif key == "depends_on":
            out.put(("spec", "dependsOn"), _depends_on(value), where)
        elif key == "healthcheck":
            health = dict(value) if isinstance(value, dict) else value
            if isinstance(health, dict):
                if health.pop("disable", False):
                    continue
                for name, ours in (("start_period", "startPeriod"),):
                    if name in health:
                        health[ours] = health.pop(name)
                if "start_interval" in health:
                    health["startInterval"] = health.pop("start_interval")
            out.put(("spec", "healthcheck"), health, where)
        elif key == "mem_limit":
            resources["memory"] = value
            out.origins.append((("spec", "resources", "memory"), where))
        elif key == "cpus":
            resources["cpus"] = value
            out.origins.append((("spec", "resources", "cpus"), where))
        elif key == "pids_limit":
            resources["pids"] = value
            out.origins.append((("spec", "resources", "pids"), where))
        elif key == "deploy" and isinstance(value, dict):
            limits = ((value.get("resources") or {}).get("limits")) or {}
            for name in ("memory", "cpus", "pids"):
                if name in limits:
                    resources[name] = limits[name]
                    out.origins.append(
                        (("spec", "resources", name), (*where, "resources", "limits", name))
                    )
            for other in value:
                if other != "resources":
                    warn((*where, other), f"deploy.{other} is ignored on one host")
        elif key == "build":
            if "image" in spec:
                warn(where, "build is ignored: the image named in image is used")
        elif not str(key).startswith("x-"):
            problem(where, _unsupported("service", path[-1], key))
    if mounts:
        out.data["spec"]["mounts"] = mounts
        out.origins.append((("spec", "mounts"), (*path, "volumes")))
        for i, origin in enumerate(mount_origins):
            out.origins.append((("spec", "mounts", i), origin))
    if resources:
        out.data["spec"]["resources"] = resources
    return has_networks


def _port(item: Any) -> Any:
    if not isinstance(item, dict):
        return str(item) if isinstance(item, int) and not isinstance(item, bool) else item
    port: dict[str, Any] = {"containerPort": item.get("target")}
    if item.get("published") not in (None, ""):
        published = item["published"]
        port["hostPort"] = int(published) if str(published).isdigit() else published
    if item.get("host_ip"):
        port["hostIP"] = item["host_ip"]
    if item.get("protocol"):
        port["protocol"] = item["protocol"]
    return port


def _volume_mount(item: Any, where: Path, problem: Callable[[Path, str], None]) -> Any:
    if isinstance(item, str):
        parts = item.split(":")
        if len(parts) == 3 and parts[2] not in ("ro", "rw"):
            modes = set(parts[2].split(","))
            if modes - {"ro", "rw", "z", "Z"}:
                problem(where, f"volume mode {parts[2]!r} is not supported (use ro or rw)")
            return ":".join([parts[0], parts[1], "ro" if "ro" in modes else "rw"])
        return item
    if not isinstance(item, dict):
        return item
    mount: dict[str, Any] = {}
    for key, value in item.items():
        if key in ("type", "source", "target"):
            mount[key] = value
        elif key == "read_only":
            mount["readOnly"] = value
        elif key == "bind" and isinstance(value, dict):
            if "create_host_path" in value:
                mount["createHostPath"] = value["create_host_path"]
        elif key == "volume" and isinstance(value, dict):
            if "nocopy" in value:
                mount["noCopy"] = value["nocopy"]
            if "subpath" in value:
                mount["subPath"] = value["subpath"]
        elif key == "tmpfs" and isinstance(value, dict):
            for name in ("size", "mode"):
                if name in value:
                    mount[name] = value[name]
        else:
            problem((*where, key), f"volume key {key!r} is not supported")
    return mount


def _networks(value: Any) -> Any:
    if isinstance(value, list):
        return value
    result = []
    for name, settings in _mapping(value):
        entry: dict[str, Any] = {"name": name}
        for key, ours in (("aliases", "aliases"), ("ipv4_address", "ipv4Address")):
            if isinstance(settings, dict) and key in settings:
                entry[ours] = settings[key]
        result.append(entry)
    return result


def _depends_on(value: Any) -> Any:
    if isinstance(value, list):
        return value
    result = []
    for name, settings in _mapping(value):
        entry: dict[str, Any] = {"name": name}
        if isinstance(settings, dict):
            if settings.get("condition") in _COMPOSE_CONDITIONS:
                entry["condition"] = settings["condition"]
            if "restart" in settings:
                entry["restart"] = settings["restart"]
        result.append(entry)
    return result


def _mapping(value: Any) -> list[tuple[Any, Any]]:
    return list(value.items()) if isinstance(value, dict) else []


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _unsupported(what: str, name: Any, key: Any) -> str:
    return f"the Compose key {key!r} of {what} {name!r} is not supported by pyreconcile"


def _dotted(path: Path) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _remap(pos: yamltree.Positions, origins: list[tuple[Path, Path]]) -> yamltree.Positions:
    """Positions for the new document: each of its paths at the Compose place it came from.

    A longer (more specific) origin wins; below an origin, sub-paths that exist
    unchanged in the Compose text (``env`` keys, list items) keep their own place.
    """
    keys: dict[Path, tuple[int, int]] = {}
    values: dict[Path, tuple[int, int]] = {}
    for ours, theirs in sorted(origins, key=lambda o: len(o[0])):
        for source, target in ((pos.keys, keys), (pos.values, values)):
            for path, where in source.items():
                if path[: len(theirs)] == theirs:
                    target[ours + path[len(theirs) :]] = where
            if theirs in pos.keys:
                keys.setdefault(ours, pos.keys[theirs])
    if () not in values:
        values[()] = next(iter(pos.values.values()), (1, 1))
    return yamltree.Positions(pos.file, keys, values)
