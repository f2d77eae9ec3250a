"""Deleting what the manifests no longer hold (``apply --prune``) and everything they hold (``destroy``):
PerfTest tasks deleted, Toloka suites retired (overlap 0, as Toloka has no delete), each under an intent, and
``prevent_destroy`` refusing before anything is sent (real applies against the sandbox over HTTP)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from helpers.apply_project import Project, applied_project, make_project, tasks_yaml

TASKS, ROWS = 3, 4


@pytest.fixture
def applied(tmp_path: Path, sandbox: Any) -> Project:
    return applied_project(tmp_path, sandbox, tasks=TASKS, rows=ROWS)


def suites_by_row(proj: Project) -> dict[str, dict[str, Any]]:
    return {s["tasks"][0]["input_values"]["id"]: s for s in proj.sandbox.objects()["task_suites"]}


def task_names(proj: Project) -> list[str]:
    return sorted(t["name"] for t in proj.sandbox.objects()["perftest_tasks"])


def test_a_removed_task_and_removed_rows_are_only_reported_without_prune(applied: Project) -> None:
    applied.write("perftest/tasks.yaml", tasks_yaml(TASKS - 1))
    done = applied.apply()
    assert done.returncode == 0, done.stderr
    assert task_names(applied) == ["load-000", "load-001", "load-002"]
    assert "PerfTestTask/load-002" in applied.recorded()


def test_apply_prune_deletes_a_removed_task_and_retires_removed_suites(applied: Project) -> None:
    applied.write("perftest/tasks.yaml", tasks_yaml(TASKS - 1))
    rows = (applied.manifests / "toloka/data/reviews.jsonl").read_text().splitlines(keepends=True)
    applied.write("toloka/data/reviews.jsonl", "".join(rows[:2]))

    done = applied.run("apply", "manifests", "--prune", "--auto-approve")

    assert done.returncode == 0, done.stdout + done.stderr
    assert task_names(applied) == ["load-000", "load-001"]
    suites = suites_by_row(applied)
    assert [suites[k]["overlap"] for k in ("r00002", "r00003")] == [0, 0]  # retired: issued no more
    assert [suites[k]["overlap"] for k in ("r00000", "r00001")] == [2, 2]
    recorded = applied.recorded()
    assert {"PerfTestTask/load-002", "TaskSuiteSet/reviews/r00002", "TaskSuiteSet/reviews/r00003"}.isdisjoint(recorded)
    assert applied.run("plan", "manifests", "--prune", "--detailed-exitcode").returncode == 0
    assert "forgotten" in applied.run("state", "history").stdout


def test_a_delete_killed_after_its_call_is_finished_by_the_next_run(applied: Project) -> None:
    applied.write("perftest/tasks.yaml", tasks_yaml(TASKS - 1))
    killed = applied.run(
        "apply", "manifests", "--prune", "--auto-approve", extra_env={"RECONCILER_FAILPOINT": "after_send:1"}
    )
    assert killed.returncode == -9
    assert task_names(applied) == ["load-000", "load-001"]  # deleted, not yet recorded

    done = applied.run("apply", "manifests", "--prune", "--auto-approve")

    assert done.returncode == 0, done.stdout + done.stderr
    assert "PerfTestTask/load-002" not in applied.recorded()
    assert task_names(applied) == ["load-000", "load-001"]


def test_destroy_deletes_and_retires_everything_the_manifests_declare(applied: Project) -> None:
    done = applied.run("destroy", "manifests", "--auto-approve")
    assert done.returncode == 0, done.stdout + done.stderr
    assert task_names(applied) == []
    assert {s["overlap"] for s in suites_by_row(applied).values()} == {0}
    assert applied.recorded() == {}


def test_prevent_destroy_refuses_destroy_and_sends_nothing(applied: Project) -> None:
    manifest = (applied.manifests / "toloka/reviews.yaml").read_text()
    applied.write(
        "toloka/reviews.yaml",
        manifest.replace("metadata: {name: reviews}", "metadata: {name: reviews, lifecycle: {prevent_destroy: true}}"),
    )
    requests = applied.sandbox.stats()["total"]

    done = applied.run("destroy", "manifests", "--auto-approve")

    assert done.returncode == 1
    assert "TaskSuiteSet/reviews/r00000 has lifecycle.prevent_destroy set" in done.stderr
    assert "Traceback" not in done.stderr
    assert len(task_names(applied)) == TASKS and len(applied.recorded()) == TASKS + ROWS
    assert applied.sandbox.stats()["total"] == requests  # nothing sent


def test_prune_drops_a_removed_address_whose_create_failed(tmp_path: Path, sandbox: Any) -> None:
    proj = make_project(tmp_path, sandbox, tasks=2, rows=0)
    proj.sandbox.set_faults("400=1.0,routes=perftest,methods=POST")  # every create refused: recorded as failed
    assert proj.apply().returncode == 1
    assert {r.status.value for r in proj.recorded().values()} == {"failed"}
    proj.sandbox.set_faults(None)
    proj.write("perftest/tasks.yaml", tasks_yaml(1))

    done = proj.run("apply", "manifests", "--prune", "--auto-approve")

    assert done.returncode == 0, done.stdout + done.stderr
    assert "create failed, so there is no remote object" in done.stdout
    assert set(proj.recorded()) == {"PerfTestTask/load-000"}
    assert task_names(proj) == ["load-000"]
    assert proj.run("plan", "manifests", "--prune", "--detailed-exitcode").returncode == 0
