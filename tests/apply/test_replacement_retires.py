"""A replacement leaves one live object: the new one is created, then the one it replaces deleted (a PerfTest
task) or retired (a Toloka suite, overlap 0), under the create's own intent, so a run killed in between is
finished by the next (real applies against the sandbox over HTTP, real kills)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from helpers.apply_project import Project, applied_project

ROWS = 4


@pytest.fixture
def applied(tmp_path: Path, sandbox: Any) -> Project:
    return applied_project(tmp_path, sandbox, tasks=0, rows=ROWS, batch_size=2)


def edit_texts(proj: Project) -> None:
    data = proj.manifests / "toloka/data/reviews.jsonl"
    data.write_text(data.read_text().replace("review number", "review no."))


def suites_of(proj: Project, row: str) -> list[dict[str, Any]]:
    return [s for s in proj.sandbox.objects()["task_suites"] if s["tasks"][0]["input_values"]["id"] == row]


def live(proj: Project) -> list[dict[str, Any]]:
    return [s for s in proj.sandbox.objects()["task_suites"] if s["overlap"] > 0]


def test_a_replaced_suite_is_retired_once_its_replacement_exists(applied: Project) -> None:
    old = {s["tasks"][0]["input_values"]["id"]: s["id"] for s in applied.sandbox.objects()["task_suites"]}
    edit_texts(applied)

    done = applied.apply("--replace", "TaskSuiteSet/reviews")

    assert done.returncode == 0, done.stdout + done.stderr
    recorded = applied.recorded()
    for row, old_id in old.items():
        suites = {s["id"]: s for s in suites_of(applied, row)}
        new_id = recorded[f"TaskSuiteSet/reviews/{row}"].remote_id
        assert set(suites) == {old_id, new_id} and suites[old_id]["overlap"] == 0 and suites[new_id]["overlap"] == 2
    assert len(live(applied)) == ROWS


@pytest.mark.parametrize("failpoint", ["after_send:1", "after_outcome:1", "before_send:2"])
def test_a_replacement_killed_midway_ends_with_one_live_suite_per_row(applied: Project, failpoint: str) -> None:
    edit_texts(applied)
    killed = applied.apply("--replace", "TaskSuiteSet/reviews", extra_env={"RECONCILER_FAILPOINT": failpoint})
    assert killed.returncode == -9

    done = applied.apply()  # settles what the killed run left open; the rest is a change, refused
    assert "--replace" in done.stdout + done.stderr or done.returncode == 0, done.stdout + done.stderr
    done = applied.apply("--replace", "TaskSuiteSet/reviews")
    assert done.returncode == 0, done.stdout + done.stderr

    rows = sorted(s["tasks"][0]["input_values"]["id"] for s in live(applied))
    assert rows == [f"r{n:05d}" for n in range(ROWS)]  # one live suite per row: never two, never none
    texts = {s["tasks"][0]["input_values"]["text"] for s in live(applied)}
    assert all(text.startswith("review no.") for text in texts)
    assert applied.run("plan", "manifests", "--detailed-exitcode").returncode == 0
