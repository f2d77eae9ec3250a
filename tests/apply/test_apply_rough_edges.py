"""`reconciler apply` on rough edges found in use (issue 10): what a set's address means to --replace, what a
replacement says of the task it replaces, and one failure cause over thousands of suites.

Real subprocesses, real HTTP to the sandbox, a real SQLite state, as in ``test_apply.py``."""

from __future__ import annotations

import json
import re
from collections.abc import Callable

import httpx
import pytest
from helpers.apply_project import Project

# --- --replace of a set ---------------------------------------------------------------------------------------


def test_replace_of_a_set_address_replaces_every_suite_of_the_set(project: Callable[..., Project]) -> None:
    proj = project(tasks=1, rows=12, batch_size=5)
    assert proj.apply().returncode == 0
    before = proj.recorded()

    done = proj.apply("--replace", "TaskSuiteSet/reviews")

    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 to create, 12 to replace" in done.stdout
    after = proj.recorded()
    suites = [a for a in after if a.startswith("TaskSuiteSet/reviews/")]
    assert len(suites) == 12
    assert all(after[a].remote_id != before[a].remote_id for a in suites)
    assert after["PerfTestTask/load-000"].remote_id == before["PerfTestTask/load-000"].remote_id
    assert len(proj.sandbox.objects()["task_suites"]) == 24


def test_plan_replace_of_a_set_lists_a_replacement_per_suite(project: Callable[..., Project]) -> None:
    proj = project(tasks=0, rows=3)
    assert proj.apply().returncode == 0

    done = proj.run("plan", "manifests", "--replace", "TaskSuiteSet/reviews")

    assert done.returncode == 0, done.stdout + done.stderr
    assert [line.split(" (")[0] for line in done.stdout.splitlines() if line.startswith("  -/+ ")] == [
        f"  -/+ TaskSuiteSet/reviews/r{n:05d}" for n in range(3)
    ]


@pytest.mark.parametrize("command", ["plan", "apply"])
def test_replace_of_an_address_that_matches_nothing_is_an_error_and_sends_nothing(
    project: Callable[..., Project], command: str
) -> None:
    proj = project(tasks=1, rows=3)
    assert proj.apply().returncode == 0
    objects = proj.sandbox.objects()

    extra = ("--auto-approve",) if command == "apply" else ()
    done = proj.run(command, "manifests", *extra, "--replace", "TaskSuiteSet/review")

    assert done.returncode == 1, done.stdout + done.stderr
    assert "--replace TaskSuiteSet/review: no such resource in the manifests (did you mean TaskSuiteSet/reviews?)" in (
        done.stderr
    )
    assert proj.sandbox.objects() == objects


def test_replace_outside_the_target_is_an_error_not_a_silent_no_op(project: Callable[..., Project]) -> None:
    proj = project(tasks=1, rows=3)
    assert proj.apply().returncode == 0

    done = proj.apply("--target", "PerfTestTask/load-000", "--replace", "TaskSuiteSet/reviews")

    assert done.returncode == 1, done.stdout + done.stderr
    assert "--replace TaskSuiteSet/reviews: not among the addresses --target selects" in done.stderr


# --- what a PerfTest replacement says -----------------------------------------------------------------------------


def test_replacing_a_task_deletes_the_old_one_and_warns_of_no_task_of_its_own(
    project: Callable[..., Project],
) -> None:
    proj = project(tasks=1, rows=0)
    assert proj.apply().returncode == 0
    first = proj.recorded()["PerfTestTask/load-000"].remote_id

    replaced = proj.apply("--replace", "PerfTestTask/load-000")

    assert replaced.returncode == 0, replaced.stdout + replaced.stderr
    assert "did not create" not in replaced.stdout + replaced.stderr and "stays" not in replaced.stdout
    second = proj.recorded()["PerfTestTask/load-000"].remote_id
    assert [str(t["id"]) for t in proj.sandbox.objects()["perftest_tasks"]] == [second]

    again = proj.apply("--replace", "PerfTestTask/load-000")

    assert again.returncode == 0, again.stdout + again.stderr
    assert "did not create" not in again.stdout + again.stderr and "stay" not in again.stdout
    third = proj.recorded()["PerfTestTask/load-000"].remote_id
    assert [str(t["id"]) for t in proj.sandbox.objects()["perftest_tasks"]] == [third]
    assert len({first, second, third}) == 3


def test_replacing_a_task_still_warns_of_a_same_named_task_someone_else_made(project: Callable[..., Project]) -> None:
    proj = project(tasks=1, rows=0)
    assert proj.apply().returncode == 0
    ours = proj.recorded()["PerfTestTask/load-000"].remote_id
    body = {"name": "load-000", "parallel": False, "project_id": 101, "operate_mode": 2, "case_id_list": [9]}
    created = httpx.post(
        f"{proj.sandbox.url}/v3/{proj.sandbox.cloud_project_id}/tasks", json=body, headers=proj.sandbox.perftest_headers
    )
    foreign = str(created.json()["task_id"])

    replaced = proj.apply("--replace", "PerfTestTask/load-000")

    assert replaced.returncode == 0, replaced.stdout + replaced.stderr
    remaining = {str(t["id"]) for t in proj.sandbox.objects()["perftest_tasks"]}
    assert ours not in remaining and foreign in remaining  # ours replaced and deleted, theirs left alone
    assert (
        f"test project 101 already has a task named 'load-000' (id {foreign}) that this state did not create for "
        "this address" in replaced.stdout
    )


# --- one failure cause, many suites -------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [401, 403])
def test_one_failure_cause_over_many_suites_is_one_line_with_a_count(
    project: Callable[..., Project], status: int
) -> None:
    proj = project(tasks=0, rows=150, batch_size=10)
    proj.sandbox.set_faults(f"{status}=1.0,routes=toloka")

    done = proj.apply()

    assert done.returncode == 1, done.stdout + done.stderr
    failures = [line for line in done.stdout.splitlines() if line.startswith("  x ")]
    assert len(failures) == 2, "\n".join(failures)
    first, folded = failures
    assert re.fullmatch(rf"  x TaskSuiteSet/reviews/r\d{{5}}: failed: .* \[request id \w+\] \({status} \w+\)", first)
    cause = re.sub(r" \[request id \w+\]", "", first.split(": failed: ", 1)[1])
    examples = r"TaskSuiteSet/reviews/r\d{5}, TaskSuiteSet/reviews/r\d{5}, TaskSuiteSet/reviews/r\d{5}, \.\.\."
    assert re.fullmatch(rf"  x 149 more \({examples}; -v lists every one\): failed: {re.escape(cause)}", folded)
    assert "Apply finished with errors: 0 created, 150 failed." in done.stdout


def test_with_json_one_failure_cause_is_still_one_event_per_suite(project: Callable[..., Project]) -> None:
    proj = project(tasks=0, rows=150, batch_size=10)
    proj.sandbox.set_faults("401=1.0,routes=toloka")

    done = proj.apply("--json")

    assert done.returncode == 1, done.stdout + done.stderr
    events = [json.loads(line) for line in done.stdout.splitlines()]
    failed = [e["address"] for e in events if e["type"] == "apply_failed"]
    assert sorted(failed) == [f"TaskSuiteSet/reviews/r{n:05d}" for n in range(150)]
    assert events[-1]["type"] == "apply_summary" and events[-1]["failed"] == 150


# --- an endpoint nothing listens on -------------------------------------------------------------------------


def test_an_endpoint_that_refuses_the_first_connection_stops_apply_with_nothing_sent_or_left_open(
    project: Callable[..., Project],
) -> None:
    import socket

    with socket.socket() as probe:  # a loopback port that was free a moment ago: nothing listens on it
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proj = project(tasks=0, rows=12, batch_size=5)

    done = proj.apply(extra_env={"RECONCILER_TOLOKA_ENDPOINT": f"http://127.0.0.1:{port}"})

    assert done.returncode == 1, done.stdout + done.stderr
    assert f"127.0.0.1:{port}" in done.stdout + done.stderr
    assert "Stopped:" in done.stdout
    assert "0 created, 12 failed" in done.stdout
    assert proj.sandbox.objects()["task_suites"] == []
    again = proj.run("plan", "manifests")
    assert "?" not in [line.strip()[:1] for line in again.stdout.splitlines()]  # no intent left to resolve
    assert "12 to create" in again.stdout
