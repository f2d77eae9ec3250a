"""`reconciler apply` end to end: a real subprocess, real HTTP to the sandbox, a real SQLite state."""

from __future__ import annotations

import json
import os
import pty
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import pytest
from helpers.apply_project import Project, assert_exactly_once, providers_yaml

from reconciler.providers.perftest import PerfTestClient


def test_apply_creates_every_resource_once_and_a_second_run_is_a_noop(
    project: Callable[..., Project],
) -> None:
    proj = project(tasks=6, rows=40, batch_size=10)
    done = proj.apply()
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Apply complete: 46 created, 0 failed" in done.stdout
    assert_exactly_once(proj, tasks=6, rows=40)
    again = proj.apply()
    assert again.returncode == 0
    assert "No changes" in again.stdout
    assert_exactly_once(proj, tasks=6, rows=40)


def test_suites_are_sent_in_async_batches_of_the_configured_size(project: Callable[..., Project]) -> None:
    proj = project(tasks=0, rows=25, batch_size=10)
    assert proj.apply().returncode == 0
    operations = proj.sandbox.objects()["operations"]
    assert sorted(op["details"]["total_count"] for op in operations) == [5, 10, 10]
    recorded = proj.recorded()
    assert {r.operation_id for r in recorded.values()} == {op["id"] for op in operations}


@pytest.mark.parametrize(
    "faults",
    [
        "500=0.2,503=0.1,seed=1",
        "429=0.3,retry_after=1,seed=2",
        "429=0.3,seed=3",
        "lost_ack=0.3,seed=4",
        "malformed=0.2,seed=5",
        "500_after=0.2,503_after=0.1,seed=7",
        "500=0.1,503=0.1,429=0.1,lost_ack=0.1,latency_ms=1-20,seed=6",
    ],
)
def test_apply_converges_through_faults_with_exactly_one_object_per_resource(
    project: Callable[..., Project], faults: str
) -> None:
    proj = project(tasks=8, rows=30, batch_size=7)
    proj.sandbox.set_faults(faults)
    done = proj.apply_until_done(tries=4)
    assert done.returncode == 0, done.stdout + done.stderr
    proj.sandbox.set_faults(None)
    assert_exactly_once(proj, tasks=8, rows=30)
    assert "No changes" in proj.apply().stdout


@pytest.mark.parametrize(
    "failpoint", ["after_intent:1", "after_intent:4", "after_send:1", "after_send:3", "after_outcome:2"]
)
def test_apply_killed_at_a_failpoint_then_rerun_creates_nothing_twice(
    project: Callable[..., Project], failpoint: str
) -> None:
    proj = project(tasks=5, rows=20, batch_size=5)
    killed = proj.apply("--parallelism", "2", extra_env={"RECONCILER_FAILPOINT": failpoint})
    assert killed.returncode == -signal.SIGKILL, killed.stdout + killed.stderr
    pending = [a for a, r in proj.recorded().items() if r.status.value == "pending"]
    if failpoint.startswith(("after_intent", "after_send")):
        assert pending, "the kill should leave an intent to resolve"
        plan = proj.run("plan", "manifests")
        assert "? " in plan.stdout and "to resolve" in plan.stdout
    done = proj.apply()
    assert done.returncode == 0, done.stdout + done.stderr
    assert_exactly_once(proj, tasks=5, rows=20)


def test_apply_sigkilled_at_random_moments_converges_without_duplicates(
    project: Callable[..., Project],
) -> None:
    proj = project(tasks=12, rows=60, batch_size=6)
    proj.sandbox.set_faults("latency_ms=20-60,seed=11")
    kills = 0
    for delay in (0.6, 0.9, 1.2, 1.5, 1.8):
        runner = proj.popen("apply", "manifests", "--auto-approve", "--parallelism", "3")
        time.sleep(delay)
        if runner.poll() is None:
            runner.send_signal(signal.SIGKILL)
            kills += 1
        runner.communicate(timeout=60)
    assert kills >= 2, "the apply finished too fast for the kills to land"
    proj.sandbox.set_faults(None)
    done = proj.apply_until_done(tries=3)
    assert done.returncode == 0, done.stdout + done.stderr
    assert_exactly_once(proj, tasks=12, rows=60)


def test_ctrl_c_finishes_calls_in_flight_records_them_and_exits_130(project: Callable[..., Project]) -> None:
    proj = project(tasks=20, rows=0)
    proj.sandbox.set_faults("latency_ms=100-150,seed=3")
    runner = proj.popen("apply", "manifests", "--auto-approve", "--parallelism", "2")
    deadline = time.monotonic() + 60
    while not proj.sandbox.objects()["perftest_tasks"] and time.monotonic() < deadline:
        time.sleep(0.05)
    runner.send_signal(signal.SIGINT)
    out, err = runner.communicate(timeout=60)
    assert runner.returncode == 130, out + err
    recorded = proj.recorded()
    assert recorded, "something was created before the interrupt"
    assert all(r.status.value == "created" for r in recorded.values()), "in-flight calls were not recorded"
    created = len(proj.sandbox.objects()["perftest_tasks"])
    assert created == len(recorded) < 20
    assert f"Apply interrupted: {created} created, 0 failed, {20 - created} not started." in out
    proj.sandbox.set_faults(None)
    assert proj.apply().returncode == 0
    assert_exactly_once(proj, tasks=20, rows=0)


def test_stale_plan_is_refused_and_nothing_is_sent(project: Callable[..., Project]) -> None:
    proj = project(tasks=2, rows=0)
    assert proj.run("plan", "manifests", "--out", "plan.json").returncode == 0
    assert proj.apply().returncode == 0
    stale = proj.run("apply", "plan.json", "--auto-approve")
    assert stale.returncode == 1
    assert "stale" in stale.stderr and "reconciler plan" in stale.stderr
    assert len(proj.sandbox.objects()["perftest_tasks"]) == 2


def test_saved_plan_applies_exactly_what_it_says(project: Callable[..., Project]) -> None:
    proj = project(tasks=2, rows=5, batch_size=5)
    assert proj.run("plan", "manifests", "--out", "plan.json").returncode == 0
    proj.write("perftest/more.yaml", (proj.manifests / "perftest/tasks.yaml").read_text().replace("load-", "extra-"))
    done = proj.run("apply", "plan.json", "--auto-approve")
    assert done.returncode == 0, done.stderr
    assert len(proj.sandbox.objects()["perftest_tasks"]) == 2


def test_a_change_is_refused_without_replace_and_replaced_with_it(project: Callable[..., Project]) -> None:
    proj = project(tasks=2, rows=0)
    assert proj.apply().returncode == 0
    tasks = proj.manifests / "perftest/tasks.yaml"
    tasks.write_text(tasks.read_text().replace("project_id: 101", "project_id: 103", 1))
    refused = proj.apply()
    assert refused.returncode == 1
    assert "--replace PerfTestTask/load-000" in refused.stderr
    assert len(proj.sandbox.objects()["perftest_tasks"]) == 2
    old_id = proj.recorded()["PerfTestTask/load-000"].remote_id
    replaced = proj.apply("--replace", "PerfTestTask/load-000")
    assert replaced.returncode == 0, replaced.stdout + replaced.stderr
    new_id = proj.recorded()["PerfTestTask/load-000"].remote_id
    tasks = {str(t["id"]): t for t in proj.sandbox.objects()["perftest_tasks"]}
    assert new_id != old_id and len(tasks) == 2 and old_id not in tasks  # the old one deleted once replaced
    assert tasks[new_id]["project_id"] == 103
    history = proj.run("state", "history", "PerfTestTask/load-000").stdout
    assert "replaced" in history and old_id in history


def test_suites_toloka_rejects_are_recorded_as_failed_with_its_message(
    project: Callable[..., Project], sandbox_factory: Callable[..., Any], tmp_path: Any
) -> None:
    strict = sandbox_factory(auto_create=False)
    strict.add_pool("5001")
    proj = project(tasks=0, rows=3, batch_size=5)
    proj.sandbox = strict
    proj.write("providers.yaml", providers_yaml(strict, batch_size=5))
    proj.write(
        "toloka/extra.yaml",
        """\
apiVersion: reconciler/v1
kind: TaskSuite
metadata: {name: lost}
spec:
  pool_id: "999"
  overlap: 1
  tasks: [{input_values: {text: nowhere}}]
""",
    )
    done = proj.apply()
    assert done.returncode == 1
    assert "TaskSuite/lost: failed" in done.stdout and "pool_id" in done.stdout
    recorded = proj.recorded()
    assert recorded["TaskSuite/lost"].status.value == "failed"
    assert sum(r.status.value == "created" for r in recorded.values()) == 3


def test_apply_without_a_terminal_needs_auto_approve(project: Callable[..., Project]) -> None:
    proj = project(tasks=1, rows=0)
    done = proj.run("apply", "manifests")
    assert done.returncode == 1
    assert "--auto-approve" in done.stderr
    assert proj.sandbox.objects()["perftest_tasks"] == []


def test_missing_credentials_name_the_variable_and_send_nothing(project: Callable[..., Project]) -> None:
    proj = project(tasks=1, rows=0)
    env = dict(proj.env)
    del env["TEST_CPTS_SK"]
    proj.env = env
    done = proj.apply()
    assert done.returncode == 1
    assert "TEST_CPTS_SK" in done.stderr and proj.sandbox.secret_key not in done.stderr
    assert proj.sandbox.objects()["perftest_tasks"] == []


def test_json_events_report_every_outcome(project: Callable[..., Project]) -> None:
    proj = project(tasks=2, rows=3, batch_size=5)
    done = proj.apply("--json")
    events = [json.loads(line) for line in done.stdout.splitlines()]
    created = [e for e in events if e["type"] == "apply_created"]
    assert len(created) == 5 and all(e["remote_id"] for e in created)
    assert events[-1]["type"] == "apply_summary" and events[-1]["ok"] is True


def test_no_secret_reaches_state_plan_or_output(project: Callable[..., Project]) -> None:
    proj = project(tasks=2, rows=3, batch_size=5)
    plan = proj.run("plan", "manifests", "--out", "plan.json")
    done = proj.run("apply", "plan.json", "--auto-approve")
    secrets = [proj.sandbox.secret_key, proj.sandbox.toloka_token]
    blobs = [plan.stdout, plan.stderr, done.stdout, done.stderr, (proj.root / "plan.json").read_text()]
    blobs.append(proj.state_file.read_bytes().decode("utf-8", "replace"))
    for secret in secrets:
        assert all(secret not in blob for blob in blobs)


def _perftest_client(proj: Project) -> PerfTestClient:
    return PerfTestClient(
        name="perftest",
        endpoint=proj.sandbox.url,
        cloud_project_id=proj.sandbox.cloud_project_id,
        access_key=proj.sandbox.access_key,
        secret_key=proj.sandbox.secret_key,
        rate_limit=100,
    )


def test_perftest_task_created_before_a_kill_is_adopted_not_created_again(project: Callable[..., Project]) -> None:
    proj = project(tasks=1, rows=0)
    killed = proj.apply(extra_env={"RECONCILER_FAILPOINT": "after_send:1"})
    assert killed.returncode == -signal.SIGKILL
    assert len(proj.sandbox.objects()["perftest_tasks"]) == 1
    done = proj.apply()
    assert done.returncode == 0, done.stdout + done.stderr
    assert "found the object an interrupted call made" in done.stdout
    assert_exactly_once(proj, tasks=1, rows=0)


def test_ambiguous_recovery_stops_and_says_so_instead_of_guessing(project: Callable[..., Project]) -> None:
    proj = project(tasks=1, rows=0)
    killed = proj.apply(extra_env={"RECONCILER_FAILPOINT": "after_intent:1"})
    assert killed.returncode == -signal.SIGKILL
    body = {"name": "load-000", "parallel": True, "project_id": 101, "operate_mode": 2, "case_id_list": [1, 2]}
    with _perftest_client(proj) as client:
        client.create_task(body)
        client.create_task(body)
    done = proj.apply()
    assert done.returncode == 1
    assert "will not guess" in done.stdout + done.stderr
    assert len(proj.sandbox.objects()["perftest_tasks"]) == 2
    assert proj.recorded()["PerfTestTask/load-000"].status.value == "pending"
    forgotten = proj.run("state", "forget", "PerfTestTask/load-000")
    assert forgotten.returncode == 1 and len(forgotten.stderr.strip().splitlines()) == 1
    assert "interrupted apply" in forgotten.stderr and "state import PerfTestTask/load-000" in forgotten.stderr
    kept = str(proj.sandbox.objects()["perftest_tasks"][0]["id"])
    imported = proj.run("state", "import", "PerfTestTask/load-000", kept, "manifests")
    assert imported.returncode == 0, imported.stderr
    settled = proj.apply()
    assert settled.returncode == 0 and "No changes" in settled.stdout
    assert proj.recorded()["PerfTestTask/load-000"].remote_id == kept


def test_same_named_task_made_by_someone_else_is_never_adopted(project: Callable[..., Project]) -> None:
    proj = project(tasks=1, rows=0)
    body = {"name": "load-000", "parallel": False, "project_id": 101, "operate_mode": 2, "case_id_list": [9]}
    with _perftest_client(proj) as client:
        foreign = client.create_task(body)
    proj.sandbox.set_faults("lost_ack=1.0,routes=perftest,methods=POST,seed=1")
    # A create meeting a same-named task the state does not hold is refused (issue 11, item 5): nothing is sent,
    # nothing adopted, and the refusal names the import that would adopt it if it were ours.
    refused = proj.apply()
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert f"reconciler state import PerfTestTask/load-000 {foreign} <manifests>" in refused.stdout
    assert "PerfTestTask/load-000" not in proj.recorded()
    assert len(proj.sandbox.objects()["perftest_tasks"]) == 1
    # A replacement still creates beside it, and recovering its lost answer adopts neither older task.
    proj.sandbox.set_faults(None)
    proj.sandbox.delete_object("perftest_tasks", foreign)  # its owner deletes it; now the create goes through
    assert proj.apply().returncode == 0
    first = proj.recorded()["PerfTestTask/load-000"].remote_id
    with _perftest_client(proj) as client:
        foreign = client.create_task(body)
    proj.sandbox.set_faults("lost_ack=1.0,routes=perftest,methods=POST,seed=1")
    interrupted = proj.apply("--replace", "PerfTestTask/load-000")
    proj.sandbox.set_faults(None)
    assert "did not create" in interrupted.stdout
    done = proj.apply() if interrupted.returncode else interrupted
    assert done.returncode == 0, done.stdout + done.stderr
    ours = proj.recorded()["PerfTestTask/load-000"].remote_id
    assert ours not in (str(foreign), first)
    remaining = {str(t["id"]) for t in proj.sandbox.objects()["perftest_tasks"]}
    assert remaining == {ours, str(foreign)}  # the replaced one deleted, someone else's left alone


def _on_a_terminal(proj: Project, answer: str) -> tuple[int, str]:
    """Run apply with a pseudo-terminal as its stdin and stdout, type ``answer`` at the prompt."""
    primary, secondary = pty.openpty()
    runner = subprocess.Popen(
        [sys.executable, "-m", "reconciler", "apply", "manifests"],
        cwd=proj.root,
        env={**proj.env, "TERM": "xterm", "COLUMNS": "100"},
        stdin=secondary,
        stdout=secondary,
        stderr=secondary,
    )
    os.close(secondary)
    seen = b""
    deadline = time.monotonic() + 60
    while b"Only 'yes' will be accepted" not in seen and time.monotonic() < deadline:
        seen += os.read(primary, 4096)
    os.write(primary, answer.encode() + b"\r")
    while True:
        try:
            chunk = os.read(primary, 4096)
        except OSError:
            break
        if not chunk:
            break
        seen += chunk
    runner.wait(timeout=60)
    os.close(primary)
    return runner.returncode, seen.decode("utf-8", "replace")


def test_apply_on_a_terminal_sends_nothing_unless_the_answer_is_yes(project: Callable[..., Project]) -> None:
    proj = project(tasks=2, rows=0)
    code, screen = _on_a_terminal(proj, "no")
    assert code == 1 and "nothing was sent" in screen
    assert proj.sandbox.objects()["perftest_tasks"] == []
    code, screen = _on_a_terminal(proj, "yes")
    assert code == 0, screen
    assert "Apply complete: 2 created" in screen
    assert len(proj.sandbox.objects()["perftest_tasks"]) == 2


def test_credentials_are_needed_only_for_providers_with_work_to_do(project: Callable[..., Project]) -> None:
    proj = project(tasks=0, rows=3, batch_size=5)
    proj.env = {k: v for k, v in proj.env.items() if k not in ("TEST_CPTS_AK", "TEST_CPTS_SK")}
    done = proj.apply()
    assert done.returncode == 0, done.stdout + done.stderr
    assert_exactly_once(proj, tasks=0, rows=3)
