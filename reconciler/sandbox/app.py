"""The ASGI application: both APIs' routes behind one middleware that plays the network and the gateway.

The middleware is where a request meets the outside world before and after the API handles it: it gives every
answer an ``X-Request-Id``, counts requests per route for ``/_sandbox/stats``, applies the rate limits, and
injects the faults of ``faults.py``; admin routes (``/_sandbox``) pass through untouched and uncounted.
Faults that need the work done first (``STATUS_after``, ``lost_ack``, ``malformed``) run the handler with its
answer captured, then spoil the answer. A lost acknowledgement sends
the status line, the headers (with the full ``Content-Length``) and half the body, then returns without
finishing; uvicorn closes the connection, so the client sees a truncated answer (httpx raises
``RemoteProtocolError``), exactly like a connection reset after the server committed the change.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import time
import uuid
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from . import admin, perftest, toloka
from .faults import Api, Fault
from .responses import (
    CPTS_BAD_REQUEST,
    GATEWAY_THROTTLED,
    dumps,
    gateway_error_body,
    injected_error_body,
    json_response,
    toloka_error,
    toloka_error_body,
)
from .runtime import SandboxRuntime

_INCOMPLETE_ON_PURPOSE = "ASGI callable returned without completing response."


class _HideDeliberateDrops(logging.Filter):
    """uvicorn logs an error for every response left unfinished; for a lost_ack that is the point."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != _INCOMPLETE_ON_PURPOSE


_uvicorn_error_log = logging.getLogger("uvicorn.error")
if not any(isinstance(f, _HideDeliberateDrops) for f in _uvicorn_error_log.filters):
    _uvicorn_error_log.addFilter(_HideDeliberateDrops())


def api_of(path: str) -> Api | None:
    if path.startswith("/api/"):
        return "toloka"
    if path.startswith(("/v1/", "/v3/")):
        return "perftest"
    return None


async def _drain(receive: Receive) -> None:
    """Read an unread request body so the connection can carry the next request."""
    while True:
        message = await receive()
        if message["type"] != "http.request" or not message.get("more_body", False):
            return


async def _send_json(send: Send, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
    payload = dumps(body)
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
    raw += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": payload, "more_body": False})


class _Captured:
    def __init__(self) -> None:
        self.status = 500
        self.headers: list[tuple[bytes, bytes]] = []
        self.chunks: list[bytes] = []

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
            self.headers = list(message.get("headers", []))
        elif message["type"] == "http.response.body":
            self.chunks.append(message.get("body", b""))

    @property
    def body(self) -> bytes:
        return b"".join(self.chunks)

    def headers_with_length(self, length: int) -> list[tuple[bytes, bytes]]:
        kept = [(k, v) for k, v in self.headers if k.lower() != b"content-length"]
        return [*kept, (b"content-length", str(length).encode())]


ADMIN_PREFIX = "/_sandbox"
ADMIN_REFUSED = (
    "the sandbox's admin routes (/_sandbox) answer clients on this machine only; start it with --expose-admin "
    "to let others in"
)


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or ``localhost``) is this machine's loopback."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class SandboxMiddleware:
    def __init__(self, app: Starlette, sandbox: SandboxRuntime) -> None:
        self.app = app
        self.sandbox = sandbox
        self.routes: list[BaseRoute] = list(app.routes)

    def _admin_allowed(self, scope: Scope) -> bool:
        """The admin routes read the sandbox's credentials and rewrite its world: loopback clients only, unless
        the sandbox was started to allow more (``--expose-admin``)."""
        if self.sandbox.admin_anywhere:
            return True
        client = scope.get("client")
        return client is not None and is_loopback(client[0])

    def route_of(self, scope: Scope) -> str:
        """``METHOD /template`` of the route a request is for; ``unmatched`` when none is."""
        partial = None
        for route in self.routes:
            match, _ = route.matches(scope)
            if match is Match.FULL:
                return f"{scope['method']} {getattr(route, 'path', '?')}"
            if match is Match.PARTIAL and partial is None:
                partial = getattr(route, "path", "?")
        return f"{scope['method']} {partial or 'unmatched'}"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        status = 0

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
                message = {**message, "headers": headers}
            await send(message)

        api = api_of(scope["path"])
        if api is None:  # admin and unknown routes: not API traffic, not counted
            if scope["path"].startswith(ADMIN_PREFIX) and not self._admin_allowed(scope):
                await _drain(receive)
                await _send_json(send_with_id, 403, {"error": ADMIN_REFUSED})
                return
            await self.app(scope, receive, send_with_id)
            return
        route = self.route_of(scope)
        try:
            await self._api_call(api, route, request_id, scope, receive, send_with_id)
        finally:
            self.sandbox.stats.count(route, status or "dropped")

    async def _api_call(
        self, api: Api, route: str, request_id: str, scope: Scope, receive: Receive, send: Send
    ) -> None:
        sandbox = self.sandbox
        decision = sandbox.faults.decide(api, scope["method"])
        if decision.latency_s:
            await asyncio.sleep(decision.latency_s)
        if not sandbox.throttle.admit_request(api, route, time.monotonic()):
            sandbox.stats.throttled += 1
            await _drain(receive)
            if api == "toloka":
                refusal = toloka_error_body(request_id, 429, "Too many requests per second")
            else:
                refusal = gateway_error_body(request_id, GATEWAY_THROTTLED, "The throttling threshold has been reached")
            await _send_json(send, 429, refusal)
            return
        fault = decision.fault
        if fault is None:
            await self.app(scope, receive, send)
            return
        sandbox.stats.faults[fault.label] += 1
        if fault.kind == "error":
            await _drain(receive)
            await self._send_injected(send, api, fault.status, request_id)
            return
        captured = _Captured()
        await self.app(scope, receive, captured.send)  # the work is done, whatever the client hears next
        await self._spoil(fault, captured, send, api, request_id)

    async def _spoil(self, fault: Fault, captured: _Captured, send: Send, api: Api, request_id: str) -> None:
        """Answer a request whose work is done according to ``fault``."""
        body = captured.body
        if fault.kind == "error_after":
            await self._send_injected(send, api, fault.status, request_id)
        elif fault.kind == "lost_ack":
            # Full Content-Length, half the body, no end: uvicorn closes the connection when we return.
            await send({"type": "http.response.start", "status": captured.status, "headers": captured.headers})
            await send({"type": "http.response.body", "body": body[: len(body) // 2], "more_body": True})
        elif fault.kind == "malformed" and 200 <= captured.status < 300:
            cut = body[: max(1, len(body) // 2)]
            headers = captured.headers_with_length(len(cut))
            await send({"type": "http.response.start", "status": captured.status, "headers": headers})
            await send({"type": "http.response.body", "body": cut, "more_body": False})
        else:  # nothing to spoil: a malformed fault on an error answer leaves it as it is
            await send({"type": "http.response.start", "status": captured.status, "headers": captured.headers})
            await send({"type": "http.response.body", "body": body, "more_body": False})

    async def _send_injected(self, send: Send, api: Api, status: int, request_id: str) -> None:
        spec = self.sandbox.faults.spec
        headers = {"Retry-After": str(spec.retry_after)} if status == 429 and spec.retry_after is not None else None
        await _send_json(send, status, injected_error_body(api, status, request_id, spec.interval), headers)


async def _not_found(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 404
    message = "No such route" if status == 404 else "Method not allowed on this route"
    api = api_of(request.url.path)
    if api == "toloka":
        return toloka_error(request, status, message)
    if api == "perftest":
        return json_response(
            {"code": CPTS_BAD_REQUEST if status == 405 else "SVCSTG.CPTS.4040001", "message": message}, status
        )
    return json_response({"error": message}, status)


def build_app(sandbox: SandboxRuntime) -> ASGIApp:
    app = Starlette(
        routes=[*perftest.routes, *toloka.routes, *admin.routes],
        exception_handlers={404: _not_found, 405: _not_found},
    )
    app.state.sandbox = sandbox
    return SandboxMiddleware(app, sandbox)
