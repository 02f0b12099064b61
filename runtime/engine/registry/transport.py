"""HTTP to one registry host: scheme, TLS, authentication, redirects, retries.

* **Scheme.** The first request pings ``/v2/`` over HTTPS. Only a registry
  that may use plain HTTP (``options.may_use_plain_http``) is tried again over
  HTTP when the TLS handshake fails, and only if it really answers plain HTTP:
  a TLS server answers a plain request with ``400`` (Go's "client sent an HTTP
  request to an HTTPS server"), and then the TLS error is reported, never
  hidden by a downgrade.
* **Redirects** are followed here (at most 10), not by ``requests``, so that
  ``Authorization`` is sent only to the registry's own host: a blob ``GET``
  redirected to object storage goes there without it (CVE-2020-15157 shape).
  ``Range`` and other headers are kept.
* **Retries**: connection errors, timeouts, 429 and 5xx are retried up to
  ``options.attempts`` times with exponential backoff and jitter; a
  ``Retry-After`` (seconds or an HTTP date) is honoured when it is not longer
  than ``options.max_retry_after``, else the error is reported at once. Only
  requests whose body can be sent again (bytes, or a callable that reopens
  it) are retried.
* **Authentication**: a 401 hands its challenges to the ``Authorizer`` and the
  request is sent again with what it produced (twice at most).
"""

from __future__ import annotations

import email.utils
import random
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from typing import IO

import requests
import requests.adapters

from runtime import errors
from runtime.engine.registry import auth, failures, options
from runtime.engine.registry.credentials import Credentials

Body = bytes | Callable[[], IO[bytes] | bytes] | None
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
REDIRECTS = frozenset({301, 302, 303, 307, 308})
MAX_REDIRECTS = 10


def retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


class Transport:
    """Requests to one registry host (``127.0.0.1:5000``, ``registry-1.docker.io``)."""

    def __init__(
        self,
        host: str,
        opts: options.RegistryOptions,
        credentials: Callable[[], Credentials | None],
        cache_dir: str | None = None,
    ) -> None:
        self.host = host
        self.options = opts
        self._tls = options.tls_files(host, opts, cache_dir)
        self.session = requests.Session()
        adapter = requests.adapters.HTTPAdapter(
            pool_connections=4, pool_maxsize=max(4, opts.parallel + 2)
        )
        self.session.mount("https://", adapter)
        self.session.mount("http://", adapter)
        self.session.headers["User-Agent"] = opts.user_agent
        self.authorizer = auth.Authorizer(host, credentials, self.session, opts)
        self._base: str | None = None
        self._lock = threading.Lock()

    def close(self) -> None:
        self.session.close()

    # -- the base URL --------------------------------------------------------------

    @property
    def base(self) -> str:
        with self._lock:
            if self._base is None:
                self._base = self._ping()
            return self._base

    def _ping(self) -> str:
        what = f"reach registry {self.host}"
        https = f"https://{self.host}"
        try:
            self._plain_get(f"{https}/v2/")
            return https
        except requests.exceptions.SSLError as tls_error:
            if not options.may_use_plain_http(self.host, self.options):
                with failures.mapped(what, self.host):
                    raise
            with failures.mapped(what, self.host):
                answer = self._plain_get(f"http://{self.host}/v2/")
            if answer.status_code == 400:  # a TLS server answering plain HTTP
                with failures.mapped(what, self.host):
                    raise tls_error from None
            return f"http://{self.host}"
        except requests.RequestException:
            with failures.mapped(what, self.host):
                raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _plain_get(self, url: str) -> requests.Response:
        response = self.session.get(
            url, timeout=self._timeouts(), verify=self._tls.verify, cert=self._tls.cert,
            allow_redirects=False,
        )  # fmt: skip
        response.close()
        return response

    def _timeouts(self) -> tuple[float, float]:
        return (self.options.connect_timeout, self.options.read_timeout)

    def url(self, path_or_url: str) -> str:
        """An absolute URL: a path is joined to the base; a (maybe relative) Location too."""
        return urllib.parse.urljoin(self.base + "/", path_or_url)

    # -- requests ----------------------------------------------------------------

    def request(
        self,
        method: str,
        path_or_url: str,
        *,
        scopes: Iterable[str],
        what: str,
        headers: Mapping[str, str] | None = None,
        body: Body = None,
        stream: bool = False,
        retry: bool = True,
    ) -> requests.Response:
        """Send, authenticating, following redirects and retrying; returns the final
        answer whatever its status (see ``expect``)."""
        wanted = frozenset(scopes)
        url = self.url(path_or_url)
        attempt = 0
        auth_rounds = 0
        while True:
            attempt += 1
            sent = self.authorizer.header(wanted)
            try:
                with failures.mapped(what, self.host):
                    response = self._send(method, url, headers or {}, body, stream, sent)
            except errors.Unavailable:
                if not retry or attempt >= self.options.attempts:
                    raise
                self._backoff(attempt, None, what)
                continue
            if response.status_code == 401 and auth_rounds < 2:
                auth_rounds += 1
                challenges = [response.headers.get("WWW-Authenticate", "")]
                response.close()
                self.authorizer.on_challenge(challenges, wanted, sent)
                attempt -= 1
                continue
            if response.status_code in RETRY_STATUSES and retry and attempt < self.options.attempts:
                wait = retry_after(response.headers.get("Retry-After"))
                response.close()
                self._backoff(attempt, wait, what)
                continue
            return response

    def _backoff(self, attempt: int, wait: float | None, what: str) -> None:
        if wait is not None and wait > self.options.max_retry_after:
            raise errors.Unavailable(
                f"{what}: registry {self.host} asks to retry after {wait:.0f} s; try again later"
            )
        if wait is None:
            wait = self.options.backoff * (2 ** (attempt - 1)) * random.uniform(0.5, 1.5)
        self.options.sleep(wait)

    def _send(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: Body,
        stream: bool,
        authorization: str | None,
    ) -> requests.Response:
        for _ in range(MAX_REDIRECTS + 1):
            same_host = urllib.parse.urlsplit(url).netloc == self.host
            send_headers = dict(headers)
            if authorization and same_host:
                send_headers["Authorization"] = authorization
            data = body() if callable(body) else body
            try:
                response = self.session.request(
                    method, url, headers=send_headers, data=data, stream=stream,
                    timeout=self._timeouts(), allow_redirects=False,
                    verify=self._tls.verify if same_host else True,
                    cert=self._tls.cert if same_host else None,
                )  # fmt: skip
            finally:
                if data is not None and not isinstance(data, bytes):
                    data.close()
            if response.status_code not in REDIRECTS or "Location" not in response.headers:
                return response
            url = urllib.parse.urljoin(url, response.headers["Location"])
            response.close()
            if response.status_code == 303:
                method, body = "GET", None
        raise requests.exceptions.TooManyRedirects(f"more than {MAX_REDIRECTS} redirects")


def expect(response: requests.Response, ok: Iterable[int], what: str) -> requests.Response:
    """``response`` if its status is one of ``ok``; else the categorised error."""
    if response.status_code in set(ok):
        return response
    try:
        raise failures.from_response(response, what)
    finally:
        response.close()
