"""Toloka routes: task suites (sync and async creation, reads, search, changes) and operations with their logs.

A suite is changed by ``PATCH /api/v1/task-suites/{id}`` (``overlap``, ``infinite_overlap``,
``issuing_order_override``; any other field is a 400 ``VALIDATION_ERROR`` keyed by that field) and by ``PATCH
.../set-overlap-or-min`` (``{"overlap": N}``, N >= 0), both with the ``open_pool`` query parameter and both
answering the changed suite, as toloka-kit 1.2.3's ``patch_task_suite`` and ``patch_task_suite_overlap_or_min``
send and read them. How progress bounds a change is ``toloka_suites``'s to say.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .ledger import LogArchived, MissingObject
from .limits import Limits
from .responses import json_response, toloka_error
from .runtime import sandbox_of
from .toloka_suites import SuiteOptions, SuiteQuery, input_values_bytes, toloka_time
from .toloka_world import OperationExists, SuitePatchInvalid, SuitesInvalid, TolokaWorld
from .validation import FieldErrors, check_overlap_patch, check_suite_patch

MAX_SEARCH_LIMIT = 100_000
SORT_KEYS = ("id", "-id", "created", "-created")
_BOOLEAN_PARAMS = ("async_mode", "skip_invalid_items", "allow_defaults", "open_pool")


def _world(request: Request) -> TolokaWorld:
    return sandbox_of(request).world.toloka


class BadQuery(ValueError):
    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(message)


def _check_auth(request: Request) -> Response | None:
    scheme, _, key = request.headers.get("authorization", "").strip().partition(" ")
    if scheme.lower() in ("apikey", "oauth") and key.strip() in sandbox_of(request).world.credentials.toloka_tokens:
        return None
    return toloka_error(request, 401, "Authentication failed: send 'Authorization: ApiKey <key>'")


def _bad_query(request: Request, exc: BadQuery) -> Response:
    payload = {exc.field: {"code": "VALUE_NOT_ALLOWED", "message": str(exc)}}
    return toloka_error(request, 400, "Validation failed", payload=payload)


def _boolean(request: Request, name: str) -> bool:
    value = request.query_params.get(name)
    if value is None or value == "":
        return False
    if value.lower() not in ("true", "false"):
        raise BadQuery(name, f"{name} must be true or false")
    return value.lower() == "true"


def _int(request: Request, name: str) -> int | None:
    value = request.query_params.get(name)
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        raise BadQuery(name, f"{name} must be an integer") from None


def _time(request: Request, name: str) -> str | None:
    """A time bound, normalised to the format suites are stored in so bounds compare as strings."""
    value = request.query_params.get(name)
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise BadQuery(name, f"{name} must be an ISO 8601 date and time") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return toloka_time(moment.timestamp())


def _keyed(errors: dict[int, FieldErrors]) -> dict[str, FieldErrors]:
    return {str(index): problem for index, problem in sorted(errors.items())}


def _creation_params(request: Request) -> tuple[bool, SuiteOptions, str | None]:
    """``async_mode``, the options, and the ``operation_id`` of a create, or ``BadQuery``."""
    async_mode = _boolean(request, "async_mode")
    options = SuiteOptions(
        allow_defaults=_boolean(request, "allow_defaults"),
        open_pool=_boolean(request, "open_pool"),
        skip_invalid_items=_boolean(request, "skip_invalid_items"),
    )
    operation_id = request.query_params.get("operation_id") or None
    if operation_id is not None:
        try:
            uuid.UUID(operation_id)
        except ValueError:
            raise BadQuery("operation_id", "operation_id must be an RFC 4122 UUID") from None
    return async_mode, options, operation_id


def _too_large(request: Request, limits: Limits, items: list[Any], async_mode: bool) -> Response | None:
    if not async_mode and len(items) > limits.max_sync_suites:
        return toloka_error(
            request,
            413,
            f"At most {limits.max_sync_suites} task suites in a synchronous request, got {len(items)}",
        )
    size = input_values_bytes(items)
    if size > limits.max_input_bytes:
        return toloka_error(
            request,
            413,
            f"The input_values of one request add up to {size} bytes, more than {limits.max_input_bytes} "
            "(each task's input_values as compact UTF-8 JSON)",
        )
    return None


async def create_task_suites(request: Request) -> Response:
    if (denied := _check_auth(request)) is not None:
        return denied
    sandbox = sandbox_of(request)
    if not request.headers.get("content-type", "").lower().startswith("application/json"):
        return toloka_error(request, 415, "Content-Type must be application/json")
    try:
        async_mode, options, operation_id = _creation_params(request)
    except BadQuery as exc:
        return _bad_query(request, exc)
    body = await request.body()
    try:
        data = json.loads(body)
    except ValueError:
        return toloka_error(request, 400, "The request body is not valid JSON")
    single = isinstance(data, dict)
    if not single and not isinstance(data, list):
        return toloka_error(request, 400, "The request body must be a task suite or an array of task suites")
    items: list[Any] = [data] if single else data
    if (refused := _too_large(request, sandbox.limits, items, async_mode)) is not None:
        return refused
    world = sandbox.world.toloka
    if async_mode:
        operation_id = operation_id or str(uuid.uuid4())
        if world.has_operation(operation_id):
            return _operation_exists(request, operation_id)
    if not sandbox.throttle.admit_suites(len(items), world.clock()):
        return toloka_error(request, 429, "Too many task suites created this minute", payload={"interval": "MIN"})
    if async_mode:
        assert operation_id is not None
        try:
            operation = world.submit_suites(operation_id, items, options)
        except OperationExists:
            return _operation_exists(request, operation_id)
        return json_response(operation, 202)
    try:
        created, errors = world.create_suites(items, options)
    except SuitesInvalid as exc:
        payload: Any = exc.errors[0] if single else _keyed(exc.errors)
        return toloka_error(request, 400, "Validation failed", payload=payload)
    if not created and errors:
        payload = errors[0] if single else _keyed(errors)
        return toloka_error(request, 400, "Validation failed", payload=payload)
    if single:
        return json_response(created[0], 201)
    return json_response(
        {"items": {str(i): suite for i, suite in created.items()}, "validation_errors": _keyed(errors)}, 201
    )


def _operation_exists(request: Request, operation_id: str) -> Response:
    return toloka_error(
        request, 409, f"Operation with id {operation_id} already exists", code="OPERATION_ALREADY_EXISTS"
    )


def _suite_query(request: Request) -> SuiteQuery:
    params = request.query_params
    limit = _int(request, "limit")
    if limit is None:
        limit = 50
    if not 1 <= limit <= MAX_SEARCH_LIMIT:
        raise BadQuery("limit", f"limit must be between 1 and {MAX_SEARCH_LIMIT}")
    sort = (params.get("sort") or "id").strip()
    if sort not in SORT_KEYS:
        raise BadQuery("sort", f"sort must be one of {', '.join(SORT_KEYS)}")
    return SuiteQuery(
        pool_id=params.get("pool_id"),
        task_id=params.get("task_id"),
        overlap=_int(request, "overlap"),
        id_lt=params.get("id_lt"),
        id_lte=params.get("id_lte"),
        id_gt=params.get("id_gt"),
        id_gte=params.get("id_gte"),
        created_lt=_time(request, "created_lt"),
        created_lte=_time(request, "created_lte"),
        created_gt=_time(request, "created_gt"),
        created_gte=_time(request, "created_gte"),
        overlap_lt=_int(request, "overlap_lt"),
        overlap_lte=_int(request, "overlap_lte"),
        overlap_gt=_int(request, "overlap_gt"),
        overlap_gte=_int(request, "overlap_gte"),
        sort=sort,
        limit=limit,
    )


async def find_task_suites(request: Request) -> Response:
    if (denied := _check_auth(request)) is not None:
        return denied
    try:
        query = _suite_query(request)
    except BadQuery as exc:
        return _bad_query(request, exc)
    items, has_more = _world(request).find_suites(query)
    return json_response({"items": items, "has_more": has_more})


async def get_task_suite(request: Request) -> Response:
    if (denied := _check_auth(request)) is not None:
        return denied
    suite_id = request.path_params["suite_id"]
    try:
        return json_response(_world(request).get_suite(suite_id))
    except MissingObject:
        return toloka_error(request, 404, f"Task suite {suite_id} does not exist")


async def _patch_request(request: Request) -> tuple[Any, bool] | Response:
    """A suite change's parsed body and ``open_pool``, or the answer refusing it."""
    if (denied := _check_auth(request)) is not None:
        return denied
    if not request.headers.get("content-type", "").lower().startswith("application/json"):
        return toloka_error(request, 415, "Content-Type must be application/json")
    try:
        open_pool = _boolean(request, "open_pool")
    except BadQuery as exc:
        return _bad_query(request, exc)
    try:
        return json.loads(await request.body()), open_pool
    except ValueError:
        return toloka_error(request, 400, "The request body is not valid JSON")


async def patch_task_suite(request: Request) -> Response:
    parsed = await _patch_request(request)
    if isinstance(parsed, Response):
        return parsed
    body, open_pool = parsed
    if errors := check_suite_patch(body):
        return toloka_error(request, 400, "Validation failed", payload=errors)
    suite_id = request.path_params["suite_id"]
    try:
        return json_response(_world(request).patch_suite(suite_id, body, open_pool=open_pool))
    except SuitePatchInvalid as exc:
        return toloka_error(request, 400, "Validation failed", payload=exc.errors)
    except MissingObject:
        return toloka_error(request, 404, f"Task suite {suite_id} does not exist")


async def set_overlap_or_min(request: Request) -> Response:
    parsed = await _patch_request(request)
    if isinstance(parsed, Response):
        return parsed
    body, open_pool = parsed
    if errors := check_overlap_patch(body):
        return toloka_error(request, 400, "Validation failed", payload=errors)
    suite_id = request.path_params["suite_id"]
    try:
        return json_response(_world(request).set_overlap_or_min(suite_id, body["overlap"], open_pool=open_pool))
    except MissingObject:
        return toloka_error(request, 404, f"Task suite {suite_id} does not exist")


async def get_operation(request: Request) -> Response:
    if (denied := _check_auth(request)) is not None:
        return denied
    operation_id = request.path_params["operation_id"]
    try:
        return json_response(_world(request).get_operation(operation_id))
    except MissingObject:
        return toloka_error(request, 404, f"Operation {operation_id} does not exist")


async def get_operation_log(request: Request) -> Response:
    if (denied := _check_auth(request)) is not None:
        return denied
    operation_id = request.path_params["operation_id"]
    try:
        return json_response(_world(request).get_operation_log(operation_id))
    except LogArchived:
        message = f"The log of operation {operation_id} is archived: logs are kept for one month"
        return toloka_error(request, 409, message, code="OPERATION_LOGS_ARCHIVED")
    except MissingObject:
        return toloka_error(request, 404, f"Operation {operation_id} does not exist")


routes = [
    Route("/api/v1/task-suites", create_task_suites, methods=["POST"]),
    Route("/api/v1/task-suites", find_task_suites, methods=["GET"]),
    Route("/api/v1/task-suites/{suite_id}", get_task_suite, methods=["GET"]),
    Route("/api/v1/task-suites/{suite_id}", patch_task_suite, methods=["PATCH"]),
    Route("/api/v1/task-suites/{suite_id}/set-overlap-or-min", set_overlap_or_min, methods=["PATCH"]),
    Route("/api/v1/operations/{operation_id}", get_operation, methods=["GET"]),
    Route("/api/v1/operations/{operation_id}/log", get_operation_log, methods=["GET"]),
]
