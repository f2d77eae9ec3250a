"""Server-supplied text in reconciler's messages: what an error answer says, and how any answer is quoted.

An error message may quote what a server sent (its error code and message, the first words of an odd answer, a
redirect's target). Every such quote is made here, on one line, cut short, with control characters escaped so
that a hostile answer cannot drive the user's terminal: ``api_error`` (the three error shapes), ``excerpt``
(any answer), ``location`` (a redirect's origin) and ``request_id``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

from reconciler.redaction import redact

#: Error bodies can be whole HTML pages; the user needs the first line, not the page.
MAX_ERROR_TEXT = 300


@dataclass(frozen=True)
class ApiError:
    """What an error response said, whichever of the three error shapes it used."""

    code: str | None
    message: str
    payload: Any
    request_id: str | None


def api_error(response: httpx.Response) -> ApiError:
    """Read ``{code, message, payload}`` (CPTS, Toloka) or ``{error_code, error_msg}`` (the API gateway)."""
    request_id = response.headers.get("X-Request-Id")
    try:
        body = json.loads(response.content) if response.content else None
    except ValueError:
        body = None
    if not isinstance(body, dict):
        text = response.text.strip() if response.content else ""
        return ApiError(None, trim(text) or response.reason_phrase or "no details", None, request_id)
    code = body.get("code") or body.get("error_code")
    message = body.get("message") or body.get("error_msg") or ""
    request_id = request_id or body.get("request_id")
    return ApiError(
        str(code) if code is not None else None,
        trim(str(message)) or response.reason_phrase or "no details",
        body.get("payload"),
        str(request_id) if request_id is not None else None,
    )


def request_id(err: ApiError) -> str:
    """`` [request id ID]`` when the answer named one: what the API's support asks for."""
    return f" [request id {err.request_id}]" if err.request_id else ""


def excerpt(value: Any, limit: int = 200) -> str:
    """A server's answer as a message may quote it: on one line, cut short, with control characters escaped.

    Every piece of server-supplied text that reaches an error message goes through here or ``trim``."""
    return trim(value if isinstance(value, str) else str(value), limit)


def trim(text: str, limit: int = MAX_ERROR_TEXT) -> str:
    """On one line, credentials masked before the cut (so it never splits one), cut to ``limit``, control
    characters (a terminal's escape sequences) shown escaped."""
    text = redact(" ".join(text.split()))
    if not text.isprintable():  # stricter than the output step: unassigned code points are shown escaped too
        text = "".join(c if c.isprintable() else _escaped(c) for c in text)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _escaped(char: str) -> str:
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def location(response: httpx.Response) -> str:
    """`` to ORIGIN`` of a redirect's ``Location`` (scheme, host and port only), or nothing."""
    target = response.headers.get("Location")
    if not target:
        return ""
    try:
        parts = urlsplit(str(response.request.url.join(target)))
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return ""
    if not parts.hostname:
        return ""
    return f" to {trim(f'{parts.scheme}://{parts.hostname}{port}', 100)}"


def size(count: int) -> str:
    """``64 MiB``, ``512 KiB``, ``300 bytes``."""
    for unit, bytes_per_unit in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if count >= bytes_per_unit:
            return f"{count / bytes_per_unit:g} {unit}"
    return f"{count} bytes"
