"""Registry authentication: anonymous, Basic, and Bearer tokens with scopes.

The registry says what it wants in a 401 challenge (``challenge``). Basic:
send the user's credentials on every request from then on. Bearer (the
distribution token spec): ask the challenge's ``realm`` for a token covering
the scopes the request needs (``repository:test/bb:pull,push``, one ``scope``
query parameter per scope; several scopes in one challenge are space
separated), with Basic credentials when we have some, else anonymously; an
identity token (OAuth2 refresh token from ``docker login``) is exchanged with
the OAuth2 ``POST`` form instead.

Tokens are cached per (realm, service, scope set) until ``expires_in``
(at least 60 s, the spec's default) minus a margin; a cached token is reused
for any request whose scopes it covers. A token server grants the
*intersection* of what was asked and what the account may do, without an
error; so when a request fails with ``insufficient_scope`` although its token
was asked for exactly those scopes, the account is not allowed:
``AccessDenied``, not another round.

Credentials go only to the registry host and to its token realm (which must
be HTTPS unless the registry may use plain HTTP itself); the transport drops
the ``Authorization`` header on redirects to other hosts.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import threading
import time
import urllib.parse
from collections.abc import Callable

import requests

from runtime import errors
from runtime.engine.registry import challenge, failures, options
from runtime.engine.registry.credentials import Credentials

MIN_EXPIRY = 60.0
EXPIRY_MARGIN = 5.0
CLIENT_ID = "pyreconcile"


@dataclasses.dataclass(frozen=True)
class _Token:
    value: str
    scopes: frozenset[str]
    expires: float  # monotonic


def basic_header(creds: Credentials) -> str:
    raw = f"{creds.username}:{creds.password}".encode()
    return "Basic " + base64.b64encode(raw).decode()


def _covers(granted: frozenset[str], wanted: frozenset[str]) -> bool:
    """Whether a token asked for ``granted`` scopes serves a request needing ``wanted``."""
    have: dict[tuple[str, str], set[str]] = {}
    for scope in granted:
        kind, name, actions = _split_scope(scope)
        have.setdefault((kind, name), set()).update(actions)
    for scope in wanted:
        kind, name, actions = _split_scope(scope)
        if not set(actions) <= have.get((kind, name), set()):
            return False
    return True


def _split_scope(scope: str) -> tuple[str, str, list[str]]:
    kind, _, rest = scope.partition(":")
    name, _, actions = rest.rpartition(":")
    return kind, name, [a for a in actions.split(",") if a]


class Authorizer:
    """The authentication state of one registry host (thread-safe)."""

    def __init__(
        self,
        host: str,
        credentials: Callable[[], Credentials | None],
        session: requests.Session,
        opts: options.RegistryOptions,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.host = host
        self._credentials = credentials
        self._creds_loaded = False
        self._creds: Credentials | None = None
        self._session = session
        self._options = opts
        self._clock = clock
        self._lock = threading.Lock()
        self._basic = False
        self._bearer: challenge.Challenge | None = None
        self._tokens: list[_Token] = []

    def creds(self) -> Credentials | None:
        with self._lock:
            if not self._creds_loaded:
                self._creds = self._credentials()
                self._creds_loaded = True
            return self._creds

    def header(self, scopes: frozenset[str]) -> str | None:
        """The ``Authorization`` value for a request needing ``scopes`` (None: anonymous)."""
        if self._basic:
            creds = self.creds()
            return basic_header(creds) if creds else None
        if self._bearer is None:
            return None
        now = self._clock()
        with self._lock:
            self._tokens = [t for t in self._tokens if t.expires > now]
            for token in self._tokens:
                if _covers(token.scopes, scopes):
                    return f"Bearer {token.value}"
        return None

    def on_challenge(
        self, header_values: list[str], scopes: frozenset[str], sent: str | None
    ) -> None:
        """Learn from a 401 answer; afterwards ``header`` gives what to retry with.

        Raises ``AuthenticationRequired``/``AccessDenied`` when retrying cannot help.
        """
        found = [c for value in header_values for c in challenge.parse(value)]
        bearer = next((c for c in found if c.scheme == "bearer" and c.get("realm")), None)
        basic = next((c for c in found if c.scheme == "basic"), None)
        if bearer is not None:
            wanted = frozenset(scopes) | frozenset(bearer.scopes)
            if sent is not None and sent.startswith("Bearer "):
                used = next((t for t in self._tokens if f"Bearer {t.value}" == sent), None)
                if used is not None and _covers(used.scopes, wanted):
                    if bearer.get("error") == "insufficient_scope":
                        creds = self.creds()
                        if creds is None:
                            raise failures.AuthenticationRequired(
                                f"registry {self.host} denied {' '.join(sorted(wanted))} to "
                                f"anonymous access: log in with `pyreconcile login {self.host}`"
                            )
                        raise failures.AccessDenied(
                            f"registry {self.host} denied {' '.join(sorted(wanted))}: its token "
                            f"server did not grant it to user {creds.username!r}"
                        )
                    raise failures.AuthenticationRequired(
                        f"registry {self.host} refused its own token server's token for "
                        f"{' '.join(sorted(wanted))}: log in with `pyreconcile login {self.host}`"
                    )
            self._bearer = bearer
            self._fetch_token(bearer, wanted)
            return
        if basic is not None:
            creds = self.creds()
            if creds is None:
                raise failures.AuthenticationRequired(
                    f"registry {self.host} requires a login: run `pyreconcile login {self.host}`"
                )
            if self._basic and sent is not None:
                raise failures.AuthenticationRequired(
                    f"registry {self.host} refused the credentials of {creds.username!r}: "
                    f"log in again with `pyreconcile login {self.host}`"
                )
            self._basic = True
            return
        raise failures.AuthenticationRequired(
            f"registry {self.host} asked for an authentication scheme this client does not "
            f"speak ({', '.join(c.scheme for c in found) or 'none given'})"
        )

    # -- the token server --------------------------------------------------------

    def _fetch_token(self, bearer: challenge.Challenge, scopes: frozenset[str]) -> None:
        realm = bearer.get("realm") or ""
        parts = urllib.parse.urlsplit(realm)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise failures.AuthenticationRequired(
                f"registry {self.host} names an invalid token realm {realm!r}"
            )
        if parts.scheme == "http" and not options.may_use_plain_http(parts.netloc, self._options):
            raise failures.AuthenticationRequired(
                f"registry {self.host} sends credentials to a plain-HTTP token realm {realm}: "
                "refusing (allow it with PYRECONCILE_INSECURE_REGISTRIES)"
            )
        service = bearer.get("service")
        creds = self.creds()
        what = f"get a token for {' '.join(sorted(scopes))} from {realm}"
        tls = options.tls_files(parts.netloc, self._options)
        with failures.mapped(what, parts.netloc):
            if creds is not None and creds.identity_token:
                form = {
                    "grant_type": "refresh_token",
                    "refresh_token": creds.identity_token,
                    "client_id": CLIENT_ID,
                    "scope": " ".join(sorted(scopes)),
                }
                if service:
                    form["service"] = service
                response = self._session.post(
                    realm, data=form, timeout=self._timeouts(), verify=tls.verify,
                    cert=tls.cert, allow_redirects=False,
                )  # fmt: skip
            else:
                query: list[tuple[str, str]] = [("service", service)] if service else []
                query += [("scope", s) for s in sorted(scopes)]
                headers = {"Authorization": basic_header(creds)} if creds else {}
                response = self._session.get(
                    realm, params=query, headers=headers, timeout=self._timeouts(),
                    verify=tls.verify, cert=tls.cert, allow_redirects=False,
                )  # fmt: skip
            body = response.content[: options.MAX_TOKEN_RESPONSE + 1]
        if response.status_code in (401, 403):
            who = f"user {creds.username!r}" if creds else "anonymous access"
            raise failures.AuthenticationRequired(
                f"{what}: the token server refused {who} ({failures.describe(response)}); "
                f"log in with `pyreconcile login {self.host}`"
            )
        if response.status_code != 200:
            raise failures.from_response(response, what)
        try:
            doc = json.loads(body)
            value = doc.get("token") or doc.get("access_token")
            expires_in = float(doc.get("expires_in") or MIN_EXPIRY)
        except (ValueError, AttributeError, TypeError) as exc:
            raise errors.Unavailable(f"{what}: the token server's answer is not JSON") from exc
        if not isinstance(value, str) or not value:
            raise errors.Unavailable(f"{what}: the token server's answer holds no token")
        lifetime = max(expires_in, MIN_EXPIRY) - EXPIRY_MARGIN
        with self._lock:
            self._tokens.append(_Token(value, scopes, self._clock() + lifetime))

    def _timeouts(self) -> tuple[float, float]:
        return (self._options.connect_timeout, self._options.read_timeout)
