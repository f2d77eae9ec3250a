"""`reconciler apply` exactly once at the edges (issue 11, items 2, 3 and 5): answers of an unexpected shape,
and a PerfTest state that was lost.

Real subprocesses, real HTTP to the sandbox, a real SQLite state, as in ``test_apply.py``. The sandbox's
``STATUS_after`` with a 2xx status does the work and then answers success with a well-formed body of the wrong
shape (the API's error shape: no operation, no ``task_id``, no ``tasks``)."""

from __future__ import annotations

import shutil
from collections.abc import Callable

import pytest
from helpers.apply_project import Project, assert_exactly_once


@pytest.mark.parametrize(
    ("faults", "tasks", "rows"),
    [
        ("202_after=1.0,routes=toloka,methods=POST", 0, 20),
        ("200_after=1.0,routes=toloka,methods=POST", 0, 20),
        ("201_after=1.0,routes=perftest,methods=POST", 3, 0),
    ],
)
def test_a_create_answered_2xx_in_an_odd_shape_is_resolved_and_never_created_again(
    project: Callable[..., Project], faults: str, tasks: int, rows: int
) -> None:
    proj = project(tasks=tasks, rows=rows, batch_size=10)
    proj.sandbox.set_faults(faults)
    first = proj.apply()
    proj.sandbox.set_faults(None)
    assert "rejected" not in first.stdout + first.stderr
    assert not any(r.status.value == "failed" for r in proj.recorded().values())
    operations = {op["id"] for op in proj.sandbox.objects()["operations"]}

    done = proj.apply_until_done(tries=2)

    assert done.returncode == 0, done.stdout + done.stderr
    assert_exactly_once(proj, tasks=tasks, rows=rows)
    assert {op["id"] for op in proj.sandbox.objects()["operations"]} == operations  # no new operation id
    assert "No changes" in proj.apply().stdout


def test_a_perftest_listing_that_cannot_be_read_sends_nothing_to_that_project(project: Callable[..., Project]) -> None:
    proj = project(tasks=4, rows=0)
    proj.sandbox.set_faults("200_after=1.0,routes=perftest")  # every answer: 200 {code, message}, no tasks

    refused = proj.apply()

    proj.sandbox.set_faults(None)
    assert refused.returncode == 1, refused.stdout + refused.stderr
    output = refused.stdout + refused.stderr
    assert "could not read the task listing of test project 101" in output
    assert "could not read the task listing of test project 102" in output
    assert proj.sandbox.objects()["perftest_tasks"] == []
    done = proj.apply()
    assert done.returncode == 0, done.stdout + done.stderr
    assert_exactly_once(proj, tasks=4, rows=0)


def _import_command(address: str, remote_id: str) -> str:
    return f"reconciler state import {address} {remote_id} <manifests>"


def test_a_lost_perftest_state_refuses_the_known_names_and_names_the_import(project: Callable[..., Project]) -> None:
    proj = project(tasks=3, rows=0)
    assert proj.apply().returncode == 0
    ids = {address: r.remote_id for address, r in proj.recorded().items()}
    shutil.rmtree(proj.state_file.parent)
    proj.write(
        "perftest/fresh.yaml",
        "apiVersion: reconciler/v1\nkind: PerfTestTask\nmetadata: {name: fresh-000}\n"
        "spec: {project_id: 101, parallel: true, case_id_list: [7]}\n",
    )

    refused = proj.apply()

    output = refused.stdout + refused.stderr
    assert refused.returncode == 1, output
    for address, remote_id in ids.items():
        assert _import_command(address, str(remote_id)) in output
    assert "creating another" not in output
    tasks = proj.sandbox.objects()["perftest_tasks"]
    assert sorted(t["name"] for t in tasks) == ["fresh-000", "load-000", "load-001", "load-002"]
    assert {a: r.status.value for a, r in proj.recorded().items()} == {"PerfTestTask/fresh-000": "created"}

    address = "PerfTestTask/load-000"
    imported = proj.run("state", "import", address, str(ids[address]), "manifests")
    assert imported.returncode == 0, imported.stdout + imported.stderr
    again = proj.apply()
    assert again.returncode == 1
    assert address not in again.stdout + again.stderr
    assert len(proj.sandbox.objects()["perftest_tasks"]) == 4


def test_a_forgotten_perftest_task_is_refused_not_created_twice(project: Callable[..., Project]) -> None:
    proj = project(tasks=2, rows=5)
    assert proj.apply().returncode == 0
    address = "PerfTestTask/load-001"
    remote_id = str(proj.recorded()[address].remote_id)
    assert proj.run("state", "forget", address).returncode == 0

    refused = proj.apply()

    output = refused.stdout + refused.stderr
    assert refused.returncode == 1, output
    assert _import_command(address, remote_id) in output
    assert "PerfTestTask/load-000" not in output
    assert len(proj.sandbox.objects()["perftest_tasks"]) == 2
    assert proj.run("state", "import", address, remote_id, "manifests").returncode == 0
    done = proj.apply()
    assert done.returncode == 0 and "No changes" in done.stdout, done.stdout + done.stderr
    assert_exactly_once(proj, tasks=2, rows=5)
