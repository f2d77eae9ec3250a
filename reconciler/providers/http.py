"""The HTTP boundary: the only module that turns httpx exceptions and HTTP statuses into reconciler errors.

reconciler promises each create happens exactly once, and a PerfTest create has no idempotency key, so the
retry policy here is the heart of that promise, not a convenience:

- ``idempotent=True`` (reads, Toloka creates that carry an ``operation_id``, and updates and deletes, which
  carry the whole desired value or find the object gone) may be resent after any transient failure:
  timeouts, dropped connections, 408, 429, 5xx, a 2xx whose body is not JSON.
- ``idempotent=False`` (a PerfTest create, which has no idempotency key) is resent **only** when the request
  certainly never reached the service: the connection could not be made (``ConnectError``, ``ConnectTimeout``,
  ``PoolTimeout``, ``ProxyError``) or the API gateway throttled it (429, answered before the service sees it).
  Every other failure after the request may have left this process raises ``OutcomeUnknownError`` at once, so
  the caller resolves it (list and adopt) instead of risking a duplicate. Hence, for such a request, a
  ``TransientProviderError`` or ``PermanentProviderError`` means it certainly had no effect.

How httpx failures and statuses map::

    ConnectError: connection refused, and this client has
      never reached its host                                -> EndpointError at once (a wrong endpoint, not sent)
    ConnectError: the TLS handshake failed (a certificate
      not trusted, or not TLS at all)                       -> EndpointError at once, whenever it happens
                                                               (TransientProviderError if an earlier attempt
                                                               of the request may have arrived)
    ConnectError, ConnectTimeout, PoolTimeout, ProxyError   -> retry; TransientProviderError when exhausted
    ReadTimeout, WriteTimeout, ReadError, WriteError,
      RemoteProtocolError, DecodingError, ...               -> idempotent: retry; else OutcomeUnknownError
    UnsupportedProtocol, LocalProtocolError, InvalidURL     -> PermanentProviderError (bug or bad endpoint)
    2xx                                                     -> the response (with a JSON body, if asked)
    2xx with a body that is not JSON                        -> idempotent: retry; else OutcomeUnknownError
    2xx larger than the route's cap, or any answer not
      complete by the request's deadline                    -> never retried (it would be the same again):
                                                               a read: TransientProviderError; a change that
                                                               may have arrived: OutcomeUnknownError, even when
                                                               it is safe to resend (the caller resolves it)
    3xx to a change (any method but GET)                    -> OutcomeUnknownError: redirects are not followed
                                                               (credentials go to the endpoint only), and a
                                                               server that redirects a change may have made it
    429 (payload.interval HOUR or DAY)                      -> TransientProviderError: quota exhausted
    429 (otherwise)                                         -> retry after Retry-After / a part of a minute
    408, 5xx                                                -> idempotent: retry; else OutcomeUnknownError
    401, 403                                                -> PermanentProviderError naming what to check
    other statuses (3xx to a read included)                 -> PermanentProviderError with the API's code

Every attempt has a deadline for the whole exchange (``request_timeout``: connect, send, the whole answer),
besides httpx's per-read timeout, and every answer a cap on what is read of it (``max_bytes``, set per route
by the clients; an error answer is read up to ``MAX_ERROR_BODY`` and shown in part): see ``bounds``.
"""

from __future__ import annotations

import email.utils
import functools
import logging
import random
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NoReturn, TypedDict
from urllib.parse import urlsplit

import httpx
import orjson

from reconciler.encoding import dumps
from reconciler.errors import (
    OutcomeUnknownError,
    PermanentProviderError,
    ProviderError,
    TransientProviderError,
)
from reconciler.kinds import DEFAULT_REQUEST_TIMEOUT
from reconciler.providers import bounds
from reconciler.providers.endpoints import endpoint_error, host_port
from reconciler.providers.quoting import (
    ApiError,
    api_error,
    location,
    request_id,
    size,
    trim,
)
from reconciler.providers.ratelimit import RateLimiter, Sleep
from reconciler.providers.settings import override_variable

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = httpx.Timeout(connect=5, read=30, write=30, pool=30)
#: The longest we wait on one ``Retry-After``; a server asking for more gets it spread over further retries.
RETRY_AFTER_CAP = 60.0
#: Toloka's 429 with ``payload.interval == "MIN"`` and no ``Retry-After``: the per-minute quota refills within
#: the minute, so waiting a third of one usually suffices without stalling the run for long.
MINUTE_QUOTA_WAIT = 20.0
#: What is read of an error answer: its code and message come first, and the user sees the start of it.
MAX_ERROR_BODY = 64 * 1024
#: What is read of a 2xx answer to a route that names no cap of its own.
DEFAULT_MAX_BODY = 16 * 1024 * 1024
#: Methods that only read: a 2xx, 3xx or late answer to any other may mean the server acted.
_READS = frozenset({"GET", "HEAD"})


Params = Mapping[str, str | int | float | bool]

# Failures after which the request certainly did not reach the server: the connection was never made.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.ProxyError)
# Failures that are our own fault (or the endpoint's spelling) and that no retry can fix.
_LOCAL = (httpx.UnsupportedProtocol, httpx.LocalProtocolError)


class HttpOptions(TypedDict, total=False):
    """Tuning that callers pass through ``PerfTestClient``/``TolokaClient``/``build_clients`` unchanged."""

    timeout: httpx.Timeout
    max_retries: int
    backoff_base: float
    backoff_max: float
    sleep: Sleep
    max_connections: int
    transport: httpx.BaseTransport
    rng: random.Random


def json_body(response: httpx.Response, *, idempotent: bool, provider: str = "") -> Any:
    """Parse a 2xx body; a body that is not JSON means we cannot tell what happened.

    For a request that is safe to resend that is merely transient; for one that is not, the server did act
    (it answered 2xx) but we cannot read the result, so the outcome is unknown.
    """
    try:
        return orjson.loads(response.content)
    except ValueError:
        request = response.request
        what = f"{request.method} {request.url.path}"
        detail = f"{what} answered {response.status_code} with a body that is not JSON: {trim(response.text)!r}"
        if idempotent:
            raise TransientProviderError(detail, provider=provider, status=response.status_code) from None
        raise OutcomeUnknownError(
            f"{detail}; the request may have taken effect, resolve it before resending",
            provider=provider,
            status=response.status_code,
        ) from None


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """``Retry-After`` as seconds from now: either delta-seconds or an HTTP date."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    if seconds != seconds:  # NaN
        return None
    return max(0.0, seconds)


@dataclass(frozen=True)
class _Retry:
    """A failure worth another attempt, and how long the server asked us to wait (if it did)."""

    reason: str
    status: int | None = None
    code: str | None = None
    wait: float | None = None


class HttpClient:
    """A thread-safe JSON-over-HTTP client with the retry, rate-limit and error policy described above.

    Longer than this project's classes usually are, on purpose: the policy (which failure is retried, which
    means "unknown", which "refused") is one decision per response, and split across classes a reader would
    have to follow it through all of them; the mechanics live in ``bounds``, ``quoting`` and ``ratelimit``.
    """

    def __init__(
        self,
        base_url: str,
        *,
        provider: str,
        auth: httpx.Auth | None,
        rate_limit: float,
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
        request_timeout: float | None = None,
        max_retries: int = 6,
        backoff_base: float = 0.2,
        backoff_max: float = 30,
        sleep: Sleep = time.sleep,
        max_connections: int = 32,
        transport: httpx.BaseTransport | None = None,
        rng: random.Random | None = None,
        auth_hint: str = "the provider's credentials",
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._base_path = urlsplit(self.base_url).path  # so messages show the full path, /api/v1/... included
        self._host = host_port(self.base_url)  # what a failure to connect names: the path is no use there
        self.provider = provider
        self._auth = auth
        self._timeout = timeout
        # Each attempt's deadline, for the whole exchange; None: the default. Not in ``HttpOptions``, as the
        # provider document sets it (``request_timeout``) and the clients pass it on.
        self._request_timeout = DEFAULT_REQUEST_TIMEOUT if request_timeout is None else request_timeout
        self._max_retries = max_retries
        self._backoff_base = backoff_base
        self._backoff_max = backoff_max
        self._sleep = sleep
        self._limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
        self._transport = transport
        self._rng = rng or random.Random()
        self._auth_hint = auth_hint
        self._limiter = RateLimiter(rate_limit)
        self._lock = threading.Lock()
        #: Called before every attempt of every request, after the rate limiter's wait: the state lock's lease
        #: check during apply (``reconciler.state.lock``), as close to the socket as the client can put it.
        self.send_guard: Callable[[], None] | None = None
        self._client: httpx.Client | None = None
        self._closed = False
        # Set once a connection to the host was made. Until then, a refused connection is a wrong endpoint
        # (fail at once); after, it is the host restarting (retry). Only ever goes False -> True.
        self._reached = False

    # --- lifecycle -----------------------------------------------------------------------------------------

    def _http(self) -> httpx.Client:
        """The httpx client, made on first use so that building clients for a plan costs nothing."""
        client = self._client
        if client is not None:
            return client
        with self._lock:
            if self._closed:
                raise RuntimeError(f"the {self.provider} HTTP client is closed")
            if self._client is None:
                self._client = httpx.Client(
                    base_url=self.base_url,
                    auth=self._auth,
                    timeout=self._timeout,
                    limits=self._limits,
                    transport=self._transport,
                    follow_redirects=False,
                    verify=_ssl_context(),
                    headers={"Accept": "application/json"},
                )
                bounds.install(self._client)
            return self._client

    def close(self) -> None:
        with self._lock:
            self._closed = True
            client, self._client = self._client, None
        if client is not None:
            client.close()

    def __enter__(self) -> HttpClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- requests ------------------------------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Params | None = None,
        json: Any = None,
        idempotent: bool,
        max_bytes: int = DEFAULT_MAX_BODY,
    ) -> httpx.Response:
        """Send with retries; returns only a 2xx response, raises a ``ProviderError`` for everything else.

        ``max_bytes``: the most read of a 2xx answer; more is an error (see the module's table)."""
        response, _ = self._send(
            method, path, params=params, body=json, idempotent=idempotent, want_json=False, max_bytes=max_bytes
        )
        return response

    def request_json(
        self,
        method: str,
        path: str,
        *,
        params: Params | None = None,
        json: Any = None,
        idempotent: bool,
        max_bytes: int = DEFAULT_MAX_BODY,
    ) -> Any:
        """Like ``request``, and the 2xx body parsed; a malformed body is retried only when safe."""
        _, body = self._send(
            method, path, params=params, body=json, idempotent=idempotent, want_json=True, max_bytes=max_bytes
        )
        return body

    def _send(
        self,
        method: str,
        path: str,
        *,
        params: Params | None,
        body: Any,
        idempotent: bool,
        want_json: bool,
        max_bytes: int,
    ) -> tuple[httpx.Response, Any]:
        what = f"{method} {self._base_path}{path}"
        changes = method.upper() not in _READS
        content = None if body is None else dumps(body)
        headers = {"Content-Type": "application/json"} if content is not None else None
        query = {k: _query_value(v) for k, v in (params or {}).items()}
        attempt = 0
        maybe_sent = False  # whether an earlier attempt of this very request may have reached the service
        while True:
            self._limiter.acquire()
            if self.send_guard is not None:
                self.send_guard()
            try:
                response = self._exchange(method, path, query, content, headers, max_bytes)
            except bounds.Overrun as over:
                self._reached = self._reached or over.sent
                raise self._overrun(over, what, changes=changes, maybe_sent=maybe_sent) from None
            except (httpx.HTTPError, httpx.InvalidURL) as exc:
                retry = self._transport_failure(exc, what, idempotent, maybe_sent)
                maybe_sent = maybe_sent or not isinstance(exc, _NOT_SENT)
            else:
                self._reached = maybe_sent = True
                if 200 <= response.status_code < 300:
                    if not want_json:
                        return response, None
                    try:
                        return response, json_body(response, idempotent=idempotent, provider=self.provider)
                    except TransientProviderError as exc:
                        retry = _Retry(exc.message, status=response.status_code)
                else:
                    retry = self._status_failure(response, what, idempotent, changes=changes)
            if attempt >= self._max_retries:
                raise TransientProviderError(
                    f"{what} still failing after {attempt + 1} attempts: {retry.reason}; try again later",
                    provider=self.provider,
                    status=retry.status,
                    code=retry.code,
                    retry_after=retry.wait,
                )
            delay = self._delay(attempt, retry.wait)
            log.info("%s: %s failed (%s); retry %d in %.2fs", self.provider, what, retry.reason, attempt + 1, delay)
            self._sleep(delay)
            attempt += 1

    def _exchange(
        self,
        method: str,
        path: str,
        query: dict[str, str],
        content: bytes | None,
        headers: dict[str, str] | None,
        max_bytes: int,
    ) -> httpx.Response:
        """One attempt, within its deadline: the answer read whole (an error answer in part), or ``Overrun``."""
        http = self._http()
        with bounds.deadline(self._request_timeout) as limit:
            request = http.build_request(method, path, params=query, content=content, headers=headers)
            try:
                response = http.send(request, stream=True)
            except httpx.HTTPError as exc:
                if limit.expired or limit.left() <= 0:
                    raise bounds.Overrun("deadline", sent=not isinstance(exc, _NOT_SENT)) from exc
                raise
            try:
                success = response.is_success
                cap = max_bytes if success else MAX_ERROR_BODY
                body = bounds.read_body(response, cap=cap, limit=limit, truncate=not success)
            except httpx.HTTPError as exc:
                if limit.expired or limit.left() <= 0:
                    raise bounds.Overrun("deadline", status=response.status_code) from exc
                raise
            finally:
                response.close()
        return bounds.with_body(response, body)

    def _overrun(self, over: bounds.Overrun, what: str, *, changes: bool, maybe_sent: bool) -> ProviderError:
        """The error for an answer that ran into a bound: never retried, as the next would too."""
        if over.kind == "cap":
            detail = (
                f"{what} answered {over.status} with more than {size(over.cap)}; reading stopped there: no real "
                "answer is that large, so the server (or a proxy in between) misbehaves"
            )
        else:
            variable = override_variable(self.provider, "request_timeout") if self.provider else "request_timeout"
            detail = (
                f"{what} did not complete within {self._request_timeout:g}s, the deadline of one request "
                "(connect, send and the whole answer): the server answers too slowly or trickles; if it is merely "
                f"slow, raise the provider's request_timeout (or {variable})"
            )
        if changes and (over.sent or maybe_sent):
            return OutcomeUnknownError(
                f"{detail}; the request may have taken effect, resolve it before resending",
                provider=self.provider,
                status=over.status,
            )
        tail = "nothing was sent" if changes else "nothing is concluded from it; try again later"
        return TransientProviderError(f"{detail}; {tail}", provider=self.provider, status=over.status)

    def _delay(self, attempt: int, asked: float | None) -> float:
        """Full jitter (AWS's "exponential backoff and jitter"), or what the server asked plus a little jitter
        so that threads throttled together do not come back together."""
        if asked is not None:
            return min(asked, RETRY_AFTER_CAP) + self._rng.uniform(0, self._backoff_base)
        ceiling = min(self._backoff_max, self._backoff_base * (2**attempt))
        return self._rng.uniform(0, ceiling)

    # --- classification ------------------------------------------------------------------------------------

    def _transport_failure(self, exc: Exception, what: str, idempotent: bool, maybe_sent: bool) -> _Retry:
        name = type(exc).__name__
        if isinstance(exc, httpx.ConnectError):
            wrong = endpoint_error(exc, host=self._host, reached=self._reached, maybe_sent=maybe_sent)
            if wrong is not None:
                raise wrong(provider=self.provider) from exc
        if isinstance(exc, _NOT_SENT):
            return _Retry(f"could not connect to {self._host} ({name}: {trim(str(exc)) or 'no details'})")
        if isinstance(exc, (*_LOCAL, httpx.InvalidURL)):
            raise PermanentProviderError(
                f"{what} could not be sent ({name}: {trim(str(exc))}); check the provider's endpoint",
                provider=self.provider,
            ) from exc
        self._reached = True  # a read or write failed, so a connection was made
        reason = f"{name}: {trim(str(exc)) or 'no details'}"
        if not idempotent:
            raise OutcomeUnknownError(
                f"{what} may or may not have taken effect: the request was sent but no answer came back "
                f"({reason}); resolve it before resending",
                provider=self.provider,
            ) from exc
        return _Retry(reason)

    def _status_failure(self, response: httpx.Response, what: str, idempotent: bool, *, changes: bool) -> _Retry:
        status = response.status_code
        err = api_error(response)
        asked = parse_retry_after(response.headers.get("Retry-After"))
        if 300 <= status < 400 and changes:
            raise OutcomeUnknownError(
                f"{what} was answered with a redirect ({status}{location(response)}), which reconciler does not "
                "follow (credentials go to the configured endpoint only); a server that redirects a change may "
                "have made it, so resolve it before resending, and check the provider's endpoint",
                provider=self.provider,
                status=status,
                code=err.code,
            )
        if status == 429:
            interval = err.payload.get("interval") if isinstance(err.payload, dict) else None
            if interval in ("HOUR", "DAY"):
                raise TransientProviderError(
                    f"{what}: the {str(interval).lower()}ly request quota is exhausted ({err.message}); "
                    f"retry later, after the quota resets",
                    provider=self.provider,
                    status=status,
                    code=err.code,
                    retry_after=asked,
                )
            if asked is None and interval == "MIN":
                asked = MINUTE_QUOTA_WAIT
            return _Retry(f"throttled: {err.message}", status=status, code=err.code, wait=asked)
        if status == 408 or status >= 500:
            if not idempotent:
                raise OutcomeUnknownError(
                    f"{what} may or may not have taken effect: the server answered {status} ({err.message})"
                    f"{request_id(err)}; resolve it before resending",
                    provider=self.provider,
                    status=status,
                    code=err.code,
                )
            return _Retry(f"server answered {status}: {err.message}", status=status, code=err.code, wait=asked)
        self._refuse(what, status, err, location(response))

    def _refuse(self, what: str, status: int, err: ApiError, location: str = "") -> NoReturn:
        if status == 401:
            detail = f"authentication failed: {err.message}; check {self._auth_hint}"
        elif status == 403:
            detail = f"access denied: {err.message}; check {self._auth_hint} and the permissions they grant"
        elif 300 <= status < 400:
            detail = (
                f"unexpected redirect{location} ({err.message}), not followed: credentials go to the configured "
                "endpoint only; check the provider's endpoint"
            )
        else:
            detail = f"refused: {err.message}"
            if err.payload:
                detail += f" {trim(dumps(err.payload).decode('utf-8'))}"
        raise PermanentProviderError(
            f"{what} {detail}{request_id(err)}", provider=self.provider, status=status, code=err.code
        )


@functools.cache
def _ssl_context() -> ssl.SSLContext:
    """httpx's default context, built once: loading the CA bundle costs ~50 ms per client otherwise."""
    return httpx.create_ssl_context()


def _query_value(value: str | int | float | bool) -> str:
    """Both APIs spell booleans ``true``/``false``; Python would say ``True``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
