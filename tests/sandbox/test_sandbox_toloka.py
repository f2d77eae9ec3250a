"""The Toloka side of the sandbox: task suites, operations, limits, over real HTTP."""

from __future__ import annotations

import re
import time
import uuid

import httpx
import pytest
from helpers.sandbox_clients import TolokaClient, suite

SUITE_ID = re.compile(r"^[0-9a-f]{10}--[0-9a-f]{24}$")
TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,3})?$")


@pytest.fixture
def toloka(sandbox):
    return TolokaClient(sandbox)


def test_a_sync_create_answers_items_and_validation_errors_by_input_index(toloka, sandbox):
    answer = toloka.create([suite(), suite(overlap=0), suite()], skip_invalid_items=True)
    assert answer.status_code == 201
    body = answer.json()
    assert set(body["items"]) == {"0", "2"}
    assert body["validation_errors"] == {
        "1": {
            "overlap": {
                "code": "VALUE_LESS_THAN_MIN",
                "message": "Value must be greater or equal to 1",
                "params": [1],
            }
        }
    }
    created = body["items"]["0"]
    assert SUITE_ID.match(created["id"]) and TIME.match(created["created"])
    assert created["remaining_overlap"] == 1 and created["automerged"] is False
    assert created["tasks"] == [{"input_values": {"text": "hello"}}]
    assert len(sandbox.objects()["task_suites"]) == 2


def test_one_invalid_suite_without_skip_invalid_items_creates_nothing(toloka, sandbox):
    answer = toloka.create([suite(), suite(tasks=[{"known_solutions": []}])])
    assert answer.status_code == 400
    body = answer.json()
    assert body["code"] == "VALIDATION_ERROR" and body["request_id"]
    assert body["payload"] == {
        "1": {
            "tasks.0.input_values": {
                "code": "VALUE_REQUIRED",
                "message": "Value must be present and not equal to null",
            }
        }
    }
    assert sandbox.objects()["task_suites"] == []


def test_a_single_suite_body_answers_the_suite_itself(toloka):
    answer = toloka.create(suite(overlap=3))
    assert answer.status_code == 201
    assert answer.json()["overlap"] == 3 and SUITE_ID.match(answer.json()["id"])


@pytest.mark.parametrize(
    ("fields", "field", "code"),
    [
        ({"overlap": 30001}, "overlap", "VALUE_GREATER_THAN_MAX"),
        ({"overlap": None}, "overlap", "VALUE_REQUIRED"),
        ({"issuing_order_override": 100000}, "issuing_order_override", "VALUE_GREATER_THAN_MAX"),
        ({"tasks": [{"input_values": "text"}]}, "tasks.0.input_values", "VALUE_TYPE_MISMATCH"),
        (
            {
                "tasks": [
                    {
                        "input_values": {},
                        "known_solutions": [{"output_values": {}, "correctness_weight": 1.5}],
                    }
                ]
            },
            "tasks.0.known_solutions.0.correctness_weight",
            "VALUE_GREATER_THAN_MAX",
        ),
        ({"tasks": []}, "tasks", "VALUE_REQUIRED"),
    ],
)
def test_suite_fields_are_validated(toloka, fields, field, code):
    answer = toloka.create([suite(**fields)])
    assert answer.status_code == 400
    assert answer.json()["payload"]["0"][field]["code"] == code


def test_the_server_fills_ids_that_sort_by_pool_then_creation(toloka):
    first = toloka.create([suite("20"), suite("20")]).json()["items"]
    other_pool = toloka.create([suite("3")]).json()["items"]["0"]
    later = toloka.create([suite("20")]).json()["items"]["0"]
    ids = [first["0"]["id"], first["1"]["id"], later["id"]]
    assert ids == sorted(ids) and len(set(ids)) == 3
    assert all(i.startswith(f"{20:010x}--") for i in ids)
    assert other_pool["id"].startswith(f"{3:010x}--") and other_pool["id"] < ids[0]
    assert int(ids[0][12:20], 16) == pytest.approx(time.time(), abs=120)  # starts with the creation time


def test_an_async_create_returns_the_operation_named_by_its_operation_id(toloka, sandbox):
    operation_id = str(uuid.uuid4())
    answer = toloka.create([suite(), suite()], async_mode=True, operation_id=operation_id)
    assert answer.status_code == 202
    operation = answer.json()
    assert operation["id"] == operation_id
    assert operation["type"] == "TASK_SUITE.BATCH_CREATE"
    assert operation["status"] == "PENDING" and TIME.match(operation["submitted"])
    assert sandbox.objects()["task_suites"] == []  # not visible until the operation finishes
    done = toloka.wait(operation_id)
    assert done["status"] == "SUCCESS" and done["progress"] == 100
    assert done["details"]["success_count"] == 2
    assert TIME.match(done["started"]) and TIME.match(done["finished"])
    assert len(sandbox.objects()["task_suites"]) == 2


def test_an_operation_is_seen_running_before_it_succeeds(sandbox_factory):
    sandbox = sandbox_factory(auto_create=True, operation_base_s=0.3)
    toloka = TolokaClient(sandbox)
    operation_id = toloka.create([suite()], async_mode=True).json()["id"]
    seen = set()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and "SUCCESS" not in seen:
        seen.add(toloka.get(f"/operations/{operation_id}").json()["status"])
        time.sleep(0.02)
    assert {"RUNNING", "SUCCESS"} <= seen


def test_an_async_create_without_an_operation_id_gets_one(toloka):
    operation = toloka.create([suite()], async_mode=True).json()
    assert uuid.UUID(operation["id"])


def test_reused_operation_id_creates_nothing_twice(toloka, sandbox):
    operation_id = str(uuid.uuid4())
    batch = [suite(), suite(), suite()]
    assert toloka.create(batch, async_mode=True, operation_id=operation_id).status_code == 202
    again = toloka.create(batch, async_mode=True, operation_id=operation_id)
    assert again.status_code == 409 and again.json()["code"] == "OPERATION_ALREADY_EXISTS"
    toloka.wait(operation_id)
    after = toloka.create(batch, async_mode=True, operation_id=operation_id)
    assert after.status_code == 409
    assert len(sandbox.objects()["task_suites"]) == 3


def test_an_operation_never_accepted_is_404(toloka):
    answer = toloka.get(f"/operations/{uuid.uuid4()}")
    assert answer.status_code == 404 and answer.json()["code"] == "DOES_NOT_EXIST"
    assert toloka.get(f"/operations/{uuid.uuid4()}/log").status_code == 404


def test_the_operation_log_echoes_each_input_including_unknown_keys(toloka):
    items = [
        {**suite(), "__item_idx": "0"},
        {**suite(overlap=0), "__item_idx": "1"},
        {**suite(), "__item_idx": "2"},
    ]
    operation_id = toloka.create(items, async_mode=True, skip_invalid_items=True).json()["id"]
    assert toloka.wait(operation_id)["status"] == "SUCCESS"
    log = toloka.get(f"/operations/{operation_id}/log").json()
    assert isinstance(log, list) and [entry["input"] for entry in log] == items
    assert [entry["type"] for entry in log] == [
        "TASK_SUITE_CREATE",
        "TASK_SUITE_VALIDATE",
        "TASK_SUITE_CREATE",
    ]
    assert log[1] == {
        "type": "TASK_SUITE_VALIDATE",
        "success": False,
        "input": items[1],
        "output": {
            "overlap": {
                "code": "VALUE_LESS_THAN_MIN",
                "message": "Value must be greater or equal to 1",
                "params": [1],
            }
        },
    }
    created = toloka.get(f"/task-suites/{log[0]['output']['task_suite_id']}")
    assert created.status_code == 200 and "__item_idx" not in created.json()


def test_an_async_batch_with_an_invalid_suite_fails_and_creates_nothing(toloka, sandbox):
    operation_id = toloka.create([suite(), suite(pool_id="")], async_mode=True).json()["id"]
    operation = toloka.wait(operation_id)
    assert operation["status"] == "FAIL"
    assert operation["details"]["not_valid_count"] == 1 and operation["details"]["success_count"] == 0
    log = toloka.get(f"/operations/{operation_id}/log").json()
    assert [entry["success"] for entry in log] == [False]
    assert sandbox.objects()["task_suites"] == []


def test_a_5000_suite_batch_finishes_in_well_under_a_second(toloka, sandbox):
    started = time.monotonic()
    operation_id = toloka.create([suite("8")] * 5000, async_mode=True).json()["id"]
    assert toloka.wait(operation_id)["status"] == "SUCCESS"
    assert time.monotonic() - started < 1.0
    assert len(sandbox.objects()["task_suites"]) == 5000


def test_search_pages_with_id_gt_and_has_more(toloka):
    toloka.create([suite("5")] * 7)
    toloka.create([suite("6")] * 2)
    first = toloka.get("/task-suites", pool_id="5", sort="id", limit=4).json()
    assert len(first["items"]) == 4 and first["has_more"] is True
    rest = toloka.get("/task-suites", pool_id="5", sort="id", limit=4, id_gt=first["items"][-1]["id"]).json()
    assert len(rest["items"]) == 3 and rest["has_more"] is False
    ids = [s["id"] for s in first["items"] + rest["items"]]
    assert ids == sorted(ids) and len(set(ids)) == 7
    everything = toloka.get("/task-suites", limit=100).json()["items"]
    assert [s["pool_id"] for s in everything] == ["5"] * 7 + ["6"] * 2


def test_search_filters_by_creation_time(toloka):
    old = toloka.create([suite("5")]).json()["items"]["0"]
    time.sleep(0.01)
    new = toloka.create([suite("5")]).json()["items"]["0"]
    found = toloka.get("/task-suites", pool_id="5", created_gte=new["created"]).json()["items"]
    assert [s["id"] for s in found] == [new["id"]]
    assert old["created"] < new["created"]
    descending = toloka.get("/task-suites", pool_id="5", sort="-id").json()["items"]
    assert [s["id"] for s in descending] == [new["id"], old["id"]]


def test_a_missing_suite_is_404_does_not_exist(toloka):
    answer = toloka.get("/task-suites/00000000ff--000000000000000000000000")
    assert answer.status_code == 404 and answer.json()["code"] == "DOES_NOT_EXIST"


def test_unknown_pool_is_a_validation_error(sandbox_factory):
    sandbox = sandbox_factory(auto_create=False)
    toloka = TolokaClient(sandbox)
    answer = toloka.create([suite("404")])
    assert answer.status_code == 400
    assert answer.json()["payload"]["0"]["pool_id"]["code"] == "DOES_NOT_EXIST"
    sandbox.add_pool("404")
    assert toloka.create([suite("404")]).status_code == 201


def test_allow_defaults_takes_the_pool_default_overlap(sandbox_factory):
    sandbox = sandbox_factory(auto_create=False)
    sandbox.add_pool("10", default_overlap=5)
    sandbox.add_pool("11")
    toloka = TolokaClient(sandbox)
    with_default = toloka.create([suite("10", overlap=None)], allow_defaults=True).json()["items"]["0"]
    assert with_default["overlap"] == 5 and with_default["remaining_overlap"] == 5
    assert toloka.create([suite("10", overlap=None)]).status_code == 400  # allow_defaults=false
    no_default = toloka.create([suite("11", overlap=None)], allow_defaults=True)
    assert no_default.json()["payload"]["0"]["overlap"]["code"] == "VALUE_REQUIRED"


def test_open_pool_opens_a_closed_pool(sandbox):
    sandbox.add_pool("30", status="CLOSED")
    TolokaClient(sandbox).create([suite("30")], open_pool=True)
    assert {p["id"]: p["status"] for p in sandbox.objects()["pools"]}["30"] == "OPEN"


def test_more_than_5000_suites_in_a_sync_request_is_413(toloka, sandbox):
    assert toloka.create([suite()] * 5001).status_code == 413
    assert sandbox.objects()["task_suites"] == []


def test_more_than_a_mebibyte_of_input_values_is_413(toloka):
    big = {"pool_id": "1", "overlap": 1, "tasks": [{"input_values": {"text": "x" * (1024 * 1024)}}]}
    answer = toloka.create([big], async_mode=True)
    assert answer.status_code == 413 and answer.json()["code"]


def test_a_body_that_is_not_json_is_415(sandbox):
    answer = httpx.post(
        f"{sandbox.url}/api/v1/task-suites",
        content=b"pool_id=1",
        headers={**sandbox.toloka_headers, "Content-Type": "text/plain"},
    )
    assert answer.status_code == 415


@pytest.mark.parametrize("header", [None, "ApiKey wrong", "Bearer sandbox-token"])
def test_a_missing_or_bad_key_is_401(sandbox, header):
    headers = {"Authorization": header} if header else {}
    answer = httpx.get(f"{sandbox.url}/api/v1/task-suites", headers=headers)
    assert answer.status_code == 401 and answer.json()["code"] == "AUTHENTICATION_ERROR"


def test_both_apikey_and_oauth_schemes_are_accepted(sandbox):
    assert TolokaClient(sandbox, scheme="OAuth").get("/task-suites").status_code == 200
    assert TolokaClient(sandbox, scheme="ApiKey").get("/task-suites").status_code == 200


def test_more_than_the_request_rate_is_429_too_many_requests(sandbox_factory):
    sandbox = sandbox_factory(auto_create=True, toloka_requests_per_second=5)
    toloka = TolokaClient(sandbox)
    answers = [toloka.get("/task-suites") for _ in range(8)]
    assert [a.status_code for a in answers[:5]] == [200] * 5
    refused = [a for a in answers if a.status_code == 429]
    assert refused and refused[0].json()["code"] == "TOO_MANY_REQUESTS"
    assert "Retry-After" not in refused[0].headers


def test_the_per_minute_suite_quota_is_429_with_interval_min(sandbox_factory):
    sandbox = sandbox_factory(auto_create=True, suites_per_minute=10)
    toloka = TolokaClient(sandbox)
    assert toloka.create([suite()] * 8).status_code == 201
    refused = toloka.create([suite()] * 3)
    assert refused.status_code == 429
    assert refused.json()["code"] == "TOO_MANY_REQUESTS" and refused.json()["payload"] == {"interval": "MIN"}
    assert len(sandbox.objects()["task_suites"]) == 8
