"""The answer shapes of both APIs, so the routes and the fault injector speak the real ones' dialects.

- Toloka: ``{"request_id", "code", "message", "payload"?}``;
- CPTS business errors: ``{"code": "SVCSTG.CPTS.xxxxxxx", "message"}``;
- the Huawei Cloud API gateway in front of CPTS: ``{"error_code": "APIGW.xxxx", "error_msg", "request_id"}``.

Every answer carries ``X-Request-Id``; the middleware adds it, the id itself lives in the ASGI scope state so
error bodies can repeat it.
"""

from __future__ import annotations

import json
from http import HTTPStatus
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

CPTS_OK = "SVCSTG.CPTS.0000000"
CPTS_BAD_REQUEST = "SVCSTG.CPTS.4000001"
CPTS_MISSING = "SVCSTG.CPTS.4032002"
CPTS_INTERNAL = "SVCSTG.CPTS.5000001"

GATEWAY_BAD_SIGNATURE = "APIGW.0301"
GATEWAY_FORBIDDEN = "APIGW.0302"
GATEWAY_CLOCK_SKEW = "APIGW.0303"
GATEWAY_THROTTLED = "APIGW.0308"
#: Gateway codes for injected 5xx that a backend would not answer itself.
GATEWAY_5XX = {502: "APIGW.0201", 503: "APIGW.0203", 504: "APIGW.0202"}

#: Toloka codes by status, for injected errors and limits.
TOLOKA_CODES = {
    400: "VALIDATION_ERROR",
    401: "AUTHENTICATION_ERROR",
    403: "ACCESS_DENIED",
    404: "DOES_NOT_EXIST",
    409: "CONFLICT_STATE",
    413: "REQUEST_ENTITY_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
    429: "TOO_MANY_REQUESTS",
    500: "INTERNAL_ERROR",
    503: "REMOTE_SERVICE_UNAVAILABLE",
}


def dumps(data: Any) -> bytes:
    """orjson: an operation log echoes every suite of its batch, and encoding 100,000 of them with the standard
    library took the sandbox longer than creating them (its CPU is the bench's other core). The standard
    library takes what orjson refuses (integers beyond 64 bits)."""
    try:
        return orjson.dumps(data)
    except TypeError:
        return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(dumps(data), status_code=status, headers=headers, media_type="application/json")


def request_id_of(request: Request) -> str:
    return str(request.scope.get("state", {}).get("request_id", ""))


def toloka_code(status: int) -> str:
    return TOLOKA_CODES.get(status) or HTTPStatus(status).phrase.upper().replace(" ", "_").replace("-", "_")


def toloka_error_body(
    request_id: str, status: int, message: str, *, code: str | None = None, payload: Any = None
) -> dict[str, Any]:
    body: dict[str, Any] = {"request_id": request_id, "code": code or toloka_code(status), "message": message}
    if payload is not None:
        body["payload"] = payload
    return body


def toloka_error(
    request: Request,
    status: int,
    message: str,
    *,
    code: str | None = None,
    payload: Any = None,
    headers: dict[str, str] | None = None,
) -> Response:
    body = toloka_error_body(request_id_of(request), status, message, code=code, payload=payload)
    return json_response(body, status, headers)


def gateway_error_body(request_id: str, error_code: str, error_msg: str) -> dict[str, Any]:
    return {"error_code": error_code, "error_msg": error_msg, "request_id": request_id}


def gateway_error(
    request: Request, status: int, error_code: str, error_msg: str, headers: dict[str, str] | None = None
) -> Response:
    return json_response(gateway_error_body(request_id_of(request), error_code, error_msg), status, headers)


def cpts_error(status: int, code: str, message: str) -> Response:
    return json_response({"code": code, "message": message}, status)


def injected_error_body(api: str, status: int, request_id: str, interval: str | None) -> dict[str, Any]:
    """The body of an error the fault injector answers, in the affected API's own shape."""
    phrase = HTTPStatus(status).phrase
    if api == "toloka":
        payload = {"interval": interval} if status == 429 and interval else None
        return toloka_error_body(request_id, status, f"{phrase} (injected by the sandbox)", payload=payload)
    if status == 429:
        return gateway_error_body(request_id, GATEWAY_THROTTLED, "The throttling threshold has been reached")
    if status in GATEWAY_5XX:
        return gateway_error_body(request_id, GATEWAY_5XX[status], f"{phrase} (injected by the sandbox)")
    code = CPTS_INTERNAL if status == 500 else f"SVCSTG.CPTS.{status}0001"
    return {"code": code, "message": f"{phrase} (injected by the sandbox)"}
