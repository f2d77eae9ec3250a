"""The ``/_sandbox`` routes: look at the world, change it behind the tools' back, set faults, read stats.

These answer plain JSON (``{"error": ...}`` on a bad request), need no credentials, and are never throttled or
affected by faults: a test must always be able to see what really happened.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .faults import FaultSpec, FaultSpecError
from .ledger import MissingObject
from .responses import json_response
from .runtime import sandbox_of
from .seed import PoolSeed, SandboxSeed, SeedError


def _error(status: int, message: str) -> Response:
    return json_response({"error": message}, status)


async def _json_body(request: Request) -> Any:
    body = await request.body()
    return json.loads(body) if body.strip() else {}


async def objects(request: Request) -> Response:
    return json_response(sandbox_of(request).world.snapshot())


async def reset(request: Request) -> Response:
    sandbox_of(request).reset()
    return json_response({"reset": True})


async def delete_object(request: Request) -> Response:
    kind, key = request.path_params["kind"], request.path_params["id"]
    try:
        sandbox_of(request).world.delete_object(kind, key)
    except MissingObject as exc:
        return _error(404, str(exc))
    return json_response({"deleted": {"kind": kind, "id": key}})


async def patch_object(request: Request) -> Response:
    kind, key = request.path_params["kind"], request.path_params["id"]
    try:
        fields = await _json_body(request)
    except ValueError:
        return _error(400, "the body must be a JSON object of fields to merge")
    if not isinstance(fields, dict):
        return _error(400, "the body must be a JSON object of fields to merge")
    try:
        return json_response(sandbox_of(request).world.patch_object(kind, key, fields))
    except MissingObject as exc:
        return _error(404, str(exc))


async def archive_operation_log(request: Request) -> Response:
    """Age an operation's log past the month Toloka keeps logs for, for tests of recovery without it."""
    operation_id = request.path_params["id"]
    try:
        sandbox_of(request).world.toloka.archive_operation_log(operation_id)
    except MissingObject as exc:
        return _error(404, str(exc))
    return json_response({"archived": operation_id})


async def stats(request: Request) -> Response:
    return json_response(sandbox_of(request).stats.as_json())


async def get_faults(request: Request) -> Response:
    return json_response({"spec": str(sandbox_of(request).faults.spec)})


async def put_faults(request: Request) -> Response:
    try:
        data = await _json_body(request)
    except ValueError:
        return _error(400, 'the body must be {"spec": "..."}')
    if not isinstance(data, dict) or not isinstance(data.get("spec", ""), str):
        return _error(400, 'the body must be {"spec": "..."}')
    try:
        spec = FaultSpec.parse(data.get("spec", ""))
    except FaultSpecError as exc:
        return _error(400, str(exc))
    sandbox_of(request).set_faults(spec)
    return json_response({"spec": str(spec)})


async def add_pool(request: Request) -> Response:
    try:
        seed = SandboxSeed.from_dict({"pools": [await _json_body(request)]})
    except (ValueError, SeedError) as exc:
        return _error(400, str(exc))
    pool: PoolSeed = seed.pools[0]
    return json_response(sandbox_of(request).world.toloka.add_pool(pool), 201)


async def add_test_project(request: Request) -> Response:
    try:
        seed = SandboxSeed.from_dict({"test_projects": [await _json_body(request)]})
    except (ValueError, SeedError) as exc:
        return _error(400, str(exc))
    project = seed.test_projects[0]
    perftest = sandbox_of(request).world.perftest
    return json_response(perftest.add_test_project(project.id, project.name, project.description), 201)


async def info(request: Request) -> Response:
    """What a client needs to talk to this sandbox (its credentials are public by design)."""
    sandbox = sandbox_of(request)
    credentials = sandbox.world.credentials
    return json_response(
        {
            "auto_create": sandbox.world.auto_create,
            "faults": str(sandbox.faults.spec),
            "credentials": {
                "access_key": credentials.access_key,
                "secret_key": credentials.secret_key,
                "cloud_project_id": credentials.cloud_project_id,
                "toloka_tokens": list(credentials.toloka_tokens),
                "iam_tokens": list(credentials.iam_tokens),
            },
        }
    )


routes = [
    Route("/_sandbox/info", info, methods=["GET"]),
    Route("/_sandbox/objects", objects, methods=["GET"]),
    Route("/_sandbox/reset", reset, methods=["POST"]),
    Route("/_sandbox/objects/{kind}/{id}", delete_object, methods=["DELETE"]),
    Route("/_sandbox/objects/{kind}/{id}", patch_object, methods=["PATCH"]),
    Route("/_sandbox/operations/{id}/archive-log", archive_operation_log, methods=["POST"]),
    Route("/_sandbox/stats", stats, methods=["GET"]),
    Route("/_sandbox/faults", get_faults, methods=["GET"]),
    Route("/_sandbox/faults", put_faults, methods=["PUT"]),
    Route("/_sandbox/pools", add_pool, methods=["POST"]),
    Route("/_sandbox/test_projects", add_test_project, methods=["POST"]),
]
