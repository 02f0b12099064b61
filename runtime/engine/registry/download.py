"""A blob download as one readable stream that resumes itself with ``Range``.

The content store hashes and counts what it reads from a ``BlobReader`` and
checks size and digest at the end, so the reader only has to deliver the
blob's bytes in order. When the connection drops or the body ends early, it
asks again from the byte it has reached (``Range: bytes=N-``): a ``206`` must
start exactly there (``Content-Range``); a ``200`` (a registry or proxy that
ignores ``Range``) is read from the start and the first N bytes are skipped,
the final digest check still covering everything kept. It gives up after
``options.resumes`` interruptions, raising ``Unavailable``; the content store
then deletes its ingest file, so nothing of the blob remains.

A body announcing more bytes than the descriptor's size is refused before
it is read (``InvalidSpec``), and the reader never returns more than that
size, so a registry cannot make us store an oversized blob.
"""

from __future__ import annotations

import http.client
import re
from collections.abc import Callable

import requests
import urllib3.exceptions

from runtime import errors
from runtime.engine.registry import distribution

READ_SIZE = 64 << 10
_CONTENT_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+|\*)$")
_READ_ERRORS = (
    urllib3.exceptions.HTTPError,
    requests.RequestException,
    http.client.HTTPException,
    ConnectionError,
    TimeoutError,
)


class BlobReader:
    """``read(n)`` over the blob ``digest`` of ``size`` bytes in ``repo``."""

    def __init__(
        self,
        repo: distribution.Repository,
        digest: str,
        size: int,
        *,
        resumes: int,
        on_bytes: Callable[[int], None] | None = None,
    ) -> None:
        self._repo = repo
        self._digest = digest
        self._size = size
        self._resumes_left = resumes
        self._on_bytes = on_bytes
        self._response: requests.Response | None = None
        self.offset = 0
        self.interruptions = 0

    def close(self) -> None:
        if self._response is not None:
            self._response.close()
            self._response = None

    def __enter__(self) -> BlobReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _what(self) -> str:
        return f"download blob {self._digest} from {self._repo.name}"

    def _open(self) -> requests.Response:
        response = self._repo.open_blob(self._digest, self.offset)
        if response.status_code == 416:
            response.close()
            raise errors.InvalidSpec(
                f"{self._what()}: the registry's blob ends at byte {self.offset} but its "
                f"descriptor says {self._size} bytes: refusing the image"
            )
        length = response.headers.get("Content-Length", "")
        if response.status_code == 206:
            match = _CONTENT_RANGE.match(response.headers.get("Content-Range", ""))
            if not match or int(match.group(1)) != self.offset:
                response.close()
                raise errors.Unavailable(
                    f"{self._what()}: the registry resumed at the wrong offset "
                    f"({response.headers.get('Content-Range')!r}, wanted {self.offset})"
                )
            remaining = self._size - self.offset
            if length.isdigit() and int(length) > remaining:
                response.close()
                raise errors.InvalidSpec(
                    f"{self._what()}: the registry sends more bytes than the blob's "
                    f"size {self._size}"
                )
            return response
        if length.isdigit() and int(length) > self._size:
            response.close()
            raise errors.InvalidSpec(
                f"{self._what()}: the registry sends {length} bytes for a blob whose "
                f"descriptor says {self._size}: refusing it"
            )
        skip = self.offset
        while skip:  # a 200 after an interruption: the server ignored Range
            data = response.raw.read(min(skip, 1 << 20), decode_content=True)
            if not data:
                break
            skip -= len(data)
        return response

    def read(self, n: int = -1, /) -> bytes:
        remaining = self._size - self.offset
        if remaining <= 0:
            return b""
        # small reads: what a read that breaks had received is lost, so resume from
        # at most READ_SIZE before the break
        want = min(READ_SIZE, remaining if n is None or n < 0 else min(n, remaining))
        while True:
            try:
                if self._response is None:
                    self._response = self._open()
                data = self._response.raw.read(want, decode_content=True)
            except errors.RuntimeError_ as exc:
                if not exc.retryable:
                    raise
                self._interrupted(exc)
                continue
            except _READ_ERRORS as exc:
                self._interrupted(exc)
                continue
            if data:
                self.offset += len(data)
                if self._on_bytes is not None:
                    self._on_bytes(len(data))
                return data
            self._interrupted(None)  # EOF before the blob's end

    def _interrupted(self, exc: BaseException | None) -> None:
        self.close()
        self.interruptions += 1
        if self._resumes_left <= 0:
            cause = f" ({exc})" if exc else " (the body ended early)"
            raise errors.Unavailable(
                f"{self._what()}: the connection broke {self.interruptions} times, last at "
                f"byte {self.offset} of {self._size}{cause}; retry later"
            ) from exc
        self._resumes_left -= 1
