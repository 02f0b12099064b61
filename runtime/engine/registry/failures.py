"""Registry failures as ``runtime.errors`` categories: the one place where HTTP
statuses, the distribution spec's error codes and ``requests`` exceptions are
mapped (STYLE: foreign errors are mapped once, at the edge).

* 401 after authenticating, or no credentials for a registry that asks:
  ``AuthenticationRequired`` (log in); 403 or ``insufficient_scope`` after a
  fresh token: ``AccessDenied`` (the account may not do this). Both are
  ``FailedPrecondition``: retrying the same request will not help.
* 404 and the ``*_UNKNOWN`` codes: ``NotFound``.
* 400 ``DIGEST_INVALID``, ``MANIFEST_INVALID``, ``MANIFEST_BLOB_UNKNOWN``…:
  ``InvalidSpec`` (the content is wrong).
* 429, 5xx, connection errors and timeouts: ``Unavailable`` (retryable; the
  transport has already retried with backoff when one of these surfaces).
* A TLS verification failure: ``Unavailable`` naming the CA directory to use.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from contextlib import contextmanager

import requests

from runtime import errors

_MAX_ERROR_BODY = 64 << 10


class AuthenticationRequired(errors.FailedPrecondition):
    """The registry wants credentials we do not have, or refused the ones we sent."""


class AccessDenied(errors.FailedPrecondition):
    """Authenticated, but not allowed (a pull-only account pushing, a private repo)."""


def _body(response: requests.Response) -> bytes:
    """At most 64 KiB of an error answer's body, read once (streamed or not)."""
    cached = getattr(response, "_pyreconcile_error_body", None)
    if isinstance(cached, bytes):
        return cached
    try:
        body = b"".join(itertools.islice(response.iter_content(8192), _MAX_ERROR_BODY // 8192))
    except (requests.RequestException, OSError, RuntimeError):
        body = b""
    response._pyreconcile_error_body = body  # type: ignore[attr-defined]
    return body


def error_codes(response: requests.Response) -> list[tuple[str, str]]:
    """``(code, message)`` pairs of a distribution-spec error body (may be empty)."""
    try:
        doc = json.loads(_body(response))
    except ValueError:
        return []
    found = []
    if isinstance(doc, dict) and isinstance(doc.get("errors"), list):
        for item in doc["errors"]:
            if isinstance(item, dict):
                found.append((str(item.get("code", "")), str(item.get("message", ""))))
    return found


def describe(response: requests.Response) -> str:
    codes = error_codes(response)
    if codes:
        return "; ".join(f"{c.lower()}: {m}" if m else c.lower() for c, m in codes)
    return f"HTTP {response.status_code} {response.reason or ''}".strip()


def from_response(response: requests.Response, what: str) -> errors.RuntimeError_:
    """The category of an unexpected answer to ``what`` (``pull manifest x``)."""
    status = response.status_code
    detail = describe(response)
    codes = {c for c, _ in error_codes(response)}
    if status == 401:
        return AuthenticationRequired(
            f"{what}: the registry refused the request ({detail}); "
            "log in with `pyreconcile login REGISTRY`"
        )
    if status == 403 or "DENIED" in codes:
        return AccessDenied(f"{what}: access denied ({detail})")
    if status == 404 or any(c.endswith("_UNKNOWN") and c != "MANIFEST_BLOB_UNKNOWN" for c in codes):
        return errors.NotFound(f"{what}: not found ({detail})")
    if status == 429 or status >= 500:
        return errors.Unavailable(f"{what}: the registry is unavailable ({detail}); retry later")
    if status in (400, 405, 409, 411, 413, 415, 416):
        return errors.InvalidSpec(f"{what}: the registry refused it ({detail})")
    return errors.Terminal(f"{what}: unexpected answer ({detail})")


@contextmanager
def mapped(what: str, host: str) -> Iterator[None]:
    """Turn ``requests`` exceptions raised inside into categorised errors."""
    try:
        yield
    except errors.RuntimeError_:
        raise
    except requests.exceptions.SSLError as exc:
        raise errors.Unavailable(
            f"{what}: TLS with {host} failed ({_short(exc)}); if the registry uses its own CA, "
            f"put it in /etc/pyreconcile/certs.d/{host}/ca.crt (or a directory named by "
            "PYRECONCILE_CERTS_D)"
        ) from exc
    except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as exc:
        raise errors.Unavailable(f"{what}: cannot reach {host} ({_short(exc)})") from exc
    except requests.exceptions.TooManyRedirects as exc:
        raise errors.Terminal(f"{what}: too many redirects from {host}") from exc
    except requests.RequestException as exc:
        raise errors.Unavailable(f"{what}: request to {host} failed ({_short(exc)})") from exc


def _short(exc: BaseException) -> str:
    text = str(exc)
    return text if len(text) < 300 else text[:300] + "…"
