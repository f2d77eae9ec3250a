"""The CodeArts PerfTest side of the sandbox, over real HTTP with real signatures."""

from __future__ import annotations

import httpx
import pytest
from helpers.sandbox_clients import PerfTestClient


@pytest.fixture
def cpts(sandbox):
    return PerfTestClient(sandbox)


def test_a_created_task_can_be_read_back(cpts):
    created = cpts.create_task(name="checkout-smoke", project_id=42, case_id_list=[7, 8])
    assert created.status_code == 201
    body = created.json()
    assert body["code"] == "SVCSTG.CPTS.0000000" and body["message"] == "success"
    shown = cpts.show_task(body["task_id"])
    assert shown.status_code == 200
    info = shown.json()["taskInfo"]
    assert info["name"] == "checkout-smoke"
    assert info["project_id"] == 42 and info["parallel"] is True and info["operate_mode"] == 2
    assert [c["case_id"] for c in info["case_list"]] == [7, 8]
    assert {"bench_concurrent", "description", "run_status", "create_time", "update_time"} <= set(info)


def test_every_answer_carries_a_request_id(cpts, sandbox):
    assert cpts.create_task().headers["X-Request-Id"]
    assert cpts.show_task(1).headers["X-Request-Id"]
    assert httpx.get(f"{sandbox.url}/_sandbox/objects").headers["X-Request-Id"]


def test_task_names_are_not_unique_so_duplicates_are_countable(cpts, sandbox):
    first = cpts.create_task(name="same").json()["task_id"]
    second = cpts.create_task(name="same").json()["task_id"]
    assert first != second
    assert [t["name"] for t in sandbox.objects()["perftest_tasks"]] == ["same", "same"]


def test_a_missing_task_is_a_403_with_the_cpts_code(cpts):
    answer = cpts.show_task(987654)
    assert answer.status_code == 403
    assert answer.json()["code"] == "SVCSTG.CPTS.4032002"


@pytest.mark.parametrize(
    ("fields", "fragment"),
    [
        ({"name": ""}, "name"),
        ({"name": "x" * 43}, "42"),
        ({"parallel": "yes"}, "parallel"),
        ({"project_id": "42"}, "project_id"),
        ({"operate_mode": 3}, "operate_mode"),
        ({"case_id_list": [1, "2"]}, "case_id_list"),
        ({"enable_full_link": 1}, "enable_full_link"),
    ],
)
def test_an_invalid_task_body_is_a_400_and_creates_nothing(cpts, sandbox, fields, fragment):
    answer = cpts.create_task(**fields)
    assert answer.status_code == 400
    assert answer.json()["code"].startswith("SVCSTG.CPTS.400")
    assert fragment in answer.json()["message"]
    assert sandbox.objects()["perftest_tasks"] == []


def test_listing_pages_by_offset_in_id_order(cpts):
    ids = [cpts.create_task(name=f"t{i}", project_id=7).json()["task_id"] for i in range(12)]
    first = cpts.list_tasks(7).json()
    assert first["code"] == "SVCSTG.CPTS.0000000" and "extend" in first
    assert [t["id"] for t in first["tasks"]] == ids[:10]  # default limit 10
    rest = cpts.list_tasks(7, offset=10, limit=10).json()["tasks"]
    assert [t["id"] for t in rest] == ids[10:]
    assert set(rest[0]) >= {"id", "name", "parallel", "operate_mode", "update_time", "task_run_info"}
    assert cpts.list_tasks(7, offset=12).json()["tasks"] == []


def test_a_page_larger_than_100_is_refused(cpts):
    assert cpts.list_tasks(7, limit=101).status_code == 400


def test_test_projects_are_created_and_read(cpts):
    created = cpts.request("POST", f"/v1/{cpts.project}/test-suites", body={"name": "load", "description": "d"})
    assert created.status_code == 201
    project_id = created.json()["project_id"]
    shown = cpts.request("GET", f"/v1/{cpts.project}/test-suites/{project_id}").json()
    assert shown["project"]["name"] == "load" and shown["project"]["id"] == project_id


def test_unknown_test_projects_are_403_without_auto_create(sandbox_factory):
    sandbox = sandbox_factory(auto_create=False)
    cpts = PerfTestClient(sandbox)
    assert cpts.create_task(project_id=5).json()["code"] == "SVCSTG.CPTS.4032002"
    assert cpts.list_tasks(5).status_code == 403
    sandbox.add_test_project(5, "five")
    assert cpts.create_task(project_id=5).status_code == 201


def test_a_wrong_secret_key_is_apigw_0301(sandbox):
    answer = PerfTestClient(sandbox, secret_key="not-the-secret").create_task()
    assert answer.status_code == 401
    assert answer.json()["error_code"] == "APIGW.0301"
    assert set(answer.json()) == {"error_code", "error_msg", "request_id"}
    assert sandbox.objects()["perftest_tasks"] == []


def test_an_unknown_access_key_is_apigw_0301(sandbox):
    answer = PerfTestClient(sandbox, access_key="SOMEONEELSE").create_task()
    assert answer.status_code == 401 and answer.json()["error_code"] == "APIGW.0301"


def test_a_signature_dated_more_than_15_minutes_away_is_apigw_0303(cpts):
    body = {"name": "t", "parallel": True, "project_id": 1, "operate_mode": 2, "case_id_list": []}
    late = cpts.request("POST", f"/v3/{cpts.project}/tasks", body=body, date_offset_s=-16 * 60)
    assert late.status_code == 401 and late.json()["error_code"] == "APIGW.0303"
    close = cpts.request("POST", f"/v3/{cpts.project}/tasks", body=body, date_offset_s=-14 * 60)
    assert close.status_code == 201


def test_a_tampered_body_breaks_the_signature(cpts, sandbox):
    good = cpts.create_task()
    assert good.status_code == 201
    raw = b'{"name": "x", "parallel": true, "project_id": 1, "operate_mode": 2, "case_id_list": []}'
    request = good.request
    headers = {k: v for k, v in request.headers.items() if k.lower() != "content-length"}
    tampered = httpx.post(str(request.url), content=raw, headers=headers)
    assert tampered.status_code == 401 and tampered.json()["error_code"] == "APIGW.0301"


def test_a_signed_query_string_is_verified(cpts):
    cpts.create_task(project_id=9)
    assert cpts.list_tasks(9, offset=0, limit=5).status_code == 200


def test_an_iam_token_is_accepted_and_a_wrong_one_is_not(sandbox):
    path = f"{sandbox.url}/v1/{sandbox.cloud_project_id}/all-tasks/3"
    assert httpx.get(path, headers={"X-Auth-Token": sandbox.iam_token}).status_code == 200
    assert httpx.get(path, headers={"X-Auth-Token": "nope"}).status_code == 401
    assert httpx.get(path).status_code == 401


def test_another_cloud_project_in_the_path_is_403(sandbox):
    other = "f" * 32
    answer = httpx.get(f"{sandbox.url}/v1/{other}/tasks/1", headers={"X-Auth-Token": sandbox.iam_token})
    assert answer.status_code == 403 and answer.json()["error_code"].startswith("APIGW.")


def test_perftest_throttling_is_429_apigw_0308(sandbox_factory):
    sandbox = sandbox_factory(auto_create=True, perftest_requests_per_second=5)
    path = f"{sandbox.url}/v1/{sandbox.cloud_project_id}/all-tasks/3"
    with httpx.Client(headers={"X-Auth-Token": sandbox.iam_token}) as http:
        statuses = [http.get(path).status_code for _ in range(8)]
        assert statuses[:5] == [200] * 5 and 429 in statuses[5:]
        refused = http.get(path)
    assert refused.json()["error_code"] == "APIGW.0308"
