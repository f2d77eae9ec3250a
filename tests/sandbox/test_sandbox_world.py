"""The admin view of the world, seeds, and a sandbox that remembers across restarts."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
from helpers.sandbox_clients import PerfTestClient, TolokaClient, suite

from reconciler.sandbox import SandboxSeed, SandboxServer, SeedError


def test_objects_list_everything_the_apis_created(sandbox):
    PerfTestClient(sandbox).create_task(name="a", project_id=3)
    TolokaClient(sandbox).create([suite("77")])
    objects = sandbox.objects()
    assert set(objects) == {"perftest_tasks", "task_suites", "operations", "pools", "test_projects"}
    assert objects["perftest_tasks"][0]["name"] == "a" and objects["perftest_tasks"][0]["project_id"] == 3
    assert objects["task_suites"][0]["pool_id"] == "77"
    assert [p["id"] for p in objects["pools"]] == ["77"]  # auto-created
    assert [p["id"] for p in objects["test_projects"]] == [3]


def test_reset_forgets_created_objects_but_ids_keep_counting(sandbox):
    cpts = PerfTestClient(sandbox)
    before = cpts.create_task().json()["task_id"]
    sandbox.reset()
    assert sandbox.objects()["perftest_tasks"] == []
    assert sandbox.stats()["total"] == 0  # admin calls are not API traffic
    assert cpts.create_task().json()["task_id"] > before


def test_deleting_a_task_behind_the_tools_back_makes_it_gone(sandbox):
    cpts = PerfTestClient(sandbox)
    task_id = cpts.create_task().json()["task_id"]
    sandbox.delete_object("perftest_tasks", task_id)
    assert cpts.show_task(task_id).json()["code"] == "SVCSTG.CPTS.4032002"
    assert cpts.list_tasks(42).json()["tasks"] == []


def test_patching_objects_shows_as_drift(sandbox):
    cpts = PerfTestClient(sandbox)
    task_id = cpts.create_task(name="before").json()["task_id"]
    sandbox.patch_object("perftest_tasks", task_id, {"name": "after", "id": 1})
    assert cpts.show_task(task_id).json()["taskInfo"]["name"] == "after"
    toloka = TolokaClient(sandbox)
    suite_id = toloka.create([suite()]).json()["items"]["0"]["id"]
    sandbox.patch_object("task_suites", suite_id, {"overlap": 9})
    assert toloka.get(f"/task-suites/{suite_id}").json()["overlap"] == 9
    sandbox.delete_object("task_suites", suite_id)
    assert toloka.get(f"/task-suites/{suite_id}").status_code == 404


def test_changing_a_missing_object_is_404(sandbox):
    answer = httpx.patch(f"{sandbox.url}/_sandbox/objects/perftest_tasks/1", json={"name": "x"})
    assert answer.status_code == 404
    assert httpx.delete(f"{sandbox.url}/_sandbox/objects/planets/1").status_code == 404


def test_a_seed_file_sets_pools_projects_and_credentials(tmp_path, sandbox_factory):
    seed_file = tmp_path / "seed.yaml"
    seed_file.write_text(
        "pools: [{id: 55, default_overlap: 2, status: OPEN}]\n"
        "test_projects: [{id: 8, name: eight}]\n"
        "credentials: {access_key: AK2, secret_key: SK2, toloka_tokens: [tok-2]}\n"
    )
    seed = SandboxSeed.from_yaml(seed_file)
    sandbox = sandbox_factory(seed=seed)
    assert sandbox.access_key == "AK2" and sandbox.toloka_token == "tok-2"
    assert PerfTestClient(sandbox).create_task(project_id=8).status_code == 201
    assert PerfTestClient(sandbox).create_task(project_id=9).status_code == 403
    created = TolokaClient(sandbox).create([suite("55", overlap=None)], allow_defaults=True)
    assert created.json()["items"]["0"]["overlap"] == 2
    assert TolokaClient(sandbox, token="sandbox-token").get("/task-suites").status_code == 401
    sandbox.reset()
    assert [p["id"] for p in sandbox.objects()["pools"]] == ["55"]


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("pools: [{default_overlap: 2}]", "pools[0] must be a mapping with at least an id"),
        ("pools: [{id: 1, status: SLEEPING}]", "pools[0].status"),
        ("test_projects: [{id: x, name: y}]", "test_projects[0].id"),
        ("credentials: {cloud_project_id: nope}", "32 lower-case hex"),
        ("colours: []", "unknown seed key"),
        ("pools: [", "not valid YAML"),
    ],
)
def test_a_bad_seed_file_is_a_seed_error_naming_the_file_and_field(tmp_path, text, fragment):
    seed_file = tmp_path / "seed.yaml"
    seed_file.write_text(text)
    with pytest.raises(SeedError) as caught:
        SandboxSeed.from_yaml(seed_file)
    assert str(caught.value).startswith(str(seed_file)) and fragment in str(caught.value)


def test_restarted_sandbox_remembers_what_it_created(tmp_path: Path, sandbox_factory):
    data = tmp_path / "remote.db"
    first = sandbox_factory(auto_create=True, data_path=data)
    task_id = PerfTestClient(first).create_task(name="kept").json()["task_id"]
    suite_id = TolokaClient(first).create([suite("12")]).json()["items"]["0"]["id"]
    first.server.stop()
    second = sandbox_factory(auto_create=True, data_path=data)
    cpts, toloka = PerfTestClient(second), TolokaClient(second)
    assert cpts.show_task(task_id).json()["taskInfo"]["name"] == "kept"
    assert toloka.get(f"/task-suites/{suite_id}").status_code == 200
    assert cpts.create_task().json()["task_id"] == task_id + 1  # counters survive too
    newer = toloka.create([suite("12")]).json()["items"]["0"]["id"]
    assert newer > suite_id


def test_an_operation_accepted_before_a_restart_finishes_after_it(tmp_path: Path, sandbox_factory):
    data = tmp_path / "remote.db"
    operation_id = "0b5c3b0e-6a49-4d47-9c5e-1f6c1f0f6d11"
    first = sandbox_factory(auto_create=True, data_path=data, operation_base_s=0.5)
    answer = TolokaClient(first).create([suite("4")] * 3, async_mode=True, operation_id=operation_id)
    assert answer.json()["status"] == "PENDING"
    first.server.stop()
    time.sleep(0.6)
    toloka = TolokaClient(sandbox_factory(auto_create=True, data_path=data))
    assert toloka.get(f"/operations/{operation_id}").json()["status"] == "SUCCESS"
    assert len(toloka.get("/task-suites", pool_id="4").json()["items"]) == 3
    again = toloka.create([suite("4")] * 3, async_mode=True, operation_id=operation_id)
    assert again.status_code == 409


def test_reset_with_a_data_file_empties_the_file_too(tmp_path: Path, sandbox_factory):
    data = tmp_path / "remote.db"
    first = sandbox_factory(auto_create=True, data_path=data)
    PerfTestClient(first).create_task()
    first.reset()
    first.server.stop()
    assert sandbox_factory(auto_create=True, data_path=data).objects()["perftest_tasks"] == []


def test_a_port_in_use_fails_in_the_callers_thread(sandbox):
    port = int(sandbox.url.rsplit(":", 1)[1])
    with pytest.raises(OSError):
        SandboxServer(port=port).start()
