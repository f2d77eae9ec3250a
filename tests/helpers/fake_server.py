"""A scriptable HTTP/1.1 server on loopback, for the failures a real emulator cannot time precisely.

Each test hands it a function from the request it received to what it should do: answer (``Reply``), close
the connection without answering (``Drop``, the "lost acknowledgement" and "connection reset" cases), or
stall past the client's read timeout (``Hang``). It records every request, so tests can count what reached the
server, which is the whole point of the exactly-once rules.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit


@dataclass(frozen=True)
class Seen:
    """One request as it arrived."""

    method: str
    path: str
    query: dict[str, str]
    query_pairs: list[tuple[str, str]]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass(frozen=True)
class Reply:
    status: int = 200
    body: Any = None
    raw: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Drop:
    """Close the connection without a response (after the request was fully read)."""


@dataclass(frozen=True)
class Hang:
    seconds: float


Action = Reply | Drop | Hang
Handler = Callable[[Seen], Action]


class FakeServer:
    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.requests: list[Seen] = []
        self._lock = threading.Lock()
        server = self

        class RequestHandler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # One buffered write per response, without Nagle: otherwise each answer waits for a delayed ACK.
            wbufsize = -1
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                parts = urlsplit(self.path)
                pairs = parse_qsl(parts.query, keep_blank_values=True)
                seen = Seen(
                    method=self.command,
                    path=parts.path,
                    query=dict(pairs),
                    query_pairs=pairs,
                    headers={k.lower(): v for k, v in self.headers.items()},
                    body=body,
                )
                with server._lock:
                    server.requests.append(seen)
                action = server.handler(seen)
                if isinstance(action, Hang):
                    time.sleep(action.seconds)
                    action = Drop()
                if isinstance(action, Drop):
                    self.close_connection = True
                    return
                payload = action.raw
                if payload is None:
                    payload = b"" if action.body is None else json.dumps(action.body).encode()
                self.send_response(action.status)
                headers = {"Content-Type": "application/json", **action.headers}
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_DELETE = _serve  # noqa: N815 - http.server's naming

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), RequestHandler)
        self._httpd.daemon_threads = True
        self._httpd.block_on_close = False
        self.port = self._httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.01,), daemon=True)
        self._thread.start()

    def seen(self, method: str | None = None, path_prefix: str = "") -> list[Seen]:
        with self._lock:
            return [
                r for r in self.requests if (method is None or r.method == method) and r.path.startswith(path_prefix)
            ]

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


def script(*actions: Action) -> Handler:
    """Answer the n-th request with the n-th action, and every later one with the last."""
    remaining = list(actions)
    lock = threading.Lock()

    def handler(_: Seen) -> Action:
        with lock:
            return remaining.pop(0) if len(remaining) > 1 else remaining[0]

    return handler
