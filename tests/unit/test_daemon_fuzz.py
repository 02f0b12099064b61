"""schemathesis against the checked-in OpenAPI document, over the fake runtime.

Every operation is called with data generated from its schema, valid and not
(``GenerationMode.all``): the daemon must never answer 5xx, and every answer
must match the document (status code, content type, body schema). Left out:
operations that read or write host paths the fuzzer would choose (image
import/save/load), the streams that never end (events and logs with follow),
and exec (it takes the connection over).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hypothesis
import pytest

schemathesis = pytest.importorskip("schemathesis")

from reconciler.daemon import openapi  # noqa: E402
from runtime import client  # noqa: E402
from runtime.fake import FakeRuntime  # noqa: E402
from tests.support import daemon  # noqa: E402

DOCUMENT = json.loads(openapi.OUT.read_text())
for _path in (
    "/v1/images/import",
    "/v1/images/save",
    "/v1/images/load",
    "/v1/containers/{name}/exec",
    "/v1/volumes/{name}/archive",
):
    DOCUMENT["paths"].pop(_path)
for _path in ("/v1/events", "/v1/containers/{name}/logs"):
    _get = DOCUMENT["paths"][_path]["get"]
    _get["parameters"] = [p for p in _get["parameters"] if p["name"] != "follow"]

schema = schemathesis.openapi.from_dict(DOCUMENT)


@pytest.fixture(scope="module")
def served() -> Iterator[Any]:
    base = Path(tempfile.mkdtemp(prefix="pyrf-", dir="/tmp"))
    fake = FakeRuntime()
    fake.create_volume(client.VolumeConfig(name="v1"))
    fake.create_network(client.NetworkConfig(name="n1"))
    path = str(base / "api.sock")
    try:
        with daemon.serve(fake, path, max_body=256 * 1024):
            session = daemon.unix_session(path)
            yield session
            session.close()
    finally:
        shutil.rmtree(base, ignore_errors=True)


@schema.parametrize()
@hypothesis.settings(
    max_examples=25, deadline=None, suppress_health_check=list(hypothesis.HealthCheck)
)
def test_api_conforms_and_never_fails_on_input(case: Any, served: Any) -> None:
    from schemathesis import checks

    response = case.call(session=served, base_url="http://localhost")
    case.validate_response(
        response,
        checks=[
            checks.not_a_server_error,
            checks.status_code_conformance,
            checks.content_type_conformance,
            checks.response_schema_conformance,
        ],
    )
