"""Connection failures that say the endpoint is wrong, not busy: which they are, and what to tell the user.

A TLS handshake that fails on the certificate or the protocol fails the same way every time. A refused
connection before a client ever reached its host is nothing listening there: retrying it only makes the user
wait (seconds, with backoff) for the same answer. Neither attempt sent anything; but when an earlier attempt of
the same request may have arrived (an idempotent one, retried after a timeout), the request as a whole was not
"not sent", so a TLS failure then is a ``TransientProviderError``: the caller resolves it rather than taking it
for certain that nothing happened. (A refusal cannot meet that case: an attempt that may have arrived
connected, so the host was reached.)
"""

from __future__ import annotations

import functools
import re
import ssl
from collections.abc import Callable
from urllib.parse import urlsplit

from reconciler.errors import EndpointError, ProviderError, TransientProviderError

__all__ = ["endpoint_error", "host_port"]

#: TLS failures in the handshake that are a peer closing on us, which a retry may well get past.
_TLS_CLOSED = (ssl.SSLEOFError, ssl.SSLZeroReturnError)
_MAX_REASON = 300


def host_port(url: str) -> str:
    """``host:port`` of a URL, the port spelled out even when the scheme implies it."""
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:  # not a number: show it as written, the connection will say what is wrong
        return parts.netloc
    host = parts.hostname or parts.netloc
    if ":" in host:  # IPv6
        host = f"[{host}]"
    if port is None:
        port = 443 if parts.scheme == "https" else 80
    return f"{host}:{port}"


def endpoint_error(
    exc: BaseException, *, host: str, reached: bool, maybe_sent: bool
) -> Callable[..., ProviderError] | None:
    """The error to raise (call it with ``provider=``) when a failure to connect to ``host`` says the endpoint is
    wrong; None when it may be passing and is worth retrying. ``reached``: this client has had an answer from
    ``host`` before; ``maybe_sent``: an earlier attempt of this request may have arrived."""
    cause = _cause(exc, (ssl.SSLError, ConnectionRefusedError))
    error = TransientProviderError if maybe_sent else EndpointError
    not_sent = "an earlier attempt may have arrived; no retry" if maybe_sent else "nothing was sent, no retry"
    if isinstance(cause, ssl.SSLCertVerificationError):
        detail = getattr(cause, "verify_message", None) or _ssl_reason(cause)
        code = getattr(cause, "reason", None) or "CERTIFICATE_VERIFY_FAILED"
        return functools.partial(
            error,
            f"the TLS certificate of {host} is not trusted: {detail} ({code}); check the provider's endpoint, "
            f"or name the CA bundle in SSL_CERT_FILE ({not_sent})",
        )
    if isinstance(cause, ssl.SSLError) and not isinstance(cause, _TLS_CLOSED):
        return functools.partial(
            error,
            f"the TLS handshake with {host} failed: {_ssl_reason(cause)}; check the provider's endpoint "
            f"(https:// on a plain-HTTP port?) ({not_sent})",
        )
    if isinstance(cause, ConnectionRefusedError) and not reached:
        return functools.partial(
            EndpointError,
            f"could not connect to {host}: connection refused, nothing listens there; check the provider's "
            "endpoint (nothing was sent, no retry)",
        )
    return None


def _cause(exc: BaseException, kinds: tuple[type[BaseException], ...]) -> BaseException | None:
    """The first exception of ``kinds`` among ``exc`` and what caused it (httpx wraps httpcore wraps OSError)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, kinds):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def _ssl_reason(err: ssl.SSLError) -> str:
    """``wrong version number (WRONG_VERSION_NUMBER)`` from ``[SSL: WRONG_VERSION_NUMBER] wrong version number
    (_ssl.c:1006)``: OpenSSL's words and code, without the file and line of the C module."""
    text = err.strerror if isinstance(err.strerror, str) else str(err)
    text = re.sub(r"^\[[A-Z0-9_ ]+: [A-Z0-9_]+\]\s*|\s*\(_ssl\.c:\d+\)$", "", text).strip()
    reason = getattr(err, "reason", None)
    if reason and text and reason not in text:
        text = f"{text} ({reason})"
    text = " ".join((text or str(reason or "") or type(err).__name__).split())
    return text if len(text) <= _MAX_REASON else text[: _MAX_REASON - 3] + "..."
