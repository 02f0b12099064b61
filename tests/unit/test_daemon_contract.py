"""The RuntimeClient contract suite again, through the daemon's API: ``RemoteRuntime``
→ HTTP on a unix socket → the server → ``FakeRuntime``. Every record and every
error crosses the wire and must come back equal (the codec, the routes, the
error mapping, streams, archives and exec with passed descriptors).

The suite's tests that reach into the fake (``isinstance(rt, FakeRuntime)``
then a fake-only helper) still can: the remote client says it is the fake, and
hands attributes it does not have to the fake behind the socket.
"""

from __future__ import annotations

import inspect
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reconciler.daemon import client as api_client
from reconciler.daemon.remote import RemoteRuntime
from runtime.fake import FakeRuntime
from tests.contract import test_runtime_contract as contract
from tests.support import daemon


class RemoteFake(RemoteRuntime):
    def __init__(self, api: api_client.ApiClient, fake: FakeRuntime) -> None:
        super().__init__(api)
        self._fake = fake

    @property  # type: ignore[misc]
    def __class__(self) -> type:  # isinstance(rt, FakeRuntime) in the suite
        return FakeRuntime

    def __getattr__(self, name: str) -> Any:
        return getattr(self._fake, name)


@pytest.fixture
def rt(busybox_tar: Path) -> Iterator[RemoteFake]:
    base = Path(tempfile.mkdtemp(prefix="pyrc-", dir="/tmp"))
    fake = FakeRuntime()
    fake.import_image(str(busybox_tar), contract.IMAGE)
    path = str(base / "api.sock")
    try:
        with daemon.serve(fake, path):
            remote = RemoteFake(api_client.ApiClient(path), fake)
            yield remote
            remote.close()
    finally:
        shutil.rmtree(base, ignore_errors=True)


_SIMPLE = {"rt", "tmp_path"}
for _name, _test in vars(contract).items():
    simple = callable(_test) and set(inspect.signature(_test).parameters) <= _SIMPLE
    if _name.startswith("test_") and simple:
        globals()[_name] = _test
