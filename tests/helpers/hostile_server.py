"""A hostile server: a proxy in front of a healthy one (the sandbox) that misbehaves on the routes it is told to.

Every misbehaviour issue 12 lists, each as a broken proxy, a captive portal or an attacker's server would send
it, on any route the tool calls (``ROUTES``). A misbehaviour that *acts* forwards the request to the healthy
server first and only then spoils the answer, so a create really happened behind an answer the tool cannot
read: that is what "unknown is not no" is about. One that does not act (a redirect, a refusal, a proxy's error
page) never forwards.

    server = HostileServer(sandbox.url)
    server.misbehave(Misbehaviour.HUGE_CHUNKED, "perftest.list")
    ... point the tool at server.url ...
    server.healthy()

Every request is recorded (``requests``, as ``fake_server.Seen``); ``other`` is a second server, on another host
name, that the cross-host redirect points at, recording whatever reaches it (nothing should).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import re
import threading
import time
from enum import StrEnum
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from helpers.fake_server import FakeServer, Reply, Seen

#: Every route the tool calls, by name: (method, path pattern).
ROUTES = {
    "toloka.create": ("POST", re.compile(r"^/api/v1/task-suites$")),
    "toloka.operation": ("GET", re.compile(r"^/api/v1/operations/[^/]+$")),
    "toloka.log": ("GET", re.compile(r"^/api/v1/operations/[^/]+/log$")),
    "toloka.list": ("GET", re.compile(r"^/api/v1/task-suites$")),
    "toloka.suite": ("GET", re.compile(r"^/api/v1/task-suites/[^/]+$")),
    "perftest.create": ("POST", re.compile(r"^/v3/[^/]+/tasks$")),
    "perftest.list": ("GET", re.compile(r"^/v1/[^/]+/all-tasks/[^/]+$")),
    "perftest.task": ("GET", re.compile(r"^/v1/[^/]+/tasks/[^/]+$")),
}
CREATES = frozenset({"toloka.create", "perftest.create"})
#: What a "10 GB" answer declares, and sends at most.
HUGE_BYTES = 10 * 1024**3
#: How long a trickle goes on at most, so that no thread outlives its test by much.
TRICKLE_FOR = 30.0

_REQUEST_HOP = frozenset({"connection", "keep-alive", "te", "trailer", "upgrade", "proxy-connection"})
_ANSWER_HOP = _REQUEST_HOP | {"transfer-encoding", "content-length", "date", "server"}


class Misbehaviour(StrEnum):
    HUGE = "huge"  # 200 declaring a Content-Length of 10 GB, then bytes until the client hangs up
    HUGE_CHUNKED = "huge_chunked"  # 200, chunked, bytes without end (no length to refuse it by)
    TRICKLE = "trickle"  # the real answer, its body one byte every ``interval``
    TRICKLE_HEADERS = "trickle_headers"  # the real answer, from its status line on, one byte every ``interval``
    RUNNING_FOREVER = "running_forever"  # an operation read says RUNNING, whatever the operation's status
    MALFORMED = "malformed"  # 200 application/json, cut off mid-object
    HTML_PAGE = "html_page"  # 200 text/html: a captive portal's sign-in page
    HTML_ERROR = "html_error"  # 502 text/html: a proxy's error page
    WRONG_CONTENT_TYPE = "wrong_content_type"  # 200 application/octet-stream: bytes, escape sequences among them
    REDIRECT = "redirect"  # 302 to another path of this server
    REDIRECT_OTHER_HOST = "redirect_other_host"  # 307 to ``other``, on another host name
    WRONG_SHAPE = "wrong_shape"  # 2xx JSON of no shape the route answers with: the APIs' error shape
    ECHO_401 = "echo_401"  # 401 whose message repeats the credentials the request carried
    ECHO_403 = "echo_403"  # 403, the same


#: The misbehaviours that forward the request (the server acted) before spoiling the answer.
ACTING = frozenset(
    {
        Misbehaviour.HUGE,
        Misbehaviour.HUGE_CHUNKED,
        Misbehaviour.TRICKLE,
        Misbehaviour.TRICKLE_HEADERS,
        Misbehaviour.RUNNING_FOREVER,
        Misbehaviour.MALFORMED,
        Misbehaviour.HTML_PAGE,
        Misbehaviour.WRONG_CONTENT_TYPE,
        Misbehaviour.WRONG_SHAPE,
    }
)
HTML_PAGE = (
    b"<!DOCTYPE html><html><head><title>Sign in to continue</title></head><body><h1>Welcome to the guest "
    b"network</h1><form action='/login'><input name='user'></form></body></html>"
)
HTML_ERROR = (
    b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1></center>"
    b"\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
)
BINARY = b"\x1b[2J\x1b[31mPK\x03\x04\x14\x00\x08\x00\xff\xfe\x00\x9c binary \x07\x1b]0;owned\x07"
MALFORMED = b'{"id": "0001", "status": "SUCC'
WRONG_SHAPE = {"code": "SVCSTG.CPTS.0000000", "message": "success", "request_id": "hostile"}


def route_of(method: str, path: str) -> str | None:
    for name, (route_method, pattern) in ROUTES.items():
        if method == route_method and pattern.match(path):
            return name
    return None


class HostileServer:
    """A proxy on loopback in front of ``upstream``, healthy until told to misbehave."""

    def __init__(self, upstream: str, *, interval: float = 0.3) -> None:
        parts = urlsplit(upstream)
        self._upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.interval = interval
        self.requests: list[Seen] = []
        self.misbehaved: list[tuple[str, Misbehaviour]] = []
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._misbehaviour: Misbehaviour | None = None
        self._routes: frozenset[str] = frozenset()
        self._times: int | None = None
        self.other = FakeServer(lambda _: Reply(200, {"ok": True}))
        self.other_url = f"http://localhost:{self.other.port}"
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler_class(self))
        self._httpd.daemon_threads = True
        self._httpd.block_on_close = False
        self.port = self._httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.01,), daemon=True)
        self._thread.start()

    def misbehave(self, misbehaviour: Misbehaviour, *routes: str, times: int | None = None) -> None:
        """Misbehave on ``routes`` (every route when none is named), for the next ``times`` requests to them
        (None: until told otherwise)."""
        unknown = set(routes) - set(ROUTES)
        if unknown:
            raise ValueError(f"no such route: {sorted(unknown)}")
        with self._lock:
            self._misbehaviour, self._routes, self._times = misbehaviour, frozenset(routes or ROUTES), times

    def healthy(self) -> None:
        with self._lock:
            self._misbehaviour = None

    def reset(self) -> None:
        """Healthy, and nothing recorded: for a server shared by several tests."""
        with self._lock:
            self._misbehaviour = None
            self.requests.clear()
            self.misbehaved.clear()
        with self.other._lock:
            self.other.requests.clear()

    def seen(self, route: str) -> list[Seen]:
        with self._lock:
            return [r for r in self.requests if route_of(r.method, r.path) == route]

    def close(self) -> None:
        self._closing.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self.other.close()

    def __enter__(self) -> HostileServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _take(self, route: str | None) -> Misbehaviour | None:
        """The misbehaviour this request meets, counting it against ``times``."""
        with self._lock:
            chosen = self._misbehaviour
            if chosen is None or route not in self._routes or self._times == 0:
                return None
            if chosen is Misbehaviour.RUNNING_FOREVER and route != "toloka.operation":
                return None
            if self._times is not None:
                self._times -= 1
            self.misbehaved.append((route, chosen))
            return chosen

    def forward(self, method: str, target: str, headers: list[tuple[str, str]], body: bytes) -> Reply:
        """The healthy server's answer to the request, as it came (the Host header kept: it is signed)."""
        connection = http.client.HTTPConnection(*self._upstream, timeout=30)
        try:
            connection.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
            for name, value in headers:
                if name.lower() not in _REQUEST_HOP:
                    connection.putheader(name, value)
            connection.endheaders(body or None)
            answer = connection.getresponse()
            payload = answer.read()
            kept = {k: v for k, v in answer.getheaders() if k.lower() not in _ANSWER_HOP}
            return Reply(answer.status, raw=payload, headers=kept)
        finally:
            connection.close()


def _handler_class(server: HostileServer) -> type[BaseHTTPRequestHandler]:
    class Handler(_Handler):
        hostile = server

    return Handler


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    hostile: HostileServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _serve(self) -> None:
        self.connection.settimeout(10)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        parts = urlsplit(self.path)
        pairs = parse_qsl(parts.query, keep_blank_values=True)
        headers = list(self.headers.items())
        seen = Seen(self.command, parts.path, dict(pairs), pairs, {k.lower(): v for k, v in headers}, body)
        hostile = self.hostile
        with hostile._lock:
            hostile.requests.append(seen)
        route = route_of(self.command, parts.path)
        misbehaviour = hostile._take(route)
        if misbehaviour is None:
            self._reply(hostile.forward(self.command, self.path, headers, body))
            return
        self.close_connection = True
        real = hostile.forward(self.command, self.path, headers, body) if misbehaviour in ACTING else None
        with contextlib.suppress(OSError):  # the client hung up, which is what it should do
            self._misbehave(misbehaviour, seen, real)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve  # noqa: N815 - http.server's naming

    def _reply(self, reply: Reply) -> None:
        payload = reply.raw if reply.raw is not None else json.dumps(reply.body).encode()
        self.send_response(reply.status)
        for name, value in {"Content-Type": "application/json", **reply.headers}.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(payload)

    def _misbehave(self, misbehaviour: Misbehaviour, seen: Seen, real: Reply | None) -> None:
        if misbehaviour in (Misbehaviour.HUGE, Misbehaviour.HUGE_CHUNKED):
            self._huge(chunked=misbehaviour is Misbehaviour.HUGE_CHUNKED)
        elif misbehaviour is Misbehaviour.TRICKLE:
            assert real is not None
            self._trickle(real, headers_too=False)
        elif misbehaviour is Misbehaviour.TRICKLE_HEADERS:
            assert real is not None
            self._trickle(real, headers_too=True)
        elif misbehaviour is Misbehaviour.RUNNING_FOREVER:
            assert real is not None
            self._reply(_running(real))
        elif misbehaviour in (Misbehaviour.ECHO_401, Misbehaviour.ECHO_403):
            self._reply(_echo(401 if misbehaviour is Misbehaviour.ECHO_401 else 403, seen))
        else:
            self._reply(_canned(misbehaviour, seen, self.path, self.hostile.other_url))

    def _huge(self, *, chunked: bool) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Connection", "close")
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Content-Length", str(HUGE_BYTES))
        self.end_headers()
        self._send(b'{"items": [', chunked=chunked)
        block = b"0," * (512 * 1024)
        sent = 11
        while sent + len(block) <= HUGE_BYTES and not self.hostile._closing.is_set():
            self._send(block, chunked=chunked)
            sent += len(block)

    def _send(self, data: bytes, *, chunked: bool) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data) if chunked else data)

    def _trickle(self, real: Reply, *, headers_too: bool) -> None:
        payload = real.raw or b""
        head = [f"HTTP/1.1 {real.status} Trickled".encode()]
        head += [f"{k}: {v}".encode() for k, v in {"Content-Type": "application/json", **real.headers}.items()]
        head += [f"Content-Length: {len(payload)}".encode(), b"Connection: close", b"", b""]
        header_bytes = b"\r\n".join(head)
        if not headers_too:
            self.wfile.write(header_bytes)
            self.wfile.flush()
        stop = time.monotonic() + TRICKLE_FOR
        for byte in (header_bytes if headers_too else b"") + payload:
            if self.hostile._closing.is_set() or time.monotonic() > stop:
                return
            time.sleep(self.hostile.interval)
            self.wfile.write(bytes([byte]))
            self.wfile.flush()


def _running(real: Reply) -> Reply:
    """The operation the healthy server described, still RUNNING (or the answer as it was, if it is none)."""
    try:
        operation = json.loads(real.raw or b"")
    except ValueError:
        return real
    if real.status != 200 or not isinstance(operation, dict):
        return real
    operation.pop("finished", None)
    operation.update(status="RUNNING", progress=0)
    return Reply(200, operation)


def _echo(status: int, seen: Seen) -> Reply:
    """A refusal quoting the credentials received, in the shape of the API that was called."""
    received = seen.headers.get("authorization") or seen.headers.get("x-auth-token") or ""
    if seen.path.startswith("/api/"):
        code = "AUTHENTICATION_ERROR" if status == 401 else "ACCESS_DENIED"
        return Reply(status, {"request_id": "hostile", "code": code, "message": f"not accepted: {received}"})
    code = "APIGW.0301" if status == 401 else "APIGW.0302"
    return Reply(status, {"error_code": code, "error_msg": f"Incorrect IAM authentication: {received}"})


def _canned(misbehaviour: Misbehaviour, seen: Seen, target: str, other_url: str) -> Reply:
    if misbehaviour is Misbehaviour.MALFORMED:
        return Reply(200, raw=MALFORMED)
    if misbehaviour is Misbehaviour.HTML_PAGE:
        return Reply(200, raw=HTML_PAGE, headers={"Content-Type": "text/html; charset=utf-8"})
    if misbehaviour is Misbehaviour.HTML_ERROR:
        return Reply(502, raw=HTML_ERROR, headers={"Content-Type": "text/html"})
    if misbehaviour is Misbehaviour.WRONG_CONTENT_TYPE:
        return Reply(200, raw=BINARY, headers={"Content-Type": "application/octet-stream"})
    if misbehaviour is Misbehaviour.REDIRECT:
        return Reply(302, raw=b"", headers={"Location": f"/moved{target}"})
    if misbehaviour is Misbehaviour.REDIRECT_OTHER_HOST:
        return Reply(307, raw=b"", headers={"Location": f"{other_url}{target}"})
    if misbehaviour is Misbehaviour.WRONG_SHAPE:
        status = {"toloka.create": 202, "perftest.create": 201}.get(route_of(seen.method, seen.path) or "", 200)
        return Reply(status, WRONG_SHAPE)
    raise ValueError(f"not a canned answer: {misbehaviour}")
