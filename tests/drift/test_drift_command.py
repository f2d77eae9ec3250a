"""`reconciler drift` as a cron job runs it: a real apply against the sandbox, then objects deleted, edited
and worked on behind the tool's back through the sandbox's admin routes, then `drift` over real HTTP."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from helpers.apply_project import Project, applied_project, make_project

from reconciler.state import open_store

TASKS, ROWS = 4, 12


@pytest.fixture
def applied(tmp_path: Path, sandbox: Any) -> Project:
    return applied_project(tmp_path, sandbox, tasks=TASKS, rows=ROWS)


def drift_json(proj: Project, *extra: str) -> tuple[int, dict[str, Any]]:
    done = proj.run("drift", "manifests", "--json", *extra)
    assert done.stdout.strip(), done.stderr
    return done.returncode, json.loads(done.stdout)


def state_bytes(proj: Project) -> bytes:
    """The state file's bytes, once sure that nothing waits beside it in a -wal (a reader may leave an empty
    one, and the -shm index, which hold no state)."""
    wal = proj.state_file.with_name(proj.state_file.name + "-wal")
    assert not wal.exists() or wal.stat().st_size == 0
    return proj.state_file.read_bytes()


def remote_objects(proj: Project) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """The sandbox's tasks by name and suites by their row's id."""
    objects = proj.sandbox.objects()
    tasks = {t["name"]: t for t in objects["perftest_tasks"]}
    suites = {s["tasks"][0]["input_values"]["id"]: s for s in objects["task_suites"]}
    return tasks, suites


def test_drift_after_apply_is_in_sync_and_leaves_the_state_byte_identical(applied: Project) -> None:
    before = state_bytes(applied)
    status, report = drift_json(applied)
    assert status == 0, report
    assert report["in_sync"] and report["findings"] == [] and report["fingerprint"] == ""
    assert report["read"] == TASKS + ROWS
    text = applied.run("drift", "manifests")
    assert text.returncode == 0 and "No drift" in text.stdout
    assert state_bytes(applied) == before


def test_drift_reports_exactly_what_was_deleted_and_edited_remotely(applied: Project) -> None:
    tasks, suites = remote_objects(applied)
    sandbox = applied.sandbox
    sandbox.delete_object("perftest_tasks", tasks["load-001"]["id"])
    sandbox.delete_object("task_suites", suites["r00003"]["id"])
    sandbox.patch_object("task_suites", suites["r00005"]["id"], {"overlap": 7})
    sandbox.patch_object("perftest_tasks", tasks["load-002"]["id"], {"parallel": False})
    before = state_bytes(applied)

    status, report = drift_json(applied)

    assert status == 2, report
    found = {(f["type"], f["address"], f["path"]) for f in report["findings"]}
    assert found == {
        ("gone", "PerfTestTask/load-001", None),
        ("gone", "TaskSuiteSet/reviews/r00003", None),
        ("changed", "TaskSuiteSet/reviews/r00005", "overlap"),
        ("changed", "PerfTestTask/load-002", "parallel"),
    }
    changed = next(f for f in report["findings"] if f["path"] == "overlap")
    assert (changed["sent"], changed["remote"], changed["remote_id"]) == (2, 7, suites["r00005"]["id"])
    assert report["summary"] == {"changed": 2, "gone": 2, "unreadable": 0, "unapplied": 0}
    assert state_bytes(applied) == before


def test_fingerprints_stay_the_same_while_the_drift_does_and_change_with_new_drift(applied: Project) -> None:
    tasks, suites = remote_objects(applied)
    applied.sandbox.patch_object("task_suites", suites["r00001"]["id"], {"overlap": 5})
    _, first = drift_json(applied)
    _, again = drift_json(applied)
    assert [f["fingerprint"] for f in first["findings"]] == [f["fingerprint"] for f in again["findings"]]
    assert first["fingerprint"] == again["fingerprint"] != ""
    applied.sandbox.delete_object("perftest_tasks", tasks["load-000"]["id"])
    _, more = drift_json(applied)
    assert more["fingerprint"] != first["fingerprint"]
    assert {f["fingerprint"] for f in first["findings"]} < {f["fingerprint"] for f in more["findings"]}


def test_suites_being_worked_on_pools_opened_and_closed_and_tasks_run_are_not_drift(applied: Project) -> None:
    tasks, suites = remote_objects(applied)
    sandbox = applied.sandbox
    for n, suite in enumerate(suites.values()):
        sandbox.patch_object("task_suites", suite["id"], {"remaining_overlap": n % 3})
    sandbox.patch_object("pools", "5001", {"status": "OPEN"})
    for task in tasks.values():
        sandbox.patch_object("perftest_tasks", task["id"], {"run_status": 2, "update_time": "2026-12-02T10:00:00Z"})
    assert drift_json(applied)[0] == 0
    sandbox.patch_object("pools", "5001", {"status": "CLOSED"})
    status, report = drift_json(applied)
    assert status == 0, report


def test_manifest_changes_not_yet_applied_are_drift(applied: Project) -> None:
    applied.write(
        "perftest/extra.yaml",
        "apiVersion: reconciler/v1\nkind: PerfTestTask\nmetadata: {name: extra}\n"
        "spec: {project_id: 101, parallel: true, case_id_list: [1]}\n",
    )
    status, report = drift_json(applied)
    assert status == 2
    assert [(f["type"], f["address"], f["action"]) for f in report["findings"]] == [
        ("unapplied", "PerfTestTask/extra", "create")
    ]


def test_drift_runs_while_another_run_holds_the_lock(applied: Project) -> None:
    store = open_store(str(applied.state_file), workspace="default", root=applied.root)
    try:
        store.acquire_lock(holder="someone else's apply", operation="apply", ttl=600)
        status, report = drift_json(applied)
        assert status == 0, report
        assert store.current_lock() is not None and store.current_lock().holder == "someone else's apply"
    finally:
        store.close()


def test_an_object_that_cannot_be_read_is_an_error_never_gone_or_in_sync(applied: Project) -> None:
    applied.sandbox.set_faults("200=1.0,methods=GET")  # every read answers success in the API's error shape
    done = applied.run("drift", "manifests", "--json")
    report = json.loads(done.stdout)
    assert done.returncode == 1, done.stderr
    assert report["summary"]["unreadable"] == TASKS + ROWS
    assert report["summary"]["gone"] == 0 and report["summary"]["changed"] == 0


def test_markdown_report_has_a_table_the_findings_and_the_fingerprint(applied: Project) -> None:
    tasks, _ = remote_objects(applied)
    applied.sandbox.delete_object("perftest_tasks", tasks["load-003"]["id"])
    done = applied.run("drift", "manifests", "--format", "markdown")
    assert done.returncode == 2, done.stderr
    _, report = drift_json(applied)
    assert "| finding | objects | fields |" in done.stdout
    assert "<code>PerfTestTask/load-003</code>" in done.stdout
    assert f"<!-- drift-fingerprint: {report['fingerprint']} -->" in done.stdout


def test_drift_without_a_state_is_an_error_saying_so(tmp_path: Path, sandbox: Any) -> None:
    proj = make_project(tmp_path, sandbox, tasks=1, rows=0)
    done = proj.run("drift", "manifests")
    assert done.returncode == 1
    assert "no state" in done.stderr and "Traceback" not in done.stderr
    assert not proj.state_file.exists()
