"""The registry client against scripted HTTP servers on loopback: retries and
Retry-After, redirects that must not carry credentials to another host, Basic
and Bearer authentication with scopes and a token cache, and the manifest
checks (digest, Content-Type vs mediaType, schema 1, size cap)."""

from __future__ import annotations

import base64
import hashlib
import http.server
import json
import threading
import urllib.parse
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from runtime import errors
from runtime.engine import oci_layout
from runtime.engine.registry import auth, credentials, distribution, failures, options, transport

Answer = tuple[int, dict[str, str], bytes]
Route = Callable[["Request"], Answer]


class Request:
    def __init__(self, handler: http.server.BaseHTTPRequestHandler, body: bytes) -> None:
        self.method = handler.command
        self.path = handler.path
        self.headers = dict(handler.headers.items())
        self.body = body

    @property
    def query(self) -> dict[str, list[str]]:
        return urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)


class Server:
    """A scripted HTTP server: ``routes[(method, path without query)] = route``."""

    def __init__(self) -> None:
        self.routes: dict[tuple[str, str], Route] = {}
        self.seen: list[Request] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                request = Request(self, self.rfile.read(length) if length else b"")
                server.seen.append(request)
                path = urllib.parse.urlsplit(self.path).path
                route = server.routes.get((self.command, path))
                status, headers, body = route(request) if route else (404, {}, b"")
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = _serve

        self._httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.host = f"127.0.0.1:{self._httpd.server_address[1]}"
        self.routes[("GET", "/v2/")] = lambda r: (200, {}, b"{}")
        threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        ).start()

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


@pytest.fixture
def server() -> Iterator[Server]:
    s = Server()
    yield s
    s.close()


@pytest.fixture
def other() -> Iterator[Server]:
    s = Server()
    yield s
    s.close()


def make_transport(
    host: str, creds: credentials.Credentials | None = None, **kw: Any
) -> tuple[transport.Transport, list[float]]:
    slept: list[float] = []
    opts = options.RegistryOptions(
        docker_config_dir="/nonexistent", certs_dirs=(), sleep=slept.append, **kw
    )
    return transport.Transport(host, opts, lambda: creds), slept


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


MANIFEST = json.dumps(
    {
        "schemaVersion": 2,
        "mediaType": oci_layout.MANIFEST_OCI,
        "config": {"mediaType": oci_layout.CONFIG_OCI, "digest": "sha256:" + "a" * 64, "size": 2},
        "layers": [],
    }
).encode()


# -- retries --------------------------------------------------------------------------


def test_retry_after_is_honoured_then_success(server: Server) -> None:
    answers = iter([(429, {"Retry-After": "3"}, b""), (503, {}, b""), (200, {}, b"ok")])
    server.routes[("GET", "/v2/x")] = lambda r: next(answers)
    t, slept = make_transport(server.host, backoff=0.25)
    response = t.request("GET", "/v2/x", scopes=(), what="get x")
    assert response.status_code == 200 and response.content == b"ok"
    assert slept[0] == 3.0 and 0.25 <= slept[1] <= 0.75  # Retry-After, then backoff with jitter
    assert transport.retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == 10.0


def test_too_long_retry_after_and_exhausted_attempts_are_unavailable(server: Server) -> None:
    server.routes[("GET", "/v2/slow")] = lambda r: (429, {"Retry-After": "3600"}, b"")
    server.routes[("GET", "/v2/down")] = lambda r: (502, {}, b"")
    t, slept = make_transport(server.host, attempts=3)
    with pytest.raises(errors.Unavailable, match="retry after 3600"):
        t.request("GET", "/v2/slow", scopes=(), what="get slow")
    answer = t.request("GET", "/v2/down", scopes=(), what="get down")
    assert answer.status_code == 502 and len(slept) == 2
    with pytest.raises(errors.Unavailable):
        transport.expect(answer, (200,), "get down")


# -- redirects and credentials ----------------------------------------------------------


def test_redirect_to_another_host_drops_authorization(server: Server, other: Server) -> None:
    other.routes[("GET", "/storage/blob")] = lambda r: (200, {}, b"blob-bytes")
    server.routes[("GET", "/v2/")] = lambda r: (
        (200, {}, b"{}")
        if r.headers.get("Authorization")
        else (401, {"WWW-Authenticate": 'Basic realm="test"'}, b"")
    )
    server.routes[("GET", "/v2/r/blobs/sha256:1")] = lambda r: (
        (307, {"Location": f"http://{other.host}/storage/blob"}, b"")
        if r.headers.get("Authorization")
        else (401, {"WWW-Authenticate": 'Basic realm="test"'}, b"")
    )
    t, _ = make_transport(server.host, credentials.Credentials("u", "p"))
    response = t.request(
        "GET", "/v2/r/blobs/sha256:1", scopes=(), what="blob", headers={"Range": "bytes=5-"}
    )
    assert response.content == b"blob-bytes"
    (hop,) = other.seen
    assert "Authorization" not in hop.headers and hop.headers["Range"] == "bytes=5-"
    assert server.seen[-1].headers["Authorization"] == auth.basic_header(
        credentials.Credentials("u", "p")
    )


def test_basic_without_credentials_asks_to_log_in(server: Server) -> None:
    server.routes[("GET", "/v2/r/tags/list")] = lambda r: (
        401, {"WWW-Authenticate": 'Basic realm="x"'}, b"",
    )  # fmt: skip
    t, _ = make_transport(server.host)
    with pytest.raises(failures.AuthenticationRequired, match="pyreconcile login"):
        t.request("GET", "/v2/r/tags/list", scopes=(), what="tags")
    t, _ = make_transport(server.host, credentials.Credentials("u", "wrong"))
    with pytest.raises(failures.AuthenticationRequired, match="refused the credentials of 'u'"):
        t.request("GET", "/v2/r/tags/list", scopes=(), what="tags")


# -- bearer tokens ------------------------------------------------------------------------


class TokenScript:
    """A token server granting ``allowed`` actions per repository to user u (password p)."""

    def __init__(self, allowed: dict[str, set[str]]) -> None:
        self.allowed = allowed
        self.issued: list[tuple[str, tuple[str, ...]]] = []

    def __call__(self, r: Request) -> Answer:
        creds = r.headers.get("Authorization", "")
        if creds and base64.b64decode(creds[6:]) != b"u:p":
            return 401, {}, b""
        granted = []
        for scope in r.query.get("scope", []):
            _, name, actions = scope.split(":")
            ok = [a for a in actions.split(",") if a in self.allowed.get(name, set())]
            granted.append(f"repository:{name}:{','.join(ok)}")
        token = f"t{len(self.issued)}"
        self.issued.append((token, tuple(granted)))
        return 200, {}, json.dumps({"access_token": token, "expires_in": 120}).encode()


def bearer_registry(server: Server, tokens: TokenScript) -> None:
    realm = f"http://{server.host}/token"

    def protected(r: Request) -> Answer:
        needed = f"repository:r:{'push' if r.method == 'PUT' else 'pull'}"
        token = r.headers.get("Authorization", "").removeprefix("Bearer ")
        grants = dict(tokens.issued).get(token, ())
        if any(g.startswith("repository:r:") and needed.split(":")[2] in g for g in grants):
            return (201 if r.method == "PUT" else 200), {}, b"{}"
        challenge = f'Bearer realm="{realm}",service="reg",scope="repository:r:pull,push"'
        if token:
            challenge += ',error="insufficient_scope"'
        return 401, {"WWW-Authenticate": challenge}, b""

    server.routes[("GET", "/token")] = tokens
    server.routes[("GET", "/v2/r/tags/list")] = protected
    server.routes[("PUT", "/v2/r/manifests/x")] = protected


def test_bearer_tokens_are_cached_per_scope_and_expire(server: Server) -> None:
    tokens = TokenScript({"r": {"pull", "push"}})
    bearer_registry(server, tokens)
    now = [1000.0]
    t, _ = make_transport(server.host, credentials.Credentials("u", "p"))
    t.authorizer._clock = lambda: now[0]
    pull = ["repository:r:pull"]
    for _ in range(3):
        assert t.request("GET", "/v2/r/tags/list", scopes=pull, what="tags").status_code == 200
    assert len(tokens.issued) == 1  # one token, reused while valid
    token_request = next(r for r in server.seen if r.path.startswith("/token"))
    assert token_request.query["service"] == ["reg"]
    assert sorted(token_request.query["scope"]) == ["repository:r:pull", "repository:r:pull,push"]
    now[0] += 200  # past expires_in
    t.request("GET", "/v2/r/tags/list", scopes=pull, what="tags")
    assert len(tokens.issued) == 2


def test_insufficient_scope_is_access_denied_not_a_loop(server: Server) -> None:
    tokens = TokenScript({"r": {"pull"}})
    bearer_registry(server, tokens)
    t, _ = make_transport(server.host, credentials.Credentials("u", "p"))
    with pytest.raises(failures.AccessDenied, match="user 'u'"):
        t.request("PUT", "/v2/r/manifests/x", scopes=["repository:r:pull,push"], what="push")
    assert len(tokens.issued) <= 2
    anonymous, _ = make_transport(server.host)
    with pytest.raises(failures.AuthenticationRequired, match="anonymous"):
        anonymous.request(
            "PUT", "/v2/r/manifests/x", scopes=["repository:r:pull,push"], what="push"
        )


def test_scope_coverage() -> None:
    granted = frozenset({"repository:a/b:pull,push", "repository:c:pull"})
    assert auth._covers(granted, frozenset({"repository:a/b:pull"}))
    assert auth._covers(granted, frozenset({"repository:a/b:push", "repository:c:pull"}))
    assert not auth._covers(granted, frozenset({"repository:c:push"}))
    assert not auth._covers(granted, frozenset({"repository:d:pull"}))


def test_plain_http_token_realm_refused_for_a_remote_registry() -> None:
    opts = options.RegistryOptions(docker_config_dir="/nonexistent", certs_dirs=())
    authorizer = auth.Authorizer("registry.example", lambda: None, None, opts)  # type: ignore[arg-type]
    with pytest.raises(failures.AuthenticationRequired, match="plain-HTTP token realm"):
        authorizer.on_challenge(
            ['Bearer realm="http://auth.example/token",service="s"'], frozenset(), None
        )


# -- manifests --------------------------------------------------------------------------------


def manifest_route(body: bytes, content_type: str, digest_header: str | None = None) -> Route:
    def route(r: Request) -> Answer:
        headers = {"Content-Type": content_type}
        if digest_header:
            headers["Docker-Content-Digest"] = digest_header
        return 200, headers, body

    return route


def test_manifest_checks(server: Server) -> None:
    t, _ = make_transport(server.host)
    repo = distribution.Repository(t, "r")
    routes = server.routes
    routes[("GET", "/v2/r/manifests/good")] = manifest_route(
        MANIFEST, oci_layout.MANIFEST_OCI + "; charset=utf-8", sha(MANIFEST)
    )
    fetched = repo.get_manifest("good")
    assert (fetched.digest, fetched.media_type) == (sha(MANIFEST), oci_layout.MANIFEST_OCI)
    accept = next(r for r in server.seen if r.path.endswith("/good")).headers["Accept"]
    assert all(t in accept for t in (*oci_layout.INDEX_TYPES, *oci_layout.MANIFEST_TYPES))

    routes[("GET", "/v2/r/manifests/mismatch")] = manifest_route(
        MANIFEST, oci_layout.MANIFEST_DOCKER
    )
    with pytest.raises(errors.InvalidSpec, match="Content-Type"):
        repo.get_manifest("mismatch")
    routes[("GET", "/v2/r/manifests/lying")] = manifest_route(
        MANIFEST, oci_layout.MANIFEST_OCI, "sha256:" + "0" * 64
    )
    with pytest.raises(errors.InvalidSpec, match="Docker-Content-Digest"):
        repo.get_manifest("lying")
    with pytest.raises(errors.InvalidSpec, match="corrupt or tampered"):
        routes[("GET", f"/v2/r/manifests/{'sha256:' + '1' * 64}")] = manifest_route(
            MANIFEST, oci_layout.MANIFEST_OCI
        )
        repo.get_manifest("sha256:" + "1" * 64)
    schema1 = json.dumps({"schemaVersion": 1, "name": "r", "fsLayers": []}).encode()
    routes[("GET", "/v2/r/manifests/old")] = manifest_route(
        schema1, "application/vnd.docker.distribution.manifest.v1+prettyjws"
    )
    with pytest.raises(errors.InvalidSpec, match="schema 1"):
        repo.get_manifest("old")
    both = json.dumps({"schemaVersion": 2, "manifests": [], "layers": [], "config": {}}).encode()
    routes[("GET", "/v2/r/manifests/ambiguous")] = manifest_route(both, "application/json")
    with pytest.raises(errors.InvalidSpec, match="CVE-2021-41190"):
        repo.get_manifest("ambiguous")
    routes[("GET", "/v2/r/manifests/huge")] = manifest_route(b" " * 5000, oci_layout.MANIFEST_OCI)
    small, _ = make_transport(server.host, max_json=4096)
    with pytest.raises(errors.InvalidSpec, match="over the 4096"):
        distribution.Repository(small, "r").get_manifest("huge")
    routes[("GET", "/v2/r/manifests/gone")] = lambda r: (
        404, {}, b'{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}',
    )  # fmt: skip
    with pytest.raises(errors.NotFound, match="manifest_unknown"):
        repo.get_manifest("gone")


def test_upload_location_keeps_its_query() -> None:
    url = distribution.with_query("http://h/v2/r/blobs/uploads/u?_state=abc%3D", digest="sha256:1")
    assert url == "http://h/v2/r/blobs/uploads/u?_state=abc%3D&digest=sha256%3A1"


def test_tls_failure_is_not_downgraded_for_remote_registries() -> None:
    assert options.may_use_plain_http("127.0.0.1:5000", options.RegistryOptions())
    assert options.may_use_plain_http("localhost", options.RegistryOptions())
    assert options.may_use_plain_http("[::1]:5000", options.RegistryOptions())
    assert not options.may_use_plain_http("registry.example:5000", options.RegistryOptions())
    allowed = options.RegistryOptions(insecure=frozenset({"registry.example:5000"}))
    assert options.may_use_plain_http("registry.example:5000", allowed)
    assert options.tls_files("registry.example:5000", allowed).verify is False
    assert options.endpoint_host("docker.io") == "registry-1.docker.io"
    assert options.credentials_key("docker.io") == "https://index.docker.io/v1/"
