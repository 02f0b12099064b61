"""The API on its socket, over the fake runtime: strict input, JSON errors, the
RuntimeClient contract through HTTP, and schemathesis against the OpenAPI document.

Malformed input of every kind gets a 4xx with a JSON body that has a
``message``; nothing a client sends makes it answer 500.
"""

from __future__ import annotations

import json
import shutil
import socket
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reconciler.daemon import client as api_client
from reconciler.daemon import openapi
from reconciler.daemon.remote import RemoteRuntime
from runtime import client, errors
from runtime.fake import FakeRuntime
from tests.support import daemon

IMAGE = "localhost/contract/busybox:latest"


@pytest.fixture
def short_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="pyrd-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def served(short_dir: Path) -> Iterator[tuple[FakeRuntime, str]]:
    fake = FakeRuntime()
    path = str(short_dir / "api.sock")
    with daemon.serve(fake, path, max_body=64 * 1024):
        yield fake, path


def raw(path: str, data: bytes) -> tuple[int, dict[str, Any]]:
    """Send ``data`` as is; the status and the JSON body of the answer."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(10)
    sock.connect(path)
    sock.sendall(data)
    answer = b""
    while b"\r\n\r\n" not in answer:
        chunk = sock.recv(65536)
        if not chunk:
            break
        answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        key, _, value = line.partition(b":")
        if key.lower() == b"content-length":
            length = int(value)
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    sock.close()
    status = int(head.split()[1])
    return status, json.loads(body) if body else {}


def post(path: str, target: str, body: bytes, extra: str = "") -> tuple[int, dict[str, Any]]:
    request = (
        f"POST {target} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n{extra}Connection: close\r\n\r\n"
    ).encode()
    return raw(path, request + body)


@pytest.mark.parametrize(
    "target, body, status, words",
    [
        ("/v1/containers", b"{not json", 400, "not JSON"),
        ("/v1/containers", b'{"name": "x", "image": "i", "netwroks": []}', 400, "unknown field"),
        ("/v1/containers", b'{"name": 1, "image": "i"}', 400, "expected a string"),
        ("/v1/containers", b'{"image": "i"}', 400, "name: is required"),
        ("/v1/containers", b"[]", 400, "expected an object"),
        ("/v1/containers/x/stop", b'{"timeout": "soon"}', 400, "expected a number"),
        ("/v1/containers/x/kill", b'{"signal": "SIGKILL", "x": 1}', 400, "unknown field"),
        ("/v1/stacks/diff", b'{"files": "one"}', 400, "expected an array"),
        ("/v1/stacks/diff", b'{"files": ["/nonexistent/a.yaml"], "cwd": "/"}', 400, "no such file"),
        ("/v1/stacks/diff", b'{"files": ["a.yaml"], "cwd": "/nonexistent"}', 400, "working dir"),
        ("/v1/images/import", b'{"path": "relative.tar"}', 400, "absolute"),
        ("/v1/nothing", b"{}", 404, "no such endpoint"),
        ("/v1/containers/x", b"{}", 405, "not allowed"),
        ("/v1/containers/%ff%fe/start", b"{}", 400, "percent-encoding"),
        ("/v1/containers?bogus=1", b"{}", 400, "unknown query parameter"),
    ],
)
def test_malformed_requests_get_a_4xx_json_error(
    served: tuple[FakeRuntime, str], target: str, body: bytes, status: int, words: str
) -> None:
    got, answer = post(served[1], target, body)
    assert got == status, answer
    if status >= 400:
        assert isinstance(answer.get("message"), str) and words in answer["message"], answer
        assert answer["category"] in ("InvalidSpec", "NotFound", "FailedPrecondition")


def test_oversized_and_unframed_bodies_are_refused(served: tuple[FakeRuntime, str]) -> None:
    path = served[1]
    status, answer = post(path, "/v1/containers", b"{" + b" " * (70 * 1024) + b"}")
    assert status == 413 and "limit" in answer["message"]
    status, answer = raw(
        path,
        b"POST /v1/containers HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    )
    assert status == 411 and "Content-Length" in answer["message"]
    status, answer = raw(
        path, b"POST /v1/containers HTTP/1.1\r\nHost: x\r\nContent-Length: 12x\r\n\r\n{}"
    )
    assert status == 400 and "not a number" in answer["message"]
    status, answer = post(path, "/v1/containers", b"{}", "Content-Length: 2\r\n")
    assert status == 400 and "more than one" in answer["message"]


def test_broken_http_is_answered_in_json(served: tuple[FakeRuntime, str]) -> None:
    path = served[1]
    status, answer = raw(path, b"GARBAGE\r\n\r\n")
    assert status == 400 and answer["message"]
    status, answer = raw(path, b"GET /v1/version HTTP/1.1\r\n" + b"X-A: b\r\n" * 200 + b"\r\n")
    assert status in (400, 431) and answer["message"]
    status, answer = raw(path, b"GET /" + b"a" * 70000 + b" HTTP/1.1\r\n\r\n")
    assert status == 414 and answer["message"]


def test_runtime_errors_keep_their_category_and_message(served: tuple[FakeRuntime, str]) -> None:
    remote = RemoteRuntime(api_client.ApiClient(served[1]))
    with pytest.raises(errors.NotFound) as found:
        remote.get_container("nope")
    assert "nope" in str(found.value)
    remote.create_volume(client.VolumeConfig(name="v"))
    with pytest.raises(errors.AlreadyExists):
        remote.create_volume(client.VolumeConfig(name="v"))
    remote.close()


def test_connect_says_who_is_there(short_dir: Path) -> None:
    assert api_client.connect(str(short_dir / "none.sock")) is None
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(short_dir / "stale.sock"))
    stale.close()  # bound, never listened: a socket left by a dead daemon
    assert api_client.connect(str(short_dir / "stale.sock")) is None


def test_the_served_document_is_the_checked_in_one(served: tuple[FakeRuntime, str]) -> None:
    api = api_client.ApiClient(served[1])
    data = b"".join(api.download("GET", "/v1/openapi.json"))
    assert json.loads(data) == openapi.document()
    assert openapi.main(["--check"]) == 0, "run python -m reconciler.daemon.openapi"
    api.close()


def test_metrics_and_events(served: tuple[FakeRuntime, str]) -> None:
    path = served[1]
    api = api_client.ApiClient(path)
    api.call("GET", "/v1/containers")
    text = b"".join(api.download("GET", "/metrics")).decode()
    assert "# TYPE pyreconcile_api_requests_total counter" in text
    assert 'pyreconcile_api_requests_total{code="200",method="GET",route="/v1/containers"}' in text
    api.close()


def test_a_client_gone_with_its_answer_unread_is_no_error(
    served: tuple[FakeRuntime, str], capfd: pytest.CaptureFixture[str]
) -> None:
    """A client that closes with the answer unread leaves the server a reset
    connection when it waits for the next request: nothing to print or log."""
    _, path = served
    for _ in range(3):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(path)
        sock.sendall(b"GET /v1/containers HTTP/1.1\r\nHost: x\r\n\r\n")
        time.sleep(0.1)  # the answer is in our buffer, unread
        sock.close()
    time.sleep(0.3)
    assert "Traceback" not in capfd.readouterr().err
    assert post(path, "/v1/stacks/diff", b"{}")[0] == 400  # and it still answers
