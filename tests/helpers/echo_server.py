"""A hostile server for ``fake_server.FakeServer``: it answers every request with one error status and quotes
the credentials it received in every place an error answer can carry text.

Real gateways and proxies do this (a 401 "invalid header Authorization: ApiKey ..."). Each answer carries the
received ``Authorization`` (Toloka's ``ApiKey``/``OAuth`` key, PerfTest's signed ``SDK-HMAC-SHA256 Access=...,
Signature=...``) and ``X-Auth-Token``/``X-Sdk-Date``/``X-Project-Id`` in both error shapes' messages (Toloka and
CPTS ``{code, message}``, the API gateway's ``{error_code, error_msg}``), in ``payload``, in the body's
``request_id``, and in the ``X-Request-Id`` and another response header (which httpcore logs at debug level).
A 5xx asks for ``Retry-After: 0`` so that the client's retries (which see the echo again) take no time.

With ``answer_listings``, a PerfTest task listing is answered (no tasks), so that apply goes on to send its
signed creates and meets the echo there; without it, apply stops at the listing.
"""

from __future__ import annotations

from helpers.fake_server import Handler, Reply, Seen

#: The request headers a careless server would quote back.
ECHOED_HEADERS = ("authorization", "x-auth-token", "x-security-token", "x-sdk-date", "x-project-id")


def echoing(status: int, *, answer_listings: bool = False) -> Handler:
    """Answer every request with ``status``, quoting the credentials it carried everywhere an answer can."""

    def handler(seen: Seen) -> Reply:
        if answer_listings and seen.method == "GET" and "/all-tasks/" in seen.path:
            return Reply(200, {"code": "SVCSTG.CPTS.0000000", "message": "success", "tasks": []})
        received = {name: seen.headers[name] for name in ECHOED_HEADERS if name in seen.headers}
        quoted = "; ".join(f"{name}: {value}" for name, value in received.items())
        message = f"{seen.method} {seen.path} refused, you sent {quoted}"
        body = {
            "code": "ECHO",
            "message": message,
            "error_code": "APIGW.0301",
            "error_msg": message,
            "request_id": quoted,
            "payload": {"received": received},
        }
        headers = {"X-Request-Id": quoted, "X-Echo": quoted}
        if status >= 500:
            headers["Retry-After"] = "0"
        return Reply(status, body, headers=headers)

    return handler
