"""Platforms: parse, normalise and match ``os/architecture[/variant]``.

Normalised like containerd's ``platforms`` package: ``x86_64`` → ``amd64``,
``aarch64`` → ``arm64``; arm64 without a variant is v8 and arm is v7. In an
index the first entry that runs on the wanted platform wins (image-index.md);
amd64 accepts variants v1 to v3, arm accepts older variants than the wanted
one; buildx attestation entries (``unknown/unknown``) never match.
"""

from __future__ import annotations

import dataclasses
import platform as platform_module
from typing import TYPE_CHECKING

from runtime import errors

if TYPE_CHECKING:
    from runtime.engine.oci_layout import Descriptor

_ARCH = {
    "x86_64": ("amd64", None), "amd64": ("amd64", None), "aarch64": ("arm64", "v8"),
    "arm64": ("arm64", "v8"), "armv8l": ("arm", "v8"), "armv7l": ("arm", "v7"),
    "armv6l": ("arm", "v6"), "i386": ("386", None), "i686": ("386", None),
    "ppc64le": ("ppc64le", None), "s390x": ("s390x", None), "riscv64": ("riscv64", None),
}  # fmt: skip


@dataclasses.dataclass(frozen=True)
class Platform:
    os: str
    architecture: str
    variant: str | None


def host_platform() -> Platform:
    arch, variant = _ARCH.get(platform_module.machine(), (platform_module.machine(), None))
    return Platform("linux", arch, variant)


_KNOWN_OS = {
    "aix", "android", "darwin", "dragonfly", "freebsd", "illumos", "ios", "js", "linux",
    "netbsd", "openbsd", "plan9", "solaris", "wasip1", "windows",
}  # fmt: skip


def parse_platform(text: str) -> Platform:
    """``os/arch[/variant]`` or ``arch`` (os linux), normalised like containerd's
    ``platforms.Normalize``: ``x86_64`` → ``amd64``, ``aarch64`` → ``arm64/v8``,
    ``arm`` → ``arm/v7``, ``arm64`` → ``arm64/v8``."""
    parts = [p.strip().lower() for p in text.strip().split("/")]
    if not parts or not all(parts) or len(parts) > 3:
        raise errors.InvalidSpec(
            f"invalid platform {text!r}: expected os/architecture[/variant], e.g. linux/arm64"
        )
    if len(parts) == 1 or (len(parts) == 2 and parts[0] not in _KNOWN_OS):
        parts = ["linux", *parts]  # "arm64", "arm/v6": an architecture (containerd's rule)
    os_name, arch = parts[0], parts[1]
    variant = parts[2] if len(parts) == 3 else None
    norm_arch, default_variant = _ARCH.get(arch, (arch, None))
    if arch in ("arm", "armhf"):
        norm_arch, default_variant = "arm", "v7"
    if arch == "armel":
        norm_arch, default_variant = "arm", "v6"
    if norm_arch == "arm64" and variant in (None, "8"):
        variant = "v8"
    if variant is not None and variant.isdigit():
        variant = f"v{variant}"
    return Platform(os_name, norm_arch, variant or default_variant)


def format_platform(plat: Platform) -> str:
    return f"{plat.os}/{plat.architecture}" + (f"/{plat.variant}" if plat.variant else "")


def descriptor_platform(entry: Descriptor) -> str:
    plat = dict(entry.platform)
    if not plat.get("os") or not plat.get("architecture"):
        return ""
    return "/".join(p for p in (plat["os"], plat["architecture"], plat.get("variant")) if p)


def choose_manifest(entries: list[Descriptor], wanted: Platform, what: str) -> Descriptor:
    """The first index entry that runs on ``wanted`` (image-index.md: the first match
    wins); ``NotFound`` listing what the index offers."""
    for entry in entries:
        if platform_matches(entry, wanted):
            return entry
    offered = sorted({descriptor_platform(e) for e in entries if descriptor_platform(e)})
    raise errors.NotFound(
        f"{what}: no image for platform {format_platform(wanted)} "
        f"(it has {', '.join(offered) or 'no platform information'}); choose one with --platform"
    )


def platform_matches(entry: Descriptor, host: Platform) -> bool:
    """Whether an index entry runs here (amd64 accepts variants v1 to v3, arm accepts
    older variants than the host's)."""
    plat = dict(entry.platform)
    if not plat or entry.annotation("vnd.docker.reference.type") == "attestation-manifest":
        return False
    if plat.get("os") != host.os or plat.get("architecture") != host.architecture:
        return False
    variant = plat.get("variant") or {"arm64": "v8", "arm": "v7"}.get(host.architecture)
    if host.architecture == "amd64":
        return variant in (None, "v1", "v2", "v3")
    if host.architecture == "arm" and variant and host.variant:
        return variant[1:].isdigit() and int(variant[1:]) <= int(host.variant[1:])
    return variant == host.variant
