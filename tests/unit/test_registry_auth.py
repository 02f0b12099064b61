"""Challenges, Docker's config.json credentials (auths, helpers, login/logout)
and platform parsing: pure or file-only parts of the registry client."""

from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path

import pytest

from runtime import errors
from runtime.engine import oci_layout
from runtime.engine.registry import challenge, credentials, registries


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (
            'Bearer realm="https://auth.example.io/token",service="registry.example.io",'
            'scope="repository:samalba/my-app:pull,push"',
            [("bearer", {"realm": "https://auth.example.io/token",
                         "service": "registry.example.io",
                         "scope": "repository:samalba/my-app:pull,push"})],
        ),
        (
            'Bearer realm="http://127.0.0.1:1/t",service="s",'
            'scope="repository:a:pull,push repository:b:pull",error="insufficient_scope"',
            [("bearer", {"realm": "http://127.0.0.1:1/t", "service": "s",
                         "scope": "repository:a:pull,push repository:b:pull",
                         "error": "insufficient_scope"})],
        ),
        ('Basic realm="a, \\"quoted\\" realm"', [("basic", {"realm": 'a, "quoted" realm'})]),
        (
            'Basic realm="x", Bearer realm="y",service=z',
            [("basic", {"realm": "x"}), ("bearer", {"realm": "y", "service": "z"})],
        ),
        ("Negotiate", [("negotiate", {})]),
        ("", []),
    ],
)  # fmt: skip
def test_challenges(header: str, expected: list[tuple[str, dict[str, str]]]) -> None:
    parsed = challenge.parse(header)
    assert [(c.scheme, dict(c.params)) for c in parsed] == expected


def test_bearer_scopes_split_on_spaces() -> None:
    (c,) = challenge.parse('Bearer realm="r",scope="repository:a:pull repository:b:push"')
    assert c.scopes == ("repository:a:pull", "repository:b:push")


def write_config(directory: Path, doc: dict[str, object]) -> credentials.DockerConfig:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.json").write_text(json.dumps(doc))
    return credentials.DockerConfig(str(directory))


def test_auths_lookup_by_host_in_any_spelling(tmp_path: Path) -> None:
    token = base64.b64encode(b"alice:s3cret:with:colons").decode()
    config = write_config(
        tmp_path,
        {
            "auths": {
                "https://index.docker.io/v1/": {"auth": base64.b64encode(b"hub:pw").decode()},
                "https://registry.example:5000/v2/": {"auth": token},
                "other.example": {"identitytoken": "refresh-me"},
                "plain.example": {"username": "p", "password": "q"},
            },
            "detachKeys": "ctrl-q",
        },
    )
    found = config.lookup("registry.example:5000")
    assert found is not None and (found.username, found.password) == ("alice", "s3cret:with:colons")
    hub = config.lookup("https://index.docker.io/v1/")
    assert hub is not None and hub.username == "hub"
    identity = config.lookup("other.example")
    assert identity is not None and identity.identity_token == "refresh-me"
    assert config.lookup("plain.example") == credentials.Credentials("p", "q")
    assert config.lookup("unknown.example") is None
    assert "s3cret" not in repr(found)


def test_store_and_erase_keep_other_keys(tmp_path: Path) -> None:
    config = write_config(tmp_path / "d", {"detachKeys": "ctrl-q", "auths": {"a.example": {}}})
    config.store("b.example:5000", credentials.Credentials("u", "p"))
    doc = json.loads((tmp_path / "d/config.json").read_text())
    assert doc["detachKeys"] == "ctrl-q"
    assert base64.b64decode(doc["auths"]["b.example:5000"]["auth"]) == b"u:p"
    assert stat.S_IMODE(os.stat(tmp_path / "d/config.json").st_mode) == 0o600
    assert config.erase("b.example:5000") is True
    assert config.erase("b.example:5000") is False
    assert "b.example:5000" not in json.loads((tmp_path / "d/config.json").read_text())["auths"]
    fresh = credentials.DockerConfig(str(tmp_path / "new"))
    fresh.store("c.example", credentials.Credentials("x", "y"))
    assert fresh.lookup("c.example") == credentials.Credentials("x", "y")


def test_credential_helpers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A docker-credential-<name> program: get answers JSON, store/erase read stdin."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    store = tmp_path / "helper-store.json"
    helper = bin_dir / "docker-credential-pyrtest"
    helper.write_text(
        f"""#!/bin/sh
verb="$1"; input="$(cat)"
case "$verb" in
  get) case "$input" in
         helped.example) echo '{{"ServerURL":"helped.example","Username":"h","Secret":"s"}}';;
         token.example) echo '{{"Username":"<token>","Secret":"refresh"}}';;
         *) echo "credentials not found in native keychain"; exit 1;;
       esac;;
  store) printf '%s' "$input" > {store};;
  erase) printf 'erased %s' "$input" > {store};;
esac
"""
    )
    helper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    config = write_config(
        tmp_path / "d",
        {"credHelpers": {"helped.example": "pyrtest", "token.example": "pyrtest"},
         "credsStore": "pyrtest"},
    )  # fmt: skip
    assert config.lookup("helped.example") == credentials.Credentials("h", "s")
    token = config.lookup("token.example")
    assert token is not None and token.identity_token == "refresh"
    assert config.lookup("nothing.example") is None  # credsStore: not found
    config.store("new.example", credentials.Credentials("n", "secret"))
    assert json.loads(store.read_text())["Secret"] == "secret"
    doc = json.loads((tmp_path / "d/config.json").read_text())
    assert doc["auths"]["new.example"] == {}  # the secret is only in the helper
    assert config.erase("new.example") is True
    assert store.read_text() == "erased new.example"
    broken = write_config(tmp_path / "e", {"credsStore": "not-installed-anywhere"})
    with pytest.raises(errors.Unavailable, match="docker-credential-not-installed-anywhere"):
        broken.lookup("x.example")


def test_malformed_config_is_invalid(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(errors.InvalidSpec, match=r"config\.json"):
        credentials.DockerConfig(str(tmp_path)).lookup("x")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("linux/amd64", ("linux", "amd64", None)),
        ("amd64", ("linux", "amd64", None)),
        ("x86_64", ("linux", "amd64", None)),
        ("linux/aarch64", ("linux", "arm64", "v8")),
        ("arm64", ("linux", "arm64", "v8")),
        ("linux/arm64/8", ("linux", "arm64", "v8")),
        ("linux/arm", ("linux", "arm", "v7")),
        ("arm/v6", ("linux", "arm", "v6")),
        ("linux/armhf", ("linux", "arm", "v7")),
        ("windows/amd64", ("windows", "amd64", None)),
        ("Linux/ARM64", ("linux", "arm64", "v8")),
    ],
)
def test_platform_normalisation(text: str, expected: tuple[str, str, str | None]) -> None:
    assert oci_layout.parse_platform(text) == oci_layout.Platform(*expected)


@pytest.mark.parametrize("text", ["", "linux//amd64", "a/b/c/d"])
def test_bad_platforms(text: str) -> None:
    with pytest.raises(errors.InvalidSpec):
        oci_layout.parse_platform(text)


def entry(arch: str, variant: str | None = None, os_name: str = "linux") -> oci_layout.Descriptor:
    plat = {"os": os_name, "architecture": arch, **({"variant": variant} if variant else {})}
    return oci_layout.Descriptor(
        oci_layout.MANIFEST_OCI, "sha256:" + "0" * 64, 1, (), tuple(sorted(plat.items()))
    )


def test_platform_matching_takes_the_first_compatible_entry() -> None:
    entries = [entry("unknown", os_name="unknown"), entry("arm", "v5"), entry("arm", "v7"),
               entry("arm64"), entry("amd64", "v2")]  # fmt: skip
    pick = oci_layout.choose_manifest
    assert pick(entries, oci_layout.parse_platform("linux/arm/v7"), "x") is entries[1]
    assert pick(entries, oci_layout.parse_platform("arm64"), "x") is entries[3]
    assert pick(entries, oci_layout.parse_platform("amd64"), "x") is entries[4]
    with pytest.raises(errors.NotFound, match="linux/arm/v6"):
        pick(entries[2:], oci_layout.parse_platform("linux/arm/v6"), "x")


@pytest.mark.parametrize(
    ("text", "domain"),
    [
        ("localhost:5000", "localhost:5000"),
        ("https://127.0.0.1:5000/v2/", "127.0.0.1:5000"),
        ("https://index.docker.io/v1/", "docker.io"),
        ("docker.io", "docker.io"),
        ("registry-1.docker.io", "docker.io"),
    ],
)
def test_registry_names(text: str, domain: str) -> None:
    assert registries.registry_domain(text) == domain
