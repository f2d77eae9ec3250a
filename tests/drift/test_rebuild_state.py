"""A lost state rebuilt from the remote, refreshed plans, and `state refresh`: real applies against the
sandbox over HTTP, objects deleted, copied and edited behind the tool's back through its admin routes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from helpers.apply_project import Project, applied_project
from helpers.sandbox_clients import PerfTestClient, TolokaClient

from reconciler.providers.toloka import batch_request
from reconciler.state import open_store

TASKS, ROWS = 4, 12


@pytest.fixture
def applied(tmp_path: Path, sandbox: Any) -> Project:
    return applied_project(tmp_path, sandbox, tasks=TASKS, rows=ROWS)


def remote_ids(proj: Project) -> dict[str, str | None]:
    return {address: summary.remote_id for address, summary in proj.recorded().items()}


def object_count(proj: Project) -> int:
    objects = proj.sandbox.objects()
    return len(objects["perftest_tasks"]) + len(objects["task_suites"])


def lose_state(proj: Project) -> None:
    for path in proj.state_file.parent.glob(proj.state_file.name + "*"):
        path.unlink()


def spec_of(proj: Project, address: str) -> dict[str, Any]:
    store = open_store(str(proj.state_file), workspace="default", root=proj.root)
    try:
        record = store.get(address=address)
        assert record is not None
        return record.spec
    finally:
        store.close()


def copy_remotely(proj: Project, address: str) -> None:
    """Make a second remote object holding exactly what apply sent for ``address``, as a person might."""
    spec = spec_of(proj, address)
    if address.startswith("PerfTestTask/"):
        made = PerfTestClient(proj.sandbox).request("POST", f"/v3/{proj.sandbox.cloud_project_id}/tasks", body=spec)
    else:
        items, options = batch_request([spec])
        made = TolokaClient(proj.sandbox).create(items, **options)
    assert made.status_code in (200, 201), made.text


def test_a_lost_state_is_rebuilt_by_discovery_to_the_same_ids_and_nothing_is_created(applied: Project) -> None:
    before, objects = remote_ids(applied), object_count(applied)
    lose_state(applied)

    done = applied.run("state", "import", "--discover", "manifests")

    assert done.returncode == 0, done.stderr
    assert f"Adopted {TASKS + ROWS} remote objects" in done.stdout
    assert remote_ids(applied) == before
    plan = applied.run("plan", "manifests", "--detailed-exitcode")
    assert plan.returncode == 0, plan.stdout + plan.stderr
    assert "No changes" in plan.stdout
    assert object_count(applied) == objects
    history = applied.run("state", "history")
    assert history.stdout.count("imported") == TASKS + ROWS


def test_two_remote_objects_matching_one_resource_are_reported_and_adopted_by_neither(applied: Project) -> None:
    copy_remotely(applied, "PerfTestTask/load-001")
    copy_remotely(applied, "TaskSuiteSet/reviews/r00002")
    before, objects = remote_ids(applied), object_count(applied)
    lose_state(applied)

    done = applied.run("state", "import", "--discover", "manifests")

    assert done.returncode == 0, done.stderr
    assert "PerfTestTask/load-001: 2 remote objects match it exactly" in done.stderr
    assert "TaskSuiteSet/reviews/r00002: 2 remote objects match it exactly" in done.stderr
    rebuilt = remote_ids(applied)
    assert set(before) - set(rebuilt) == {"PerfTestTask/load-001", "TaskSuiteSet/reviews/r00002"}
    assert all(rebuilt[a] == before[a] for a in rebuilt)
    assert object_count(applied) == objects
    refreshed = applied.run("plan", "manifests", "--refresh")
    assert refreshed.returncode == 1
    assert "PerfTestTask/load-001 matches 2 remote objects exactly" in refreshed.stderr


def test_an_object_edited_remotely_is_not_adopted_as_the_resource(applied: Project) -> None:
    suites = {s["tasks"][0]["input_values"]["id"]: s for s in applied.sandbox.objects()["task_suites"]}
    applied.sandbox.patch_object("task_suites", suites["r00004"]["id"], {"overlap": 9})
    lose_state(applied)
    done = applied.run("state", "import", "--discover", "manifests")
    assert done.returncode == 0, done.stderr
    assert "TaskSuiteSet/reviews/r00004" not in remote_ids(applied)
    assert len(remote_ids(applied)) == TASKS + ROWS - 1


def test_a_refreshed_plan_shows_imports_and_applying_it_records_them_without_creating(applied: Project) -> None:
    before, objects = remote_ids(applied), object_count(applied)
    lose_state(applied)

    plan = applied.run("plan", "manifests", "--refresh", "--out", "plan.json", "--json")
    assert plan.returncode == 0, plan.stderr
    kinds = [json.loads(line).get("action") for line in plan.stdout.splitlines()]
    assert kinds.count("import") == TASKS + ROWS and "create" not in kinds

    done = applied.run("apply", "plan.json", "--auto-approve")
    assert done.returncode == 0, done.stdout + done.stderr
    assert remote_ids(applied) == before
    assert object_count(applied) == objects
    assert applied.run("drift", "manifests").returncode == 0


def test_apply_refuses_a_planned_import_the_remote_no_longer_matches(applied: Project) -> None:
    lose_state(applied)
    plan = applied.run("plan", "manifests", "--refresh", "--out", "plan.json")
    assert plan.returncode == 0, plan.stderr
    tasks = {t["name"]: t for t in applied.sandbox.objects()["perftest_tasks"]}
    applied.sandbox.patch_object("perftest_tasks", tasks["load-000"]["id"], {"parallel": False})
    objects = object_count(applied)
    done = applied.run("apply", "plan.json", "--auto-approve")
    assert done.returncode == 1
    assert "cannot import PerfTestTask/load-000 as the plan says" in done.stderr
    assert object_count(applied) == objects


def test_an_object_gone_remotely_is_planned_again_by_refresh_and_created_once(applied: Project) -> None:
    tasks = {t["name"]: t for t in applied.sandbox.objects()["perftest_tasks"]}
    applied.sandbox.delete_object("perftest_tasks", tasks["load-002"]["id"])
    assert applied.run("plan", "manifests", "--detailed-exitcode").returncode == 0  # the state alone cannot know

    plan = applied.run("plan", "manifests", "--refresh", "--detailed-exitcode")
    assert plan.returncode == 2, plan.stdout + plan.stderr
    assert "-/+ PerfTestTask/load-002" in plan.stdout and "deleted remotely" in plan.stdout

    done = applied.run("apply", "manifests", "--refresh", "--auto-approve")
    assert done.returncode == 0, done.stdout + done.stderr
    names = [t["name"] for t in applied.sandbox.objects()["perftest_tasks"]]
    assert sorted(names) == sorted(f"load-{n:03d}" for n in range(TASKS))
    assert applied.run("drift", "manifests").returncode == 0


def test_state_refresh_records_what_was_read_with_a_journal_entry(applied: Project) -> None:
    suites = {s["tasks"][0]["input_values"]["id"]: s for s in applied.sandbox.objects()["task_suites"]}
    applied.sandbox.patch_object("task_suites", suites["r00007"]["id"], {"remaining_overlap": 1})
    applied.sandbox.delete_object("task_suites", suites["r00008"]["id"])

    done = applied.run("state", "refresh", "manifests")

    assert done.returncode == 0, done.stderr
    assert "TaskSuiteSet/reviews/r00008: gone remotely" in done.stdout
    assert f"Refreshed {TASKS + ROWS} objects: 1 gone" in done.stdout
    shown = json.loads(applied.run("state", "show", "TaskSuiteSet/reviews/r00007").stdout)
    assert shown["remote"]["remaining_overlap"] == 1 and shown["refreshed_at"]
    assert "refreshed" in applied.run("state", "history").stdout


def test_apply_refresh_after_a_lost_state_imports_instead_of_creating(applied: Project) -> None:
    before, objects = remote_ids(applied), object_count(applied)
    lose_state(applied)

    done = applied.run("apply", "manifests", "--refresh", "--auto-approve")

    assert done.returncode == 0, done.stdout + done.stderr
    assert remote_ids(applied) == before
    assert object_count(applied) == objects
