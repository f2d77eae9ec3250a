"""Changes the APIs make in place: a PerfTest task's body by ``PUT``, a suite's overlap by ``PATCH``, with an
intent before each call (real applies against the sandbox over HTTP, real kills)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from helpers.apply_project import Project, applied_project, tasks_yaml

TASKS, ROWS = 3, 6


@pytest.fixture
def applied(tmp_path: Path, sandbox: Any) -> Project:
    return applied_project(tmp_path, sandbox, tasks=TASKS, rows=ROWS)


def actions(proj: Project, *extra: str) -> list[tuple[str, str]]:
    done = proj.run("plan", "manifests", "--json", *extra)
    assert done.returncode == 0, done.stderr
    events = [json.loads(line) for line in done.stdout.splitlines()]
    return [(e["action"], e["address"]) for e in events if "action" in e]


def remote_tasks(proj: Project) -> dict[str, dict[str, Any]]:
    return {t["name"]: t for t in proj.sandbox.objects()["perftest_tasks"]}


def remote_suites(proj: Project) -> dict[str, dict[str, Any]]:
    return {s["tasks"][0]["input_values"]["id"]: s for s in proj.sandbox.objects()["task_suites"]}


def edit_case_list(proj: Project) -> None:
    proj.write("perftest/tasks.yaml", tasks_yaml(TASKS).replace("case_id_list: [2, 3]", "case_id_list: [2, 3, 9]"))


def case_ids(task: dict[str, Any]) -> list[int]:
    return task.get("case_id_list") or [c["case_id"] for c in task["case_list"]]


def test_an_edited_case_list_updates_the_task_in_place(applied: Project) -> None:
    before = remote_tasks(applied)
    edit_case_list(applied)
    assert actions(applied) == [("update", "PerfTestTask/load-001")]

    done = applied.apply()

    assert done.returncode == 0, done.stdout + done.stderr
    after = remote_tasks(applied)
    assert {n: t["id"] for n, t in after.items()} == {n: t["id"] for n, t in before.items()}
    assert case_ids(after["load-001"]) == [2, 3, 9]
    assert applied.recorded()["PerfTestTask/load-001"].remote_id == str(before["load-001"]["id"])
    assert actions(applied) == []
    assert applied.run("drift", "manifests").returncode == 0


def test_an_edited_overlap_patches_every_suite_of_the_set_in_place(applied: Project) -> None:
    before = {k: s["id"] for k, s in remote_suites(applied).items()}
    manifest = (applied.manifests / "toloka/reviews.yaml").read_text().replace("overlap: 2", "overlap: 4")
    applied.write("toloka/reviews.yaml", manifest)
    assert {a for a, _ in actions(applied)} == {"update"}

    done = applied.apply()

    assert done.returncode == 0, done.stdout + done.stderr
    after = remote_suites(applied)
    assert {k: s["id"] for k, s in after.items()} == before
    assert {s["overlap"] for s in after.values()} == {4}
    assert actions(applied) == []


def test_an_update_killed_after_its_intent_is_sent_once_by_the_next_run(applied: Project) -> None:
    edit_case_list(applied)
    killed = applied.apply(extra_env={"RECONCILER_FAILPOINT": "after_send:1"})
    assert killed.returncode == -9
    assert applied.recorded()["PerfTestTask/load-001"].status.value == "pending"

    done = applied.apply()

    assert done.returncode == 0, done.stdout + done.stderr
    tasks = remote_tasks(applied)
    assert len(tasks) == TASKS and case_ids(tasks["load-001"]) == [2, 3, 9]
    assert applied.recorded()["PerfTestTask/load-001"].status.value == "created"
    assert actions(applied) == []


def test_a_remote_change_the_manifest_can_put_back_is_updated_by_a_refreshed_apply(applied: Project) -> None:
    suite = remote_suites(applied)["r00002"]
    applied.sandbox.patch_object("task_suites", suite["id"], {"overlap": 9, "remaining_overlap": 9})
    assert actions(applied, "--refresh") == [("update", "TaskSuiteSet/reviews/r00002")]

    done = applied.run("apply", "manifests", "--refresh", "--auto-approve")

    assert done.returncode == 0, done.stdout + done.stderr
    assert remote_suites(applied)["r00002"]["overlap"] == 2
    assert applied.run("drift", "manifests").returncode == 0
