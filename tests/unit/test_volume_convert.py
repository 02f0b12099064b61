"""Manifest mounts into the runtime's MountConfig, and the labels volumes rely on."""

from __future__ import annotations

import dataclasses
import hashlib
import json

from reconciler import convert
from runtime import client
from tests.support.stacks import desired_from_docs, doc

OLD_MOUNT_FIELDS = ("type", "target", "source", "read_only", "sub_path", "size", "mode")


def _config(mounts: list[object]) -> client.ContainerConfig:
    desired = desired_from_docs(
        "demo", [doc("Container", "web", {"image": "busybox", "mounts": mounts})]
    )
    return convert.container_config("demo", desired.containers["web"], "sha256:1", {})


def test_mounts_carry_no_copy_create_host_path_and_anonymous_ones() -> None:
    config = _config(
        [
            {"source": "data", "target": "/data", "noCopy": True, "subPath": "a/b"},
            "/scratch",
            {"type": "bind", "source": "/srv/site", "target": "/site", "createHostPath": True},
            "data:/ro:ro",
        ]
    )
    data, anon, bind, ro = config.mounts
    assert (data.type, data.source, data.no_copy, data.sub_path) == (
        "volume",
        "demo_data",
        True,
        "a/b",
    )
    assert (anon.type, anon.source, anon.target) == ("volume", None, "/scratch")
    assert (bind.type, bind.source, bind.create_host_path) == ("bind", "/srv/site", True)
    assert ro.read_only and not ro.no_copy
    # the object owns its anonymous volumes, whatever the container's name is for a while
    assert dict(config.labels)[client.VOLUME_OWNER_LABEL] == "demo_web"
    assert client.volume_owner(dataclasses.replace(config, name="demo_web.next")) == "demo_web"


def test_the_config_digest_of_a_container_recorded_before_the_new_mount_fields_holds() -> None:
    config = _config(["data:/data", {"type": "tmpfs", "target": "/tmp", "size": "1Mi"}])
    plain = dataclasses.asdict(dataclasses.replace(config, labels=(), annotations=()))
    plain["mounts"] = [{k: m[k] for k in OLD_MOUNT_FIELDS} for m in plain["mounts"]]
    before = hashlib.sha256(
        json.dumps(plain, sort_keys=True, separators=(",", ":")).encode()
    ).hexdigest()
    assert convert.config_digest(config) == before
    changed = dataclasses.replace(
        config, mounts=(dataclasses.replace(config.mounts[0], no_copy=True), config.mounts[1])
    )
    assert convert.config_digest(changed) != before
