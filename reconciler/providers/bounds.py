"""Bounds on one exchange with a server: how long it may take in all, and how much of its answer is read.

httpx's timeouts are per socket operation: they catch a server that stalls, never one that trickles (a byte
every few seconds keeps each read well inside them, for ever), and nothing in httpx stops reading a body of
many gigabytes. Hence two bounds, both per attempt of a request:

- a deadline for the whole exchange (connect, send, the status line and headers, the whole body). It is kept
  where every read and write sees the clock, in the network backend under httpcore's connection pool
  (``DeadlineBackend``): each socket operation's timeout is cut to the time left. The deadline belongs to the
  thread that runs the request (``deadline``), as a sync request does all its I/O on its caller's thread, so a
  pooled connection reused by another thread obeys that thread's deadline;
- a cap on the bytes of an answer (``read_body``), counted after decoding, so a compressed bomb is bounded
  too; an answer whose ``Content-Length`` already exceeds the cap is refused unread.

Which of the two an answer ran into is an ``Overrun``, for ``http`` to turn into the right error.
"""

from __future__ import annotations

import contextlib
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import httpcore
import httpx

__all__ = ["Deadline", "DeadlineBackend", "Overrun", "deadline", "install", "read_body", "with_body"]

T = TypeVar("T")
_local = threading.local()
#: Headers that describe the body as it came over the wire, not the decoded bytes ``with_body`` holds.
_WIRE_HEADERS = frozenset({"content-encoding", "content-length", "transfer-encoding"})


@dataclass
class Deadline:
    """The moment an exchange must be over by (``time.monotonic``); ``expired`` once it cut one short."""

    at: float
    expired: bool = False

    def left(self) -> float:
        return self.at - time.monotonic()


class Overrun(Exception):
    """An exchange ran into a bound: ``deadline`` (its time) or ``cap`` (its size).

    ``status`` is the answer's status when one had come; ``sent`` whether the request may have reached the
    server (a deadline that ran out while connecting sent nothing).
    """

    def __init__(
        self, kind: Literal["deadline", "cap"], *, status: int | None = None, sent: bool = True, cap: int = 0
    ) -> None:
        super().__init__(kind)
        self.kind = kind
        self.status = status
        self.sent = sent
        self.cap = cap


@contextlib.contextmanager
def deadline(seconds: float) -> Iterator[Deadline]:
    """The deadline of the exchange run inside, on this thread."""
    current = Deadline(time.monotonic() + seconds)
    previous = getattr(_local, "deadline", None)
    _local.deadline = current
    try:
        yield current
    finally:
        _local.deadline = previous


def _bounded(operation: Callable[[float | None], T], timeout: float | None, error: type[Exception]) -> T:
    """Run a socket operation with its timeout cut to what is left of this thread's deadline."""
    current: Deadline | None = getattr(_local, "deadline", None)
    if current is None:
        return operation(timeout)
    left = current.left()
    if left <= 0:
        current.expired = True
        raise error("the deadline of the request has passed")
    if timeout is not None and timeout < left:
        return operation(timeout)
    try:
        return operation(left)
    except httpcore.TimeoutException:
        current.expired = True
        raise


class DeadlineStream(httpcore.NetworkStream):
    """A connection whose every read and write ends by the deadline of the request using it."""

    def __init__(self, stream: httpcore.NetworkStream) -> None:
        self._stream = stream

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return _bounded(lambda t: self._stream.read(max_bytes, t), timeout, httpcore.ReadTimeout)

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        _bounded(lambda t: self._stream.write(buffer, t), timeout, httpcore.WriteTimeout)

    def close(self) -> None:
        self._stream.close()

    def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.NetworkStream:
        tls = _bounded(
            lambda t: self._stream.start_tls(ssl_context, server_hostname, t), timeout, httpcore.ConnectTimeout
        )
        return DeadlineStream(tls)

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)


class DeadlineBackend(httpcore.NetworkBackend):
    """httpcore's network backend, with connections that keep the deadline of the request using them."""

    def __init__(self, backend: httpcore.NetworkBackend) -> None:
        self._backend = backend

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        stream = _bounded(
            lambda t: self._backend.connect_tcp(host, port, t, local_address, socket_options),
            timeout,
            httpcore.ConnectTimeout,
        )
        return DeadlineStream(stream)

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.NetworkStream:
        stream = _bounded(
            lambda t: self._backend.connect_unix_socket(path, t, socket_options), timeout, httpcore.ConnectTimeout
        )
        return DeadlineStream(stream)

    def sleep(self, seconds: float) -> None:
        self._backend.sleep(seconds)


def install(client: httpx.Client) -> int:
    """Put ``DeadlineBackend`` under every connection pool of ``client`` (the direct one and those of the
    proxies taken from the environment); returns how many pools now keep deadlines.

    httpx builds its pools itself and offers no way to pass a network backend through, so this reaches into
    them; a transport that has no such pool (a test's ``MockTransport``) keeps only the checks ``read_body``
    makes between chunks.
    """
    transports: list[Any] = [getattr(client, "_transport", None), *getattr(client, "_mounts", {}).values()]
    installed = 0
    for transport in transports:
        pool = getattr(transport, "_pool", None)
        backend = getattr(pool, "_network_backend", None)
        if isinstance(backend, httpcore.NetworkBackend):
            if not isinstance(backend, DeadlineBackend):
                pool._network_backend = DeadlineBackend(backend)  # type: ignore[union-attr]
            installed += 1
    return installed


def read_body(response: httpx.Response, *, cap: int, limit: Deadline, truncate: bool) -> bytes:
    """At most ``cap`` bytes of a streamed answer's decoded body.

    Past the cap: the first ``cap`` bytes when ``truncate`` (an error answer, of which only the first words
    are shown), else ``Overrun("cap")``. Past the deadline (seen between chunks too, for transports that do
    not keep it themselves): ``Overrun("deadline")``.
    """
    declared = response.headers.get("Content-Length", "")
    encoded = "Content-Encoding" in response.headers
    if not truncate and not encoded and declared.isascii() and declared.isdigit() and int(declared) > cap:
        raise Overrun("cap", status=response.status_code, cap=cap)
    body = bytearray()
    for chunk in response.iter_bytes():
        body += chunk
        if len(body) > cap:
            if truncate:
                del body[cap:]
                break
            raise Overrun("cap", status=response.status_code, cap=cap)
        if limit.left() <= 0:
            limit.expired = True
            raise Overrun("deadline", status=response.status_code)
    return bytes(body)


def with_body(response: httpx.Response, body: bytes) -> httpx.Response:
    """A closed, fully read copy of a streamed ``response`` holding ``body`` (decoded), for code that reads
    ``.content``, ``.text`` and ``.json()`` as on any answer."""
    headers = [(k, v) for k, v in response.headers.multi_items() if k.lower() not in _WIRE_HEADERS]
    extensions = {k: v for k, v in response.extensions.items() if k in ("reason_phrase", "http_version")}
    return httpx.Response(
        response.status_code, headers=headers, content=body, request=response.request, extensions=extensions
    )
