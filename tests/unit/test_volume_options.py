"""The local driver's options (Docker's type, device, o) as the engine reads them,
and the names of anonymous volumes. Pure: no mount is made here."""

from __future__ import annotations

import pytest

from runtime import client, errors
from runtime.engine import volume_drivers


@pytest.mark.parametrize(
    ("options", "kind", "describe"),
    [
        ({}, "directory", "directory"),
        ({"o": ""}, "directory", "directory"),
        ({"type": "tmpfs", "device": "tmpfs", "o": "size=64m,uid=1000"}, "tmpfs", "tmpfs"),
        ({"type": "none", "o": "bind", "device": "/srv/data/"}, "bind", "bind of /srv/data"),
        ({"o": "rbind,ro", "device": "/srv/data"}, "bind", "bind of /srv/data"),
        ({"type": "ext4", "device": "/dev/vdb1"}, "filesystem", "ext4 on /dev/vdb1"),
        (
            {"type": "xfs", "device": "/srv/disk.img", "o": "loop,noatime"},
            "filesystem",
            "xfs on /srv/disk.img (loop)",
        ),
        (
            {"type": "nfs", "device": ":/export", "o": "addr=10.0.0.1"},
            "filesystem",
            "nfs on :/export",
        ),
    ],
)
def test_options_are_read_as_docker_does(options: dict[str, str], kind: str, describe: str) -> None:
    opts = volume_drivers.parse("v", client.frozen_map(options))
    assert opts.kind == kind and opts.describe() == describe
    assert opts.mounted == (kind != "directory")


def test_the_words_of_o_are_split() -> None:
    tmpfs = volume_drivers.parse("v", (("o", "size=1m, mode=1777"), ("type", "tmpfs")))
    assert tmpfs.options == ("size=1m", "mode=1777")
    bind = volume_drivers.parse("v", (("device", "/x"), ("o", "rbind,ro")))
    assert bind.recursive and bind.options == ("ro",)
    loop = volume_drivers.parse("v", (("device", "/d.img"), ("o", "loop,ro"), ("type", "ext4")))
    assert loop.loop and loop.options == ("ro",)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"colour": "red"}, "unknown driver option 'colour'"),
        ({"type": "ext4"}, "needs device"),
        ({"device": "/dev/vdb"}, "give type"),
        ({"o": "bind"}, "needs device: an absolute host directory"),
        ({"o": "bind", "device": "relative/dir"}, "absolute host directory"),
        ({"o": "bind", "type": "ext4", "device": "/x"}, "goes with type: none"),
        ({"o": "bind,loop", "device": "/x"}, "both bind and loop"),
        ({"type": "tmpfs", "o": "bind"}, "no bind or loop"),
        ({"type": "ext4", "device": "disk.img", "o": "loop"}, "must be an absolute path"),
    ],
)
def test_wrong_options_say_what_to_do(options: dict[str, str], message: str) -> None:
    with pytest.raises(errors.InvalidSpec, match=message):
        volume_drivers.parse("v", client.frozen_map(options))


def test_a_missing_device_or_bind_source_is_named(tmp_path: object) -> None:
    bind = volume_drivers.parse("v", (("device", "/nonexistent/dir"), ("o", "bind")))
    with pytest.raises(errors.NotFound, match="/nonexistent/dir"):
        volume_drivers.check_device("v", bind)
    disk = volume_drivers.parse("v", (("device", "/nonexistent/disk"), ("type", "ext4")))
    with pytest.raises(errors.NotFound, match="/nonexistent/disk does not exist"):
        volume_drivers.check_device("v", disk)


def test_anonymous_volume_names_are_deterministic_and_valid() -> None:
    name = client.anonymous_volume_name("demo_web", "/var/lib/data/")
    assert name == client.anonymous_volume_name("demo_web", "/var/lib/data")
    assert name.startswith("demo_web.anon-") and len(name) == len("demo_web.anon-") + 12
    assert name != client.anonymous_volume_name("demo_web", "/var/lib/other")
    assert name != client.anonymous_volume_name("demo_api", "/var/lib/data")
    long = client.anonymous_volume_name("x" * 128, "/d")
    assert len(long) == 128 and long != client.anonymous_volume_name("x" * 127 + "y", "/d")
    config = client.ContainerConfig(name="demo_web.next", image="i")
    assert client.volume_owner(config) == "demo_web.next"
    labelled = client.ContainerConfig(
        name="demo_web.next", image="i", labels=((client.VOLUME_OWNER_LABEL, "demo_web"),)
    )
    assert client.volume_owner(labelled) == "demo_web"
