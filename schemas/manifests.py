"""The manifest documents: ``Image``, ``Container``, ``Volume`` and ``Network``.

Kubernetes-shaped (``apiVersion``, ``kind``, ``metadata``, ``spec``), camelCase
in YAML. Short syntaxes that Docker and Compose users know are accepted and
normalised at validation time into one canonical long form, so that two
spellings of the same intent (``"8080:80"`` and ``{containerPort: 80,
hostPort: 8080}``; ``10s`` and ``10``) are equal after validation and never
show up as a change.

Pure: no I/O. Paths that are relative (bind sources, env files, image
imports) stay relative here; the loader resolves them against the directory
of the file that names them.
"""

from __future__ import annotations

import ipaddress
import re
import shlex
import signal as _signal
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, field_serializer, field_validator, model_validator

from schemas._base import Model
from schemas.reference import normalize_reference
from schemas.units import Duration, Quantity

__all__ = [
    "API_VERSION",
    "ContainerManifest",
    "ContainerSpec",
    "Dependency",
    "Document",
    "Healthcheck",
    "ImageImport",
    "ImageManifest",
    "ImageSpec",
    "KINDS",
    "Metadata",
    "Mount",
    "NetworkAttachment",
    "NetworkManifest",
    "NetworkSpec",
    "PortMapping",
    "RESERVED_LABEL_PREFIX",
    "Resources",
    "UpdateConfig",
    "VolumeManifest",
    "VolumeSpec",
]

API_VERSION = "pyreconcile/v1"
KINDS = ("Image", "Network", "Volume", "Container")
RESERVED_LABEL_PREFIX = "io.pyreconcile."

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_HOSTNAME = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)(\.(?!-)[A-Za-z0-9-]{1,63}(?<!-))*$")
_LABEL_KEY = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9._/-]{0,253}[A-Za-z0-9])?$")
_ENV_KEY = re.compile(r"^[^=\x00]+$")
_USER = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*(:[A-Za-z0-9_][A-Za-z0-9_.-]*)?$")
_RESTART = re.compile(r"^(no|always|unless-stopped|on-failure(:[1-9][0-9]*)?)$")


def _dns_label(value: str, what: str = "name") -> str:
    if len(value) > 63 or not _DNS_LABEL.match(value):
        raise ValueError(
            f"invalid {what} {value!r}: use 1-63 lowercase letters, digits and '-', "
            "starting and ending with a letter or digit"
        )
    return value


def _scalar_to_str(value: Any) -> Any:
    """YAML gives ints, floats and booleans for unquoted values; env and labels are strings."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return value


def _string_map(value: Any, what: str) -> Any:
    """A map of strings; a list of ``KEY=value`` is accepted too (Compose's list form)."""
    if isinstance(value, list):
        result: dict[str, Any] = {}
        for item in value:
            if not isinstance(item, str) or "=" not in item:
                raise ValueError(f"{what} list entries must look like KEY=value, got {item!r}")
            key, _, val = item.partition("=")
            result[key] = val
        return result
    if isinstance(value, dict):
        out = {}
        for key, val in value.items():
            if val is None:
                raise ValueError(
                    f'{what} {key!r} has no value: write {key}: "" for an empty string'
                )
            out[str(key)] = _scalar_to_str(val)
        return out
    return value


def _env_map(value: Any) -> Any:
    return _string_map(value, "env")


def _label_map(value: Any) -> Any:
    return _string_map(value, "labels")


def _argv(value: Any) -> Any:
    """A command as a list; a string is split like a shell would (Compose's rule)."""
    if isinstance(value, str):
        try:
            return shlex.split(value)
        except ValueError as exc:
            raise ValueError(f"cannot split {value!r} into words: {exc}") from None
    if isinstance(value, list):
        return [_scalar_to_str(v) for v in value]
    return value


EnvMap = Annotated[dict[str, str], BeforeValidator(_env_map)]
LabelMap = Annotated[dict[str, str], BeforeValidator(_label_map)]
Argv = Annotated[list[str], BeforeValidator(_argv)]


def _check_labels(labels: dict[str, str]) -> dict[str, str]:
    for key in labels:
        if not _LABEL_KEY.match(key):
            raise ValueError(f"invalid label key {key!r}")
        if key.startswith(RESERVED_LABEL_PREFIX):
            raise ValueError(
                f"label {key!r} uses the reserved prefix {RESERVED_LABEL_PREFIX!r}; "
                "pyreconcile sets those itself"
            )
    return labels


def _absolute_path(value: str, what: str) -> str:
    if not value.startswith("/"):
        raise ValueError(f"{what} must be an absolute path inside the container, got {value!r}")
    parts = [p for p in value.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise ValueError(f"{what} must not contain '..', got {value!r}")
    return "/" + "/".join(parts)


# ---------------------------------------------------------------------------
# metadata


class Metadata(Model):
    name: str = Field(description="DNS label, unique per kind within a stack")
    stack: str | None = Field(
        default=None, description="the stack (Compose: project) it belongs to"
    )
    labels: LabelMap = Field(default_factory=dict)
    annotations: LabelMap = Field(default_factory=dict)
    suspend: bool = Field(
        default=False,
        description="pause reconciling this object: no change is made to it until this is false",
    )

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return _dns_label(value)

    @field_validator("stack")
    @classmethod
    def _stack(cls, value: str | None) -> str | None:
        return None if value is None else _dns_label(value, "stack name")

    @field_validator("labels")
    @classmethod
    def _labels(cls, value: dict[str, str]) -> dict[str, str]:
        return _check_labels(value)


# ---------------------------------------------------------------------------
# container parts


class PortMapping(Model):
    container_port: int = Field(ge=1, le=65535)
    host_port: int | None = Field(
        default=None, ge=0, le=65535, description="0 or absent: ephemeral"
    )
    host_ip: str | None = Field(default=None, alias="hostIP")
    protocol: Literal["tcp", "udp"] = "tcp"

    @field_validator("host_ip")
    @classmethod
    def _host_ip(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            return str(ipaddress.ip_address(value.strip("[]")))
        except ValueError:
            raise ValueError(f"hostIP {value!r} is not an IP address") from None


def _port_range(text: str) -> list[int]:
    if "-" in text:
        lo, _, hi = text.partition("-")
        start, end = int(lo), int(hi)
        if end < start:
            raise ValueError(f"port range {text!r} ends before it starts")
        return list(range(start, end + 1))
    return [int(text)]


def parse_port_short(text: str) -> list[dict[str, Any]]:
    """``[ip:][host:]container[/proto]``, with ranges (``8000-8001:80-81``)."""
    original = text
    protocol = "tcp"
    if "/" in text:
        text, protocol = text.rsplit("/", 1)
    host_ip: str | None = None
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise ValueError(f"invalid port {original!r}: unclosed '['")
        host_ip, text = text[1:end], text[end + 2 :]
    parts = text.split(":")
    if len(parts) == 3:
        host_ip, host, container = parts
    elif len(parts) == 2:
        host, container = parts
    elif len(parts) == 1:
        host, container = "", parts[0]
    else:
        raise ValueError(f"invalid port {original!r}: expected [ip:][host:]container[/protocol]")
    try:
        containers = _port_range(container)
        hosts: list[int | None] = list(_port_range(host)) if host else [None] * len(containers)
    except ValueError:
        raise ValueError(
            f"invalid port {original!r}: expected numbers such as 8080:80 or 8000-8001:80-81"
        ) from None
    if len(hosts) != len(containers):
        raise ValueError(f"invalid port {original!r}: host and container ranges differ in length")
    return [
        {"containerPort": c, "hostPort": h, "hostIP": host_ip or None, "protocol": protocol}
        for h, c in zip(hosts, containers, strict=True)
    ]


def _ports(value: Any) -> Any:
    if not isinstance(value, list):
        return value
    out: list[Any] = []
    for item in value:
        if isinstance(item, int) and not isinstance(item, bool):
            out.append({"containerPort": item})
        elif isinstance(item, str):
            out.extend(parse_port_short(item))
        else:
            out.append(item)
    return out


class Mount(Model):
    type: Literal["volume", "bind", "tmpfs"] = "volume"
    source: str | None = Field(
        default=None,
        description="a Volume's name, a host path (bind), or absent (anonymous, tmpfs)",
    )
    target: str
    read_only: bool = False
    sub_path: str | None = None
    size: Quantity | None = Field(default=None, description="tmpfs only")
    mode: int | None = Field(default=None, description="tmpfs only, e.g. 1777 (octal)")
    create_host_path: bool = Field(default=False, description="bind only: create a missing source")
    no_copy: bool = Field(default=False, description="volume only: do not copy the image's content")
    propagation: Literal["private", "rprivate", "shared", "rshared", "slave", "rslave"] | None = (
        Field(default=None, description="bind only: mount propagation (default rprivate)")
    )

    @model_validator(mode="before")
    @classmethod
    def _short_and_infer(cls, value: Any) -> Any:
        if isinstance(value, str):
            parts = value.split(":")
            if len(parts) == 1:
                value = {"target": parts[0]}
            elif len(parts) in (2, 3):
                value = {"source": parts[0], "target": parts[1]}
                if len(parts) == 3:
                    if parts[2] not in ("ro", "rw"):
                        raise ValueError(f"invalid mount {value!r}: the mode must be ro or rw")
                    value["readOnly"] = parts[2] == "ro"
            else:
                raise ValueError(f"invalid mount {value!r}: expected source:target[:ro|rw]")
        if isinstance(value, dict) and "type" not in value:
            source = value.get("source")
            if isinstance(source, str) and source.startswith(("/", "./", "../", "~")):
                value = {**value, "type": "bind"}
        if isinstance(value, dict) and isinstance(value.get("mode"), str | int):
            # Modes are octal as users write them: `mode: 1777` and `mode: "1777"`
            # both mean 0o1777 (read as digits, not as the decimal number).
            text = str(value["mode"])
            try:
                value = {**value, "mode": int(text, 8)}
            except ValueError:
                raise ValueError(
                    f"mode {value['mode']!r} is not an octal number such as 1777 or 755"
                ) from None
        return value

    @field_validator("target")
    @classmethod
    def _target(cls, value: str) -> str:
        return _absolute_path(value, "target")

    @field_serializer("mode")
    def _mode_octal(self, value: int | None) -> str | None:
        """Written back as the octal digits users write, so it reads back the same."""
        return None if value is None else f"{value:o}"

    @field_validator("sub_path")
    @classmethod
    def _sub_path(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if value.startswith("/") or ".." in value.split("/"):
            raise ValueError(f"subPath must be relative and without '..', got {value!r}")
        return value

    @model_validator(mode="after")
    def _by_type(self) -> Mount:
        if self.type == "bind" and not self.source:
            raise ValueError("a bind mount needs a source (a host path)")
        if self.type == "tmpfs" and self.source:
            raise ValueError("a tmpfs mount has no source")
        if self.type != "tmpfs" and (self.size is not None or self.mode is not None):
            raise ValueError("size and mode apply to tmpfs mounts only")
        if self.type == "volume" and self.source is not None:
            _dns_label(self.source, "volume name")
        if self.type != "bind" and self.create_host_path:
            raise ValueError("createHostPath applies to bind mounts only")
        if self.type != "bind" and self.propagation is not None:
            raise ValueError("propagation applies to bind mounts only")
        if self.type != "volume" and self.no_copy:
            raise ValueError("noCopy applies to volume mounts only")
        return self


class NetworkAttachment(Model):
    name: str
    aliases: list[str] = Field(default_factory=list)
    ipv4_address: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _short(cls, value: Any) -> Any:
        return {"name": value} if isinstance(value, str) else value

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return _dns_label(value, "network name")

    @field_validator("aliases")
    @classmethod
    def _aliases(cls, value: list[str]) -> list[str]:
        for alias in value:
            if not _HOSTNAME.match(alias):
                raise ValueError(f"alias {alias!r} is not a valid host name")
        return value

    @field_validator("ipv4_address")
    @classmethod
    def _ipv4(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            return str(ipaddress.IPv4Address(value))
        except ValueError:
            raise ValueError(f"ipv4Address {value!r} is not an IPv4 address") from None


_COMPOSE_CONDITIONS = {
    "service_started": "started",
    "service_healthy": "healthy",
    "service_completed_successfully": "completed",
}


class Dependency(Model):
    name: str
    condition: Literal["started", "healthy", "completed"] = "started"
    restart: bool = Field(
        default=False, description="restart this container when the dependency is"
    )

    @model_validator(mode="before")
    @classmethod
    def _short(cls, value: Any) -> Any:
        if isinstance(value, str):
            return {"name": value}
        if isinstance(value, dict) and value.get("condition") in _COMPOSE_CONDITIONS:
            return {**value, "condition": _COMPOSE_CONDITIONS[value["condition"]]}
        return value

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return _dns_label(value, "dependency name")


class Healthcheck(Model):
    test: Argv = Field(description='["CMD", …], ["CMD-SHELL", "…"], ["NONE"], or a shell string')
    interval: Duration = 30.0
    timeout: Duration = 30.0
    retries: int = Field(default=3, ge=1)
    start_period: Duration = 0.0
    start_interval: Duration = Field(default=5.0, description="between checks in startPeriod")

    @model_validator(mode="before")
    @classmethod
    def _shell_string(cls, value: Any) -> Any:
        if isinstance(value, dict) and isinstance(value.get("test"), str):
            return {**value, "test": ["CMD-SHELL", value["test"]]}
        return value

    @field_validator("test")
    @classmethod
    def _test(cls, value: list[str]) -> list[str]:
        if not value or value[0] not in ("CMD", "CMD-SHELL", "NONE"):
            raise ValueError('test must start with "CMD", "CMD-SHELL" or "NONE"')
        if value[0] != "NONE" and len(value) < 2:
            raise ValueError(f"test {value[0]} needs a command after it")
        if value[0] == "CMD-SHELL" and len(value) != 2:
            raise ValueError("CMD-SHELL takes exactly one string, the shell command")
        return value


class Resources(Model):
    memory: Quantity | None = Field(default=None, description="memory limit, at least 6Mi")
    cpus: float | None = Field(default=None, gt=0, description="CPU quota in cores, e.g. 0.5")
    pids: int | None = Field(default=None, gt=0, description="most processes at once")

    @field_validator("memory")
    @classmethod
    def _memory(cls, value: int | None) -> int | None:
        if value is not None and value < 6 * 2**20:
            raise ValueError("memory must be at least 6Mi (Docker's minimum)")
        return value


class UpdateConfig(Model):
    strategy: Literal["stop-first", "start-first"] = "stop-first"


def _restart(value: Any) -> Any:
    if value is False:  # a YAML 1.1 reader turns `no` into false
        return "no"
    return value


def _signal_name(value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            return _signal.Signals(value).name
        except ValueError:
            raise ValueError(f"{value} is not a signal number") from None
    if isinstance(value, str):
        name = value.upper()
        if name.isdigit():
            return _signal_name(int(name))
        if not name.startswith("SIG"):
            name = "SIG" + name
        if name not in _signal.Signals.__members__:
            raise ValueError(f"{value!r} is not a signal name (such as SIGTERM or SIGQUIT)")
        return name
    return value


# ---------------------------------------------------------------------------
# specs


class ContainerSpec(Model):
    image: str = Field(description="an Image object's name, or a reference such as busybox:1.36")
    entrypoint: Argv | None = Field(default=None, description="replaces the image's Entrypoint")
    command: Argv | None = Field(default=None, description="replaces the image's Cmd")
    env: EnvMap = Field(default_factory=dict)
    env_from: list[str] = Field(default_factory=list, description="env files, KEY=value per line")
    working_dir: str | None = None
    user: str | None = Field(default=None, description='"uid", "uid:gid", "name" or "name:group"')
    hostname: str | None = None
    labels: LabelMap = Field(default_factory=dict)
    restart: Annotated[str, BeforeValidator(_restart)] = Field(
        default="no", description="no | always | unless-stopped | on-failure[:N]"
    )
    ports: Annotated[list[PortMapping], BeforeValidator(_ports)] = Field(default_factory=list)
    mounts: list[Mount] = Field(default_factory=list)
    networks: list[NetworkAttachment] = Field(default_factory=list)
    depends_on: list[Dependency] = Field(default_factory=list)
    healthcheck: Healthcheck | None = None
    resources: Resources = Field(default_factory=Resources)
    stop_signal: Annotated[str, BeforeValidator(_signal_name)] | None = None
    stop_grace_period: Duration | None = None
    init: bool = False
    update: UpdateConfig = Field(default_factory=UpdateConfig)

    @field_validator("image")
    @classmethod
    def _image(cls, value: str) -> str:
        normalize_reference(value)  # raises with Docker's reasons
        return value

    @field_validator("env")
    @classmethod
    def _env(cls, value: dict[str, str]) -> dict[str, str]:
        for key in value:
            if not _ENV_KEY.match(key):
                raise ValueError(f"invalid environment variable name {key!r}")
        return value

    @field_validator("working_dir")
    @classmethod
    def _working_dir(cls, value: str | None) -> str | None:
        return None if value is None else _absolute_path(value, "workingDir")

    @field_validator("user")
    @classmethod
    def _user(cls, value: str | None) -> str | None:
        if value is not None and not _USER.match(value):
            raise ValueError(f"invalid user {value!r}: expected uid, uid:gid, name or name:group")
        return value

    @field_validator("hostname")
    @classmethod
    def _hostname(cls, value: str | None) -> str | None:
        if value is not None and (len(value) > 253 or not _HOSTNAME.match(value)):
            raise ValueError(f"invalid hostname {value!r}")
        return value

    @field_validator("labels")
    @classmethod
    def _labels(cls, value: dict[str, str]) -> dict[str, str]:
        return _check_labels(value)

    @field_validator("restart")
    @classmethod
    def _restart_policy(cls, value: str) -> str:
        if not _RESTART.match(value):
            raise ValueError(
                f"invalid restart policy {value!r}: "
                "use no, always, unless-stopped or on-failure[:N]"
            )
        return value

    @model_validator(mode="after")
    def _unique(self) -> ContainerSpec:
        targets = [m.target for m in self.mounts]
        dup = {t for t in targets if targets.count(t) > 1}
        if dup:
            raise ValueError(f"two mounts share the target {sorted(dup)[0]!r}")
        nets = [n.name for n in self.networks]
        dup = {n for n in nets if nets.count(n) > 1}
        if dup:
            raise ValueError(f"network {sorted(dup)[0]!r} is listed twice")
        deps = [d.name for d in self.depends_on]
        dup = {d for d in deps if deps.count(d) > 1}
        if dup:
            raise ValueError(f"dependency {sorted(dup)[0]!r} is listed twice")
        published = [(p.host_ip, p.host_port, p.protocol) for p in self.ports if p.host_port]
        dup_ports = {p for p in published if published.count(p) > 1}
        if dup_ports:
            _, port, proto = sorted(dup_ports, key=str)[0]
            raise ValueError(f"host port {port}/{proto} is published twice")
        return self


class ImageImport(Model):
    path: str = Field(description="a rootfs tarball or an OCI image layout (directory or tar)")
    format: Literal["auto", "rootfs", "oci"] = "auto"


_PLATFORM = re.compile(r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+){0,2}$")


class ImageSpec(Model):
    ref: str | None = Field(
        default=None, description="the image to pull, e.g. docker.io/library/busybox:1.36"
    )
    import_: ImageImport | None = Field(default=None, alias="import")
    pull_policy: Literal["Always", "IfNotPresent", "Never"] = Field(
        default="IfNotPresent",
        description="Always: ask the registry on every apply and diff, and pull when the tag "
        "names another image (image drift); IfNotPresent: pull only when absent; Never: never pull",
    )
    platform: str | None = Field(
        default=None,
        description="os/architecture[/variant] to pull from a multi-platform image "
        "(default: this host's), e.g. linux/arm64",
    )

    @field_validator("ref")
    @classmethod
    def _reference(cls, value: str | None) -> str | None:
        return None if value is None else normalize_reference(value)

    @field_validator("platform")
    @classmethod
    def _platform(cls, value: str | None) -> str | None:
        if value is not None and not _PLATFORM.match(value):
            raise ValueError(f"invalid platform {value!r}: expected os/architecture[/variant]")
        return value

    @model_validator(mode="after")
    def _source(self) -> ImageSpec:
        if self.ref is None and self.import_ is None:
            raise ValueError("an Image needs a ref to pull, an import to load, or both")
        return self


class VolumeSpec(Model):
    driver: Literal["local"] = "local"
    driver_opts: LabelMap = Field(
        default_factory=dict, description="Docker's local driver options: type, device, o"
    )

    @field_validator("driver_opts")
    @classmethod
    def _opts(cls, value: dict[str, str]) -> dict[str, str]:
        unknown = set(value) - {"type", "device", "o"}
        if unknown:
            raise ValueError(f"unknown driver option {sorted(unknown)[0]!r}: use type, device or o")
        return value


class NetworkSpec(Model):
    driver: Literal["bridge", "host", "none", "macvlan", "overlay"] = "bridge"
    subnet: str | None = None
    gateway: str | None = None
    ip_range: str | None = None
    internal: bool = False
    parent: str | None = Field(default=None, description="macvlan: the host interface")
    peers: list[str] = Field(
        default_factory=list, description="overlay: the other hosts' addresses"
    )
    vni: int | None = Field(default=None, ge=1, le=16777215, description="overlay: VXLAN id")
    mtu: int | None = Field(default=None, ge=68, le=65535)

    @field_validator("subnet", "ip_range")
    @classmethod
    def _network(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            return str(ipaddress.ip_network(value, strict=True))
        except ValueError as exc:
            raise ValueError(f"{value!r} is not a network in CIDR form: {exc}") from None

    @field_validator("gateway")
    @classmethod
    def _gateway(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            return str(ipaddress.ip_address(value))
        except ValueError:
            raise ValueError(f"gateway {value!r} is not an IP address") from None

    @model_validator(mode="after")
    def _consistent(self) -> NetworkSpec:
        if self.driver in ("host", "none") and (
            self.subnet or self.gateway or self.ip_range or self.parent or self.peers
        ):
            raise ValueError(f"a {self.driver} network takes no subnet, gateway, parent or peers")
        if self.driver == "macvlan" and not self.parent:
            raise ValueError("a macvlan network needs parent (the host interface)")
        if self.subnet:
            net = ipaddress.ip_network(self.subnet)
            if self.gateway and ipaddress.ip_address(self.gateway) not in net:
                raise ValueError(f"gateway {self.gateway} is outside subnet {self.subnet}")
            if self.ip_range and not ipaddress.ip_network(self.ip_range).subnet_of(net):  # type: ignore[arg-type]
                raise ValueError(f"ipRange {self.ip_range} is outside subnet {self.subnet}")
        elif self.gateway or self.ip_range:
            raise ValueError("gateway and ipRange need a subnet")
        return self


# ---------------------------------------------------------------------------
# documents


class _Document(Model):
    api_version: Literal["pyreconcile/v1"] = Field(alias="apiVersion")
    metadata: Metadata


class ImageManifest(_Document):
    kind: Literal["Image"]
    spec: ImageSpec

    @property
    def reference(self) -> str:
        """What the image is called locally: its reference, or one made from its name."""
        if self.spec.ref:
            return self.spec.ref
        return normalize_reference(f"localhost/pyreconcile/{self.metadata.name}:latest")


class ContainerManifest(_Document):
    kind: Literal["Container"]
    spec: ContainerSpec


class VolumeManifest(_Document):
    kind: Literal["Volume"]
    spec: VolumeSpec = Field(default_factory=VolumeSpec)


class NetworkManifest(_Document):
    kind: Literal["Network"]
    spec: NetworkSpec = Field(default_factory=NetworkSpec)


Document = Annotated[
    ImageManifest | ContainerManifest | VolumeManifest | NetworkManifest,
    Field(discriminator="kind"),
]
