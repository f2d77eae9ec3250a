"""The sandbox's routes that change and delete what exists: PerfTest PUT/DELETE of a task, Toloka PATCH of a suite.

Each change must show where a ``reconciler drift`` looks (the object's GET and its listing), survive a restart
when the world is kept in a file, be refused the way the API documents, and be counted per route.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from helpers.sandbox_clients import PerfTestClient, TolokaClient, suite

MISSING = "SVCSTG.CPTS.4032002"
UPDATE_ROUTE = "PUT /v3/{project_id}/tasks/{task_id}"
DELETE_ROUTE = "DELETE /v3/{project_id}/tasks/{task_id}"
PATCH_ROUTE = "PATCH /api/v1/task-suites/{suite_id}"
OVERLAP_ROUTE = "PATCH /api/v1/task-suites/{suite_id}/set-overlap-or-min"


@pytest.fixture
def cpts(sandbox):
    return PerfTestClient(sandbox)


@pytest.fixture
def toloka(sandbox):
    return TolokaClient(sandbox)


def task_body(**fields):
    body = {"name": "changed", "parallel": False, "project_id": 42, "operate_mode": 2, "case_id_list": [9]}
    body.update(fields)
    return body


def put_task(cpts, task_id, body):
    return cpts.request("PUT", f"/v3/{cpts.project}/tasks/{task_id}", body=body)


def delete_task(cpts, task_id):
    return cpts.request("DELETE", f"/v3/{cpts.project}/tasks/{task_id}")


def patch_suite(toloka, suite_id, body, **params):
    return toloka.http.patch(f"/api/v1/task-suites/{suite_id}", json=body, params=params)


def set_overlap(toloka, suite_id, body):
    return toloka.http.patch(f"/api/v1/task-suites/{suite_id}/set-overlap-or-min", json=body)


def new_suite(toloka, **fields):
    return toloka.create(suite(**fields)).json()


# --- PerfTest: PUT /v3/{project_id}/tasks/{task_id} ---------------------------------------------------------


def test_a_put_changes_the_task_in_place_and_get_and_listing_show_it(cpts, sandbox):
    task_id = cpts.create_task(name="before").json()["task_id"]
    old = "2001-01-01T00:00:00Z"  # CPTS times are to the second: an old one shows the update time moving
    sandbox.patch_object("perftest_tasks", task_id, {"create_time": old, "update_time": old})
    answer = put_task(cpts, task_id, task_body())
    assert answer.status_code == 200
    body = answer.json()
    assert body["code"] == "SVCSTG.CPTS.0000000" and body["message"] == "success"
    assert body["taskInfo"]["name"] == "changed"
    info = cpts.show_task(task_id).json()["taskInfo"]
    assert info == body["taskInfo"]
    assert info["parallel"] is False and [c["case_id"] for c in info["case_list"]] == [9]
    assert info["create_time"] == old and info["update_time"] > old
    listed = cpts.list_tasks(42).json()["tasks"]
    assert [(t["id"], t["name"], t["parallel"]) for t in listed] == [(task_id, "changed", False)]
    assert [t["id"] for t in sandbox.objects()["perftest_tasks"]] == [task_id]


def test_a_put_naming_another_test_project_moves_the_task_there(cpts):
    task_id = cpts.create_task(project_id=42).json()["task_id"]
    assert put_task(cpts, task_id, task_body(project_id=43)).status_code == 200
    assert cpts.list_tasks(42).json()["tasks"] == []
    assert [t["id"] for t in cpts.list_tasks(43).json()["tasks"]] == [task_id]


def test_a_put_without_enable_full_link_keeps_it(cpts, sandbox):
    task_id = cpts.create_task(enable_full_link=True).json()["task_id"]
    put_task(cpts, task_id, task_body())
    assert sandbox.objects()["perftest_tasks"][0]["enable_full_link"] is True
    put_task(cpts, task_id, task_body(enable_full_link=False))
    assert sandbox.objects()["perftest_tasks"][0]["enable_full_link"] is False


def test_a_put_to_a_missing_task_is_a_403_and_creates_nothing(cpts, sandbox):
    answer = put_task(cpts, 987654, task_body())
    assert answer.status_code == 403 and answer.json()["code"] == MISSING
    assert sandbox.objects()["perftest_tasks"] == []


def test_a_put_naming_a_missing_test_project_is_a_403_and_changes_nothing(sandbox_factory):
    strict = sandbox_factory(auto_create=False)
    strict.add_test_project(42, "p")
    cpts = PerfTestClient(strict)
    task_id = cpts.create_task(project_id=42, name="kept").json()["task_id"]
    answer = put_task(cpts, task_id, task_body(project_id=4242))
    assert answer.status_code == 403 and answer.json()["code"] == MISSING
    assert "test project 4242" in answer.json()["message"]
    assert cpts.show_task(task_id).json()["taskInfo"]["name"] == "kept"


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
def test_an_invalid_put_body_is_a_400_as_on_create_and_changes_nothing(cpts, sandbox, fields, fragment):
    task_id = cpts.create_task(name="kept").json()["task_id"]
    answer = put_task(cpts, task_id, task_body(**fields))
    assert answer.status_code == 400
    assert answer.json()["code"].startswith("SVCSTG.CPTS.400") and fragment in answer.json()["message"]
    assert sandbox.objects()["perftest_tasks"][0]["name"] == "kept"


def test_a_put_without_the_full_body_is_a_400(cpts):
    task_id = cpts.create_task().json()["task_id"]
    assert put_task(cpts, task_id, {"name": "only-a-name"}).status_code == 400


def test_a_put_with_a_wrong_signature_is_a_401_and_changes_nothing(sandbox):
    good = PerfTestClient(sandbox)
    task_id = good.create_task(name="kept").json()["task_id"]
    answer = put_task(PerfTestClient(sandbox, secret_key="WRONG"), task_id, task_body())
    assert answer.status_code == 401 and answer.json()["error_code"] == "APIGW.0301"
    assert good.show_task(task_id).json()["taskInfo"]["name"] == "kept"


# --- PerfTest: DELETE /v3/{project_id}/tasks/{task_id} ------------------------------------------------------


def test_a_delete_removes_the_task_from_get_and_listing(cpts, sandbox):
    kept = cpts.create_task(name="kept").json()["task_id"]
    gone = cpts.create_task(name="gone").json()["task_id"]
    answer = delete_task(cpts, gone)
    assert answer.status_code == 200 and answer.json() == {"code": "SVCSTG.CPTS.0000000", "message": "success"}
    shown = cpts.show_task(gone)
    assert shown.status_code == 403 and shown.json()["code"] == MISSING
    assert [t["id"] for t in cpts.list_tasks(42).json()["tasks"]] == [kept]
    assert [t["id"] for t in sandbox.objects()["perftest_tasks"]] == [kept]


def test_deleting_a_missing_or_deleted_task_is_a_403(cpts):
    task_id = cpts.create_task().json()["task_id"]
    assert delete_task(cpts, task_id).status_code == 200
    again = delete_task(cpts, task_id)
    assert again.status_code == 403 and again.json()["code"] == MISSING
    assert delete_task(cpts, 987654).json()["code"] == MISSING
    assert put_task(cpts, task_id, task_body()).json()["code"] == MISSING


def test_a_deleted_task_id_is_never_handed_out_again(cpts):
    task_id = cpts.create_task().json()["task_id"]
    delete_task(cpts, task_id)
    assert cpts.create_task().json()["task_id"] == task_id + 1


def test_a_task_id_that_is_no_integer_is_a_400(cpts):
    assert delete_task(cpts, "abc").status_code == 400
    assert put_task(cpts, "abc", task_body()).status_code == 400


def test_task_changes_are_counted_per_route_and_throttled_per_api(sandbox_factory):
    sandbox = sandbox_factory(auto_create=True, perftest_requests_per_second=3)
    cpts = PerfTestClient(sandbox)
    task_id = cpts.create_task().json()["task_id"]
    puts = [put_task(cpts, task_id, task_body()).status_code for _ in range(5)]
    assert puts[:3] == [200] * 3 and 429 in puts[3:]
    assert delete_task(cpts, task_id).status_code == 200  # another API: its own window
    routes = sandbox.stats()["routes"]
    assert routes[UPDATE_ROUTE]["200"] == 3 and routes[UPDATE_ROUTE]["429"] == puts.count(429)
    assert routes[DELETE_ROUTE] == {"200": 1}


# --- Toloka: PATCH /api/v1/task-suites/{id} ----------------------------------------------------------------


def test_a_patch_changes_the_suite_and_get_and_listing_show_it(toloka, sandbox):
    created = new_suite(toloka, overlap=3)
    answer = patch_suite(toloka, created["id"], {"overlap": 5, "issuing_order_override": 12.5})
    assert answer.status_code == 200
    changed = answer.json()
    assert changed == {**created, "overlap": 5, "remaining_overlap": 5, "issuing_order_override": 12.5}
    assert toloka.get(f"/task-suites/{created['id']}").json() == changed
    assert toloka.get("/task-suites", pool_id="1001").json()["items"] == [changed]
    assert sandbox.objects()["task_suites"] == [changed]


def test_a_patch_keeps_what_the_suites_progress_used(toloka, sandbox):
    created = new_suite(toloka, overlap=3)
    sandbox.patch_object("task_suites", created["id"], {"remaining_overlap": 1})  # two assignments done
    changed = patch_suite(toloka, created["id"], {"overlap": 4}).json()
    assert (changed["overlap"], changed["remaining_overlap"]) == (4, 2)
    refused = patch_suite(toloka, created["id"], {"overlap": 1})
    assert refused.status_code == 400
    assert refused.json()["payload"]["overlap"]["code"] == "VALUE_LESS_THAN_MIN"
    assert refused.json()["payload"]["overlap"]["params"] == [2]
    assert toloka.get(f"/task-suites/{created['id']}").json()["overlap"] == 4


def test_a_patch_switches_between_finite_and_infinite_overlap(toloka):
    created = new_suite(toloka, overlap=2)
    infinite = patch_suite(toloka, created["id"], {"infinite_overlap": True}).json()
    assert infinite["infinite_overlap"] is True and "overlap" not in infinite and "remaining_overlap" not in infinite
    needs_value = patch_suite(toloka, created["id"], {"infinite_overlap": False})
    assert needs_value.status_code == 400 and "overlap" in needs_value.json()["payload"]
    finite = patch_suite(toloka, created["id"], {"overlap": 3, "infinite_overlap": False}).json()
    assert (finite["overlap"], finite["remaining_overlap"], finite["infinite_overlap"]) == (3, 3, False)


def test_a_patch_with_open_pool_opens_a_closed_pool(toloka, sandbox):
    sandbox.add_pool("77", default_overlap=1, status="CLOSED")
    created = new_suite(toloka, pool_id="77")
    assert patch_suite(toloka, created["id"], {}, open_pool="true").status_code == 200
    assert {p["id"]: p["status"] for p in sandbox.objects()["pools"]}["77"] == "OPEN"


@pytest.mark.parametrize(
    ("body", "field", "code"),
    [
        ({"tasks": []}, "tasks", "VALUE_NOT_ALLOWED"),
        ({"pool_id": "2"}, "pool_id", "VALUE_NOT_ALLOWED"),
        ({"overlap": 0}, "overlap", "VALUE_LESS_THAN_MIN"),
        ({"overlap": "2"}, "overlap", "VALUE_TYPE_MISMATCH"),
        ({"infinite_overlap": "yes"}, "infinite_overlap", "VALUE_TYPE_MISMATCH"),
        ({"infinite_overlap": True, "overlap": 2}, "infinite_overlap", "VALUE_NOT_ALLOWED"),
        ({"issuing_order_override": 100000}, "issuing_order_override", "VALUE_GREATER_THAN_MAX"),
    ],
)
def test_a_patch_of_other_fields_or_bad_values_is_a_400_validation_error(toloka, sandbox, body, field, code):
    created = new_suite(toloka, overlap=1)
    answer = patch_suite(toloka, created["id"], body)
    assert answer.status_code == 400
    refused = answer.json()
    assert refused["code"] == "VALIDATION_ERROR" and refused["request_id"]
    assert refused["payload"][field]["code"] == code
    assert sandbox.objects()["task_suites"] == [created]


def test_a_patch_body_that_is_not_an_object_is_a_400(toloka):
    created = new_suite(toloka)
    assert patch_suite(toloka, created["id"], [1]).json()["code"] == "VALIDATION_ERROR"
    bad = toloka.http.patch(
        f"/api/v1/task-suites/{created['id']}", content=b"{", headers={"Content-Type": "application/json"}
    )
    assert bad.status_code == 400
    plain = toloka.http.patch(f"/api/v1/task-suites/{created['id']}", content=b"{}")
    assert plain.status_code == 415


def test_patching_a_missing_suite_is_a_404_does_not_exist(toloka):
    for answer in (
        patch_suite(toloka, "00000003e9--000000000000000000000000", {"overlap": 2}),
        set_overlap(toloka, "00000003e9--000000000000000000000000", {"overlap": 0}),
    ):
        assert answer.status_code == 404 and answer.json()["code"] == "DOES_NOT_EXIST"


def test_a_patch_without_credentials_is_a_401(sandbox, toloka):
    created = new_suite(toloka)
    answer = httpx.patch(f"{sandbox.url}/api/v1/task-suites/{created['id']}", json={"overlap": 2})
    assert answer.status_code == 401 and answer.json()["code"] == "AUTHENTICATION_ERROR"


# --- Toloka: PATCH /api/v1/task-suites/{id}/set-overlap-or-min -----------------------------------------------


def test_set_overlap_or_min_on_an_untouched_suite_sets_the_value_asked(toloka, sandbox):
    created = new_suite(toloka, overlap=3)
    answer = set_overlap(toloka, created["id"], {"overlap": 0})
    assert answer.status_code == 200
    stopped = answer.json()
    assert (stopped["overlap"], stopped["remaining_overlap"]) == (0, 0)
    assert toloka.get(f"/task-suites/{created['id']}").json() == stopped
    assert sandbox.objects()["task_suites"] == [stopped]


def test_set_overlap_or_min_keeps_what_the_suites_progress_used(toloka, sandbox):
    created = new_suite(toloka, overlap=5)
    sandbox.patch_object("task_suites", created["id"], {"remaining_overlap": 3})  # two assignments done
    stopped = set_overlap(toloka, created["id"], {"overlap": 0}).json()
    assert (stopped["overlap"], stopped["remaining_overlap"]) == (2, 0)
    raised = set_overlap(toloka, created["id"], {"overlap": 4}).json()
    assert (raised["overlap"], raised["remaining_overlap"]) == (4, 2)
    listed = toloka.get("/task-suites", pool_id="1001").json()["items"]
    assert [(s["overlap"], s["remaining_overlap"]) for s in listed] == [(4, 2)]


def test_set_overlap_or_min_makes_an_infinite_suite_finite(toloka):
    created = new_suite(toloka, overlap=None, infinite_overlap=True)
    finite = set_overlap(toloka, created["id"], {"overlap": 0}).json()
    assert (finite["overlap"], finite["remaining_overlap"], finite["infinite_overlap"]) == (0, 0, False)


@pytest.mark.parametrize(
    ("body", "field"),
    [({}, "overlap"), ({"overlap": -1}, "overlap"), ({"overlap": 1.5}, "overlap"), ({"overlap": 1, "x": 1}, "x")],
)
def test_set_overlap_or_min_takes_only_an_overlap(toloka, sandbox, body, field):
    created = new_suite(toloka, overlap=2)
    answer = set_overlap(toloka, created["id"], body)
    assert answer.status_code == 400 and field in answer.json()["payload"]
    assert sandbox.objects()["task_suites"] == [created]


def test_suite_changes_are_counted_per_route(toloka, sandbox):
    created = new_suite(toloka)
    patch_suite(toloka, created["id"], {"overlap": 2})
    patch_suite(toloka, created["id"], {"tasks": []})
    set_overlap(toloka, created["id"], {"overlap": 0})
    routes = sandbox.stats()["routes"]
    assert routes[PATCH_ROUTE] == {"200": 1, "400": 1}
    assert routes[OVERLAP_ROUTE] == {"200": 1}


# --- kept across a restart -----------------------------------------------------------------------------------


def test_changes_and_deletes_survive_a_restart_on_a_data_file(tmp_path: Path, sandbox_factory):
    data = tmp_path / "remote.db"
    first = sandbox_factory(auto_create=True, data_path=data)
    cpts, toloka = PerfTestClient(first), TolokaClient(first)
    changed = cpts.create_task(name="before").json()["task_id"]
    gone = cpts.create_task(name="gone").json()["task_id"]
    put_task(cpts, changed, task_body(name="after"))
    delete_task(cpts, gone)
    patched, stopped = (new_suite(toloka, overlap=2)["id"] for _ in range(2))
    patch_suite(toloka, patched, {"overlap": 7})
    set_overlap(toloka, stopped, {"overlap": 0})
    first.server.stop()
    second = sandbox_factory(auto_create=True, data_path=data)
    cpts, toloka = PerfTestClient(second), TolokaClient(second)
    assert cpts.show_task(changed).json()["taskInfo"]["name"] == "after"
    assert cpts.show_task(gone).json()["code"] == MISSING
    assert [t["id"] for t in cpts.list_tasks(42).json()["tasks"]] == [changed]
    assert toloka.get(f"/task-suites/{patched}").json()["overlap"] == 7
    assert toloka.get(f"/task-suites/{stopped}").json()["overlap"] == 0
