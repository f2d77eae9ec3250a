"""CodeArts PerfTest (CPTS) routes: tasks and test projects, behind an emulated API gateway.

Tasks are created, changed (full body) and deleted through the v3 routes and read through the v1 ones, as
``huaweicloudsdkcpts`` 3.1.219 calls them (``CreateNewTask``, ``UpdateTaskRelatedTestCase``, ``DeleteNewTask``,
``ShowTask``, ``ShowTaskSet``). A change answers 200 ``{code, message, taskInfo}`` with the task as ``ShowTask``
shows it (the SDK's ``UpdateTaskRelatedTestCaseResponse``); a delete answers 200 ``{code, message}`` (the SDK's
``DeleteNewTaskResponse`` models no field, so it reads any body). A task that does not exist, or no longer does,
is 403 ``SVCSTG.CPTS.4032002`` on every route, as CPTS answers for a deleted object.

The gateway part checks what Huawei Cloud's gateway checks before CPTS sees a request: an IAM token or an
SDK-HMAC-SHA256 signature (``reconciler.providers.signing``, the same code the client signs with, itself
checked against the official SDK), a clock within 15 minutes, and the cloud project in the path.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from reconciler.providers import signing

from .ledger import MissingObject
from .perftest_world import PerfTestWorld
from .responses import (
    CPTS_BAD_REQUEST,
    CPTS_MISSING,
    CPTS_OK,
    GATEWAY_BAD_SIGNATURE,
    GATEWAY_CLOCK_SKEW,
    GATEWAY_FORBIDDEN,
    cpts_error,
    gateway_error,
    json_response,
)
from .runtime import sandbox_of
from .validation import InvalidTaskBody, check_task_body

MAX_CLOCK_SKEW_S = 15 * 60
DEFAULT_PAGE = 10
MAX_PAGE = 100


def _world(request: Request) -> PerfTestWorld:
    return sandbox_of(request).world.perftest


def _check_auth(request: Request, body: bytes) -> Response | None:
    """None when the request may pass the gateway, else the gateway's 401/403 answer."""
    credentials = sandbox_of(request).world.credentials
    headers = request.headers
    token = headers.get("x-auth-token")
    if token is not None:
        if token not in credentials.iam_tokens:
            return gateway_error(
                request, 401, GATEWAY_BAD_SIGNATURE, "Incorrect IAM authentication information: token invalid"
            )
    else:
        authorization = headers.get("authorization")
        if not authorization:
            return gateway_error(
                request,
                401,
                GATEWAY_BAD_SIGNATURE,
                "Incorrect IAM authentication information: no authorization",
            )
        try:
            access_key, _, _ = signing.parse_authorization(authorization)
        except ValueError as exc:
            return gateway_error(
                request, 401, GATEWAY_BAD_SIGNATURE, f"Incorrect IAM authentication information: {exc}"
            )
        if access_key != credentials.access_key:
            return gateway_error(
                request,
                401,
                GATEWAY_BAD_SIGNATURE,
                f"Incorrect IAM authentication information: ak {access_key} not exist",
            )
        problem = _clock_problem(headers.get("x-sdk-date", ""))
        if problem is not None:
            return gateway_error(
                request, 401, GATEWAY_CLOCK_SKEW, f"Incorrect app authentication information: {problem}"
            )
        valid = signing.verify(
            method=request.method,
            path=request.scope["path"],
            query=request.query_params.multi_items(),
            headers=headers,
            body=body,
            secret_key=credentials.secret_key,
        )
        if not valid:
            return gateway_error(
                request,
                401,
                GATEWAY_BAD_SIGNATURE,
                "Incorrect IAM authentication information: verify aksk signature fail",
            )
    if request.path_params["project_id"] != credentials.cloud_project_id:
        return gateway_error(
            request, 403, GATEWAY_FORBIDDEN, "The project id in the URL is not the one of these credentials"
        )
    return None


def _parse_sdk_date(value: str) -> float | None:
    """``%Y%m%dT%H%M%SZ`` as a timestamp; by hand because ``strptime`` costs more than the signature check."""
    if len(value) != 16 or value[8] != "T" or value[15] != "Z" or not (value[:8] + value[9:15]).isdigit():
        return None
    try:
        moment = datetime(
            int(value[0:4]),
            int(value[4:6]),
            int(value[6:8]),
            int(value[9:11]),
            int(value[11:13]),
            int(value[13:15]),
            tzinfo=UTC,
        )
        return moment.timestamp()
    except ValueError:
        return None


def _clock_problem(sdk_date: str) -> str | None:
    signed_at = _parse_sdk_date(sdk_date)
    if signed_at is None:
        return "X-Sdk-Date is missing or not in %Y%m%dT%H%M%SZ"
    if abs(time.time() - signed_at) > MAX_CLOCK_SKEW_S:
        return "the request's X-Sdk-Date is more than 15 minutes from the server time"
    return None


def _int_param(value: str | None, default: int | None = None) -> int | None:
    if value is None or value == "":
        return default
    if not value.lstrip("-").isdigit():
        raise ValueError(value)
    return int(value)


def _task_info(task: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": task["name"],
        "project_id": task["project_id"],
        "parallel": task["parallel"],
        "operate_mode": task["operate_mode"],
        "case_list": [
            {"case_id": case_id, "name": f"case-{case_id}", "case_type": 0, "status": 0, "sort": index}
            for index, case_id in enumerate(task["case_id_list"])
        ],
        "bench_concurrent": task["bench_concurrent"],
        "description": task["description"],
        "run_status": task["run_status"],
        "create_time": task["create_time"],
        "update_time": task["update_time"],
        "related_temp_running_data": [],
    }


def _task_row(task: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": task["id"],
        "name": task["name"],
        "parallel": task["parallel"],
        "operate_mode": task["operate_mode"],
        "bench_concurrent": task["bench_concurrent"],
        "description": task["description"],
        "update_time": task["update_time"],
        "task_run_info": None,
    }


def _missing(what: str) -> Response:
    return cpts_error(403, CPTS_MISSING, f"The {what} does not exist or has been deleted")


def _task_body(body: bytes) -> tuple[dict[str, Any], bool] | Response:
    """A create's or change's checked fields and whether it named ``enable_full_link``, or the 400 answer."""
    try:
        data = json.loads(body or b"null")
        fields = check_task_body(data)
    except (ValueError, InvalidTaskBody) as exc:
        message = str(exc) if isinstance(exc, InvalidTaskBody) else "the request body is not valid JSON"
        return cpts_error(400, CPTS_BAD_REQUEST, message)
    return fields, data.get("enable_full_link") is not None


async def create_task(request: Request) -> Response:
    body = await request.body()
    if (denied := _check_auth(request, body)) is not None:
        return denied
    checked = _task_body(body)
    if isinstance(checked, Response):
        return checked
    fields, _ = checked
    try:
        task = _world(request).create_task(fields)
    except MissingObject:
        return _missing(f"test project {fields['project_id']}")
    return json_response({"code": CPTS_OK, "message": "success", "task_id": task["id"]}, 201)


def _refuse_task_id(raw: str) -> Response | None:
    """The answer to a task path whose id is no integer; None for a good one."""
    return None if raw.isdigit() else cpts_error(400, CPTS_BAD_REQUEST, "task_id must be an integer")


async def show_task(request: Request) -> Response:
    if (denied := _check_auth(request, await request.body())) is not None:
        return denied
    raw = request.path_params["task_id"]
    if (refused := _refuse_task_id(raw)) is not None:
        return refused
    try:
        task = _world(request).get_task(int(raw))
    except MissingObject:
        return _missing(f"task {raw}")
    return json_response({"code": CPTS_OK, "message": "success", "taskInfo": _task_info(task)})


async def update_task(request: Request) -> Response:
    body = await request.body()
    if (denied := _check_auth(request, body)) is not None:
        return denied
    raw = request.path_params["task_id"]
    if (refused := _refuse_task_id(raw)) is not None:
        return refused
    checked = _task_body(body)
    if isinstance(checked, Response):
        return checked
    fields, full_link_given = checked
    try:
        task = _world(request).update_task(int(raw), fields, full_link_given=full_link_given)
    except MissingObject as exc:
        return _missing(f"task {raw}" if exc.kind == "task" else f"test project {fields['project_id']}")
    return json_response({"code": CPTS_OK, "message": "success", "taskInfo": _task_info(task)})


async def delete_task(request: Request) -> Response:
    if (denied := _check_auth(request, await request.body())) is not None:
        return denied
    raw = request.path_params["task_id"]
    if (refused := _refuse_task_id(raw)) is not None:
        return refused
    try:
        _world(request).delete_task(int(raw))
    except MissingObject:
        return _missing(f"task {raw}")
    return json_response({"code": CPTS_OK, "message": "success"})


async def list_tasks(request: Request) -> Response:
    if (denied := _check_auth(request, await request.body())) is not None:
        return denied
    raw = request.path_params["test_project_id"]
    try:
        offset = _int_param(request.query_params.get("offset"), 0)
        limit = _int_param(request.query_params.get("limit"), DEFAULT_PAGE)
    except ValueError:
        return cpts_error(400, CPTS_BAD_REQUEST, "offset and limit must be integers")
    assert offset is not None and limit is not None
    if not raw.isdigit():
        return cpts_error(400, CPTS_BAD_REQUEST, "the test project id must be an integer")
    if offset < 0:
        return cpts_error(400, CPTS_BAD_REQUEST, "offset must be 0 or more")
    if not 1 <= limit <= MAX_PAGE:
        return cpts_error(400, CPTS_BAD_REQUEST, f"limit must be between 1 and {MAX_PAGE}")
    try:
        tasks = _world(request).list_tasks(int(raw), offset, limit)
    except MissingObject:
        return _missing(f"test project {raw}")
    return json_response({"code": CPTS_OK, "message": "success", "extend": [], "tasks": [_task_row(t) for t in tasks]})


async def create_test_project(request: Request) -> Response:
    body = await request.body()
    if (denied := _check_auth(request, body)) is not None:
        return denied
    try:
        data = json.loads(body or b"null")
    except ValueError:
        return cpts_error(400, CPTS_BAD_REQUEST, "the request body is not valid JSON")
    name = data.get("name") if isinstance(data, dict) else None
    if not isinstance(name, str) or not 1 <= len(name) <= 42:
        return cpts_error(400, CPTS_BAD_REQUEST, "name is required and must be 1 to 42 characters")
    description = data.get("description") or ""
    if not isinstance(description, str):
        return cpts_error(400, CPTS_BAD_REQUEST, "description must be a string")
    project = _world(request).add_test_project(None, name, description)
    return json_response({"code": CPTS_OK, "message": "success", "project_id": project["id"]}, 201)


async def show_test_project(request: Request) -> Response:
    if (denied := _check_auth(request, await request.body())) is not None:
        return denied
    raw = request.path_params["test_suite_id"]
    if not raw.isdigit():
        return cpts_error(400, CPTS_BAD_REQUEST, "the test project id must be an integer")
    try:
        project = _world(request).get_test_project(int(raw))
    except MissingObject:
        return _missing(f"test project {raw}")
    return json_response({"code": CPTS_OK, "message": "success", "project": project})


routes = [
    Route("/v3/{project_id}/tasks", create_task, methods=["POST"]),
    Route("/v3/{project_id}/tasks/{task_id}", update_task, methods=["PUT"]),
    Route("/v3/{project_id}/tasks/{task_id}", delete_task, methods=["DELETE"]),
    Route("/v1/{project_id}/tasks/{task_id}", show_task, methods=["GET"]),
    Route("/v1/{project_id}/all-tasks/{test_project_id}", list_tasks, methods=["GET"]),
    Route("/v1/{project_id}/test-suites", create_test_project, methods=["POST"]),
    Route("/v1/{project_id}/test-suites/{test_suite_id}", show_test_project, methods=["GET"]),
]
