"""Registry credentials in Docker's ``config.json``, shared with ``docker login``.

Lookup order for a registry (Docker's): ``credHelpers[<host>]`` (a
``docker-credential-<name>`` program), then ``auths[<host>]`` (base64
``user:password`` in ``auth``, or ``username``/``password``, or an
``identitytoken``), then ``credsStore`` (the default helper). Keys in
``auths`` may be written with a scheme or a path (``https://host/v1/``); they
are compared by host. A helper answers ``get`` with ``{"Username", "Secret"}``;
the user name ``<token>`` marks an identity token (an OAuth2 refresh token).

``store``/``erase`` (``pyreconcile login``/``logout``) use the helper when one
applies and else write ``auths`` in place, atomically, mode 0600, keeping every
other key of the file as it was.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import dataclasses
import json
import os
import shutil
import subprocess
import tempfile
import urllib.parse
from typing import Any

from runtime import errors

HELPER_PREFIX = "docker-credential-"
IDENTITY_TOKEN_USER = "<token>"
_HELPER_TIMEOUT = 30.0


@dataclasses.dataclass(frozen=True)
class Credentials:
    username: str
    password: str
    identity_token: str | None = None  # an OAuth2 refresh token, used instead of the password

    def __repr__(self) -> str:  # never print a secret
        return f"Credentials(username={self.username!r}, password=***)"


def _host_of(key: str) -> str:
    if "://" in key:
        return urllib.parse.urlsplit(key).netloc
    return key.split("/", 1)[0]


class DockerConfig:
    """``<dir>/config.json``; read afresh on every lookup (another login may change it)."""

    def __init__(self, directory: str) -> None:
        self.directory = directory
        self.path = os.path.join(directory, "config.json")

    def _load(self) -> dict[str, Any]:
        try:
            with open(self.path, "rb") as f:
                raw = f.read(4 << 20)
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise errors.FailedPrecondition(
                f"cannot read {self.path}: {(exc.strerror or str(exc)).lower()}"
            ) from exc
        try:
            doc = json.loads(raw or b"{}")
        except ValueError as exc:
            raise errors.InvalidSpec(f"{self.path} is not valid JSON ({exc}): fix it") from exc
        if not isinstance(doc, dict):
            raise errors.InvalidSpec(f"{self.path} is not a JSON object: fix it")
        return doc

    def _helper_for(self, doc: dict[str, Any], key: str) -> str | None:
        helpers = doc.get("credHelpers") or {}
        host = _host_of(key)
        for name, helper in helpers.items() if isinstance(helpers, dict) else ():
            if _host_of(name) == host and isinstance(helper, str) and helper:
                return helper
        store = doc.get("credsStore")
        return store if isinstance(store, str) and store else None

    def lookup(self, key: str) -> Credentials | None:
        """The credentials filed under ``key`` (see ``options.credentials_key``)."""
        doc = self._load()
        helpers = doc.get("credHelpers") or {}
        host = _host_of(key)
        if isinstance(helpers, dict) and any(_host_of(n) == host for n in helpers):
            helper = self._helper_for(doc, key)
            return _helper_get(helper, key) if helper else None
        auths = doc.get("auths") or {}
        if isinstance(auths, dict):
            for name, entry in auths.items():
                if _host_of(name) == host and isinstance(entry, dict):
                    found = _from_entry(entry, self.path, name)
                    if found is not None:
                        return found
        store = doc.get("credsStore")
        if isinstance(store, str) and store:
            return _helper_get(store, key)
        return None

    def store(self, key: str, creds: Credentials) -> None:
        doc = self._load()
        helper = self._helper_for(doc, key)
        if helper:
            _helper_run(helper, "store", json.dumps(
                {"ServerURL": key, "Username": creds.username, "Secret": creds.password}
            ))  # fmt: skip
            auths = doc.setdefault("auths", {})
            auths[key] = {}  # Docker records the host with an empty entry
        else:
            token = base64.b64encode(f"{creds.username}:{creds.password}".encode()).decode()
            doc.setdefault("auths", {})[key] = {"auth": token}
        self._save(doc)

    def erase(self, key: str) -> bool:
        """Forget the registry; False when nothing was stored for it."""
        doc = self._load()
        found = False
        auths = doc.get("auths") or {}
        host = _host_of(key)
        for name in [n for n in auths if _host_of(n) == host]:
            del auths[name]
            found = True
        helper = self._helper_for(doc, key)
        if helper:
            with contextlib.suppress(errors.NotFound):
                _helper_run(helper, "erase", key)
                found = True
        if found:
            self._save(doc)
        return found

    def _save(self, doc: dict[str, Any]) -> None:
        with errors.map_os_errors(f"write {self.path}"):
            os.makedirs(self.directory, mode=0o700, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".config.json.")
            try:
                with os.fdopen(fd, "w") as out:
                    json.dump(doc, out, indent="\t")
                    out.flush()
                    os.fsync(out.fileno())
                os.replace(tmp, self.path)
            except BaseException:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)
                raise


def _from_entry(entry: dict[str, Any], path: str, name: str) -> Credentials | None:
    token = entry.get("identitytoken")
    if isinstance(entry.get("auth"), str) and entry["auth"]:
        try:
            user, _, password = base64.b64decode(entry["auth"]).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
            raise errors.InvalidSpec(
                f"{path}: auths[{name!r}].auth is not base64 of user:password"
            ) from exc
        return Credentials(user, password, token if isinstance(token, str) and token else None)
    if isinstance(entry.get("username"), str):
        return Credentials(entry["username"], str(entry.get("password") or ""), token or None)
    if isinstance(token, str) and token:
        return Credentials(IDENTITY_TOKEN_USER, "", token)
    return None


def _helper_run(helper: str, verb: str, stdin: str) -> str:
    program = shutil.which(HELPER_PREFIX + helper)
    if program is None:
        raise errors.Unavailable(
            f"credential helper {HELPER_PREFIX + helper} is configured in Docker's config.json "
            "but is not installed: install it or remove it from the config"
        )
    try:
        done = subprocess.run(
            [program, verb], input=stdin, capture_output=True, text=True,
            timeout=_HELPER_TIMEOUT, check=False,
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise errors.Unavailable(f"credential helper {program} {verb} failed: {exc}") from exc
    if done.returncode != 0:
        message = (done.stdout.strip() or done.stderr.strip()).lower()
        if "credentials not found" in message:  # the helper protocol's own words
            raise errors.NotFound(f"{program} has no credentials for {stdin.strip()}")
        raise errors.Unavailable(f"credential helper {program} {verb} failed: {message[:200]}")
    return done.stdout


def _helper_get(helper: str, key: str) -> Credentials | None:
    try:
        out = _helper_run(helper, "get", key)
    except errors.NotFound:
        return None
    try:
        doc = json.loads(out)
        user, secret = str(doc["Username"]), str(doc["Secret"])
    except (ValueError, KeyError, TypeError) as exc:
        raise errors.Unavailable(f"credential helper {helper} gave an unreadable answer") from exc
    if user == IDENTITY_TOKEN_USER:
        return Credentials(user, "", secret)
    return Credentials(user, secret)
