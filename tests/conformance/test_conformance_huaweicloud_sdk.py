"""huaweicloudsdkcpts, unchanged, against the sandbox: real AK/SK signing, response models and errors."""

from __future__ import annotations

import pytest

CLIENT = """
import json, sys
from huaweicloudsdkcore.auth.credentials import BasicCredentials
from huaweicloudsdkcore.exceptions.exceptions import ClientRequestException
from huaweicloudsdkcpts.v1 import (
    CptsClient, CreateNewTaskRequest, NewTaskInfo, ShowTaskRequest, ShowTaskSetRequest,
    CreateProjectRequest, CreateProjectRequestBody, ShowProjectRequest,
    UpdateTaskRelatedTestCaseRequest, UpdateNewTaskRequestBody, DeleteNewTaskRequest,
)

args = json.load(sys.stdin)
credentials = BasicCredentials(args["ak"], args["sk"], args["project"])
client = CptsClient.new_builder().with_credentials(credentials).with_endpoints([args["url"]]).build()

def call(method, request):
    try:
        response = getattr(client, method)(request)
        return {"ok": True, "body": json.loads(response.raw_content), "status": response.status_code}
    except ClientRequestException as exc:
        return {"ok": False, "exception": type(exc).__name__, "status": exc.status_code,
                "error_code": exc.error_code, "request_id": exc.request_id}

results = {}
for step in args["steps"]:
    if step["op"] == "create_task":
        body = NewTaskInfo(name=step["name"], parallel=True, project_id=step["test_project"], operate_mode=2,
                           case_id_list=[1, 2])
        results[step["key"]] = call("create_new_task", CreateNewTaskRequest(body=body))
    elif step["op"] == "show_task":
        task_id = step.get("task_id") or results[step["of"]]["body"]["task_id"]
        result = call("show_task", ShowTaskRequest(task_id=task_id))
        if result["ok"]:
            info = getattr(client.show_task(ShowTaskRequest(task_id=task_id)), "task_info")
            result["model"] = {"name": info.name, "project_id": info.project_id,
                               "case_ids": [c.case_id for c in info.case_list]}
        results[step["key"]] = result
    elif step["op"] == "show_task_set":
        request = ShowTaskSetRequest(test_suite_id=step["test_project"], offset=0, limit=100)
        result = call("show_task_set", request)
        if result["ok"]:
            tasks = client.show_task_set(request).tasks
            result["names"] = [t.name for t in tasks]
        results[step["key"]] = result
    elif step["op"] == "update_task":  # the SDK's PUT /v3/{project_id}/tasks/{task_id}
        task_id = results[step["of"]]["body"]["task_id"]
        body = UpdateNewTaskRequestBody(name=step["name"], parallel=False, project_id=step["test_project"],
                                        operate_mode=2, case_id_list=step["cases"])
        request = UpdateTaskRelatedTestCaseRequest(task_id=task_id, body=body)
        result = call("update_task_related_test_case", request)
        if result["ok"]:
            info = client.update_task_related_test_case(request).task_info
            result["model"] = {"name": info.name, "parallel": info.parallel,
                               "case_ids": [c.case_id for c in info.case_list]}
        results[step["key"]] = result
    elif step["op"] == "delete_task":  # the SDK's DELETE /v3/{project_id}/tasks/{task_id}
        task_id = results[step["of"]]["body"]["task_id"]
        results[step["key"]] = call("delete_new_task", DeleteNewTaskRequest(task_id=task_id))
    elif step["op"] == "create_project":
        body = CreateProjectRequestBody(name=step["name"], description="made by the official SDK")
        results[step["key"]] = call("create_project", CreateProjectRequest(body=body))
    elif step["op"] == "show_project":
        project_id = results[step["of"]]["body"]["project_id"]
        results[step["key"]] = call("show_project", ShowProjectRequest(test_suite_id=project_id))
print(json.dumps(results))
"""


@pytest.fixture
def run_sdk(sandbox, official_clients):
    def run(steps, *, secret_key=None):
        args = {
            "url": sandbox.url,
            "ak": sandbox.access_key,
            "sk": secret_key or sandbox.secret_key,
            "project": sandbox.cloud_project_id,
            "steps": steps,
        }
        return official_clients.run(CLIENT, args)

    return run


def test_the_sdk_creates_shows_and_lists_tasks_with_aksk_signing(run_sdk, sandbox):
    results = run_sdk(
        [
            {"op": "create_task", "key": "a", "name": "sdk-a", "test_project": 42},
            {"op": "create_task", "key": "b", "name": "sdk-b", "test_project": 42},
            {"op": "show_task", "key": "shown", "of": "a"},
            {"op": "show_task_set", "key": "listed", "test_project": 42},
        ]
    )
    assert results["a"]["status"] == 201 and results["a"]["body"]["code"] == "SVCSTG.CPTS.0000000"
    assert results["shown"]["model"] == {"name": "sdk-a", "project_id": 42, "case_ids": [1, 2]}
    assert results["listed"]["names"] == ["sdk-a", "sdk-b"]
    assert sorted(t["name"] for t in sandbox.objects()["perftest_tasks"]) == ["sdk-a", "sdk-b"]


def test_the_sdk_updates_and_deletes_tasks_on_the_v3_routes(run_sdk, sandbox):
    results = run_sdk(
        [
            {"op": "create_task", "key": "a", "name": "sdk-a", "test_project": 42},
            {"op": "create_task", "key": "b", "name": "sdk-b", "test_project": 42},
            {"op": "update_task", "key": "changed", "of": "a", "name": "sdk-a2", "test_project": 42, "cases": [5]},
            {"op": "show_task", "key": "shown", "of": "a"},
            {"op": "delete_task", "key": "deleted", "of": "b"},
            {"op": "delete_task", "key": "again", "of": "b"},
            {"op": "show_task_set", "key": "listed", "test_project": 42},
        ]
    )
    changed = results["changed"]
    assert changed["status"] == 200 and changed["body"]["code"] == "SVCSTG.CPTS.0000000"
    assert changed["model"] == {"name": "sdk-a2", "parallel": False, "case_ids": [5]}
    assert results["shown"]["model"] == {"name": "sdk-a2", "project_id": 42, "case_ids": [5]}
    assert results["deleted"]["ok"] is True and results["deleted"]["status"] == 200
    assert results["again"]["status"] == 403 and results["again"]["error_code"] == "SVCSTG.CPTS.4032002"
    assert results["listed"]["names"] == ["sdk-a2"]
    tasks = sandbox.objects()["perftest_tasks"]
    assert [(t["id"], t["name"]) for t in tasks] == [(results["a"]["body"]["task_id"], "sdk-a2")]
    routes = sandbox.stats()["routes"]
    assert routes["PUT /v3/{project_id}/tasks/{task_id}"] == {"200": 2}  # the script reads the model twice
    assert routes["DELETE /v3/{project_id}/tasks/{task_id}"] == {"200": 1, "403": 1}


def test_the_sdk_creates_and_reads_a_test_project(run_sdk):
    results = run_sdk(
        [
            {"op": "create_project", "key": "made", "name": "sdk-project"},
            {"op": "show_project", "key": "read", "of": "made"},
        ]
    )
    assert results["made"]["status"] == 201
    assert results["read"]["body"]["project"]["name"] == "sdk-project"


def test_a_wrong_secret_key_makes_the_sdk_raise_a_401_apigw_0301(run_sdk, sandbox):
    results = run_sdk([{"op": "create_task", "key": "denied", "name": "x", "test_project": 42}], secret_key="WRONG")
    denied = results["denied"]
    assert denied == {
        "ok": False,
        "exception": "ClientRequestException",
        "status": 401,
        "error_code": "APIGW.0301",
        "request_id": denied["request_id"],
    }
    assert denied["request_id"]
    assert sandbox.objects()["perftest_tasks"] == []


def test_a_missing_task_makes_the_sdk_raise_a_403_with_the_cpts_code(run_sdk):
    results = run_sdk([{"op": "show_task", "key": "gone", "task_id": 999999}])
    assert results["gone"]["status"] == 403 and results["gone"]["error_code"] == "SVCSTG.CPTS.4032002"
