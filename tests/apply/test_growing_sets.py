"""Rows appended to a data file only ever add suites: a created suite keeps the rows it was created with, even
a trailing one that had fewer than ``tasks_per_suite`` rows (real applies against the sandbox over HTTP)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from helpers.apply_project import Project, make_project
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

PER_SUITE = 5
MANIFEST = f"""\
apiVersion: reconciler/v1
kind: TaskSuiteSet
metadata: {{name: batches}}
spec:
  source: data/batches.jsonl
  key: id
  tasks_per_suite: {PER_SUITE}
  template: {{pool_id: "5001", overlap: 2}}
"""


def write_rows(proj: Project, count: int) -> None:
    rows = "".join(json.dumps({"id": f"b{n:05d}", "text": f"row {n}"}) + "\n" for n in range(count))
    proj.write("toloka/data/batches.jsonl", rows)


def plan_actions(proj: Project) -> list[str]:
    done = proj.run("plan", "manifests", "--json")
    assert done.returncode == 0, done.stderr
    return [event["action"] for line in done.stdout.splitlines() if "action" in (event := json.loads(line))]


def rows_in_the_sandbox(proj: Project) -> list[str]:
    return sorted(t["input_values"]["id"] for s in proj.sandbox.objects()["task_suites"] for t in s["tasks"])


def grown_project(tmp_path: Path, sandbox: Any) -> Project:
    proj = make_project(tmp_path, sandbox, tasks=0, rows=0)
    proj.write("toloka/batches.yaml", MANIFEST)
    return proj


def test_appending_rows_to_a_set_with_a_short_last_suite_plans_only_creates(tmp_path: Path, sandbox: Any) -> None:
    proj = grown_project(tmp_path, sandbox)
    write_rows(proj, 1002)
    assert proj.apply().returncode == 0
    write_rows(proj, 1002 + 1003)

    actions = plan_actions(proj)

    assert set(actions) == {"create"}, actions
    done = proj.apply()
    assert done.returncode == 0, done.stdout + done.stderr
    rows = rows_in_the_sandbox(proj)
    assert rows == sorted(f"b{n:05d}" for n in range(2005))  # every row once: none sent twice, none left out
    assert plan_actions(proj) == []
    assert proj.run("plan", "manifests", "--detailed-exitcode").returncode == 0


@settings(max_examples=3, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.integers(1, 7), min_size=2, max_size=3))
def test_rows_appended_a_few_at_a_time_are_each_sent_once(
    tmp_path_factory: Any, sandbox: Any, steps: list[int]
) -> None:
    sandbox.reset()
    proj = grown_project(tmp_path_factory.mktemp("grow"), sandbox)
    total = 3
    write_rows(proj, total)
    assert proj.apply().returncode == 0
    for step in steps:
        total += step
        write_rows(proj, total)
        assert set(plan_actions(proj)) <= {"create"}
        done = proj.apply()
        assert done.returncode == 0, done.stdout + done.stderr
    assert rows_in_the_sandbox(proj) == sorted(f"b{n:05d}" for n in range(total))
    assert plan_actions(proj) == []


def test_an_edited_row_is_still_a_change_of_its_suite(tmp_path: Path, sandbox: Any) -> None:
    proj = grown_project(tmp_path, sandbox)
    write_rows(proj, 12)
    assert proj.apply().returncode == 0
    rows = (proj.manifests / "toloka/data/batches.jsonl").read_text().replace('"row 11"', '"row eleven"')
    proj.write("toloka/data/batches.jsonl", rows)
    assert plan_actions(proj) == ["change"]
