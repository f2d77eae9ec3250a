"""`validate`, `plan` and `show` as a user meets them: exit codes, one line per error, machine-readable output."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

from reconciler import manifest
from reconciler.plan import PLAN_FORMAT_VERSION
from reconciler.state import open_store
from reconciler.state.base import Intent, Outcome, PendingResource, Status

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
RunCli = Callable[..., subprocess.CompletedProcess[str]]

EXAMPLE_COUNT = len(manifest.load([EXAMPLES]).resources)


def record_all_as_created(workdir: Path, examples: Path) -> None:
    desired = manifest.load([examples])
    store = open_store(f"{workdir / 'state'}/", workspace="default", root=workdir)
    try:
        for n, resource in enumerate(desired.resources.values()):
            op = f"op-{n}"
            store.record_intent(
                intent=Intent(op, resource.provider, "test", (resource.address,), "fp"),
                resources=[
                    PendingResource(
                        resource.address,
                        resource.kind,
                        resource.provider,
                        resource.spec,
                        resource.spec_hash,
                        0,
                    )
                ],
            )
            store.record_outcomes(
                operation_id=op,
                outcomes=[Outcome(resource.address, Status.CREATED, remote_id=str(n))],
                resolved=True,
            )
    finally:
        store.close()


def test_validate_accepts_the_examples(run_cli: RunCli) -> None:
    done = run_cli("validate", str(EXAMPLES))
    assert done.returncode == 0, done.stderr
    assert f"Valid: {EXAMPLE_COUNT} resources" in done.stdout


def test_plan_of_examples_lists_one_create_per_resource_and_exits_2(run_cli: RunCli) -> None:
    done = run_cli("plan", str(EXAMPLES), "--detailed-exitcode")
    assert done.returncode == 2, done.stderr
    creates = [line for line in done.stdout.splitlines() if line.startswith("  + ")]
    assert len(creates) == EXAMPLE_COUNT
    assert f"Plan: {EXAMPLE_COUNT} to create" in done.stdout


def test_plan_json_is_one_object_per_line(run_cli: RunCli) -> None:
    done = run_cli("plan", str(EXAMPLES), "--json")
    assert done.returncode == 0, done.stderr
    events = [json.loads(line) for line in done.stdout.splitlines()]
    planned = [e for e in events if e["type"] == "planned_change"]
    assert len(planned) == EXAMPLE_COUNT and all(e["action"] == "create" for e in planned)
    assert events[-1]["type"] == "change_summary" and events[-1]["changes"]["create"] == EXAMPLE_COUNT


def test_plan_against_a_state_holding_everything_has_no_changes(run_cli: RunCli, tmp_path: Path) -> None:
    record_all_as_created(tmp_path, EXAMPLES)
    done = run_cli("plan", str(EXAMPLES), "--detailed-exitcode")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "No changes" in done.stdout


def test_one_edited_spec_is_exactly_one_update_or_change_with_its_diff(run_cli: RunCli, tmp_path: Path) -> None:
    examples = tmp_path / "examples"
    shutil.copytree(EXAMPLES, examples)
    record_all_as_created(tmp_path, examples)
    checkout = examples / "perftest" / "checkout.yaml"
    text = checkout.read_text()
    assert "parallel: false" in text
    checkout.write_text(text.replace("parallel: false", "parallel: true", 1))
    done = run_cli("plan", "examples", "--detailed-exitcode")
    assert done.returncode == 2, "a field the API changes in place is an update apply makes: changes (2)"
    changed = [line for line in done.stdout.splitlines() if line.startswith("  ~ ")]
    assert len(changed) == 1
    assert "~ parallel: false -> true" in done.stdout
    assert "0 to create" in done.stdout and "1 to update in place" in done.stdout

    checkout.write_text(text.replace("project_id: 393862", "project_id: 393863", 1))
    done = run_cli("plan", "examples", "--detailed-exitcode")
    assert done.returncode == 1, "apply would refuse a change without --replace: an error, not changes (2)"
    assert "project_id cannot be changed in place" in done.stdout


def test_saved_plan_shows_the_same_actions(run_cli: RunCli, tmp_path: Path) -> None:
    assert run_cli("plan", str(EXAMPLES), "--out", "plan.json").returncode == 0
    saved = json.loads((tmp_path / "plan.json").read_text())
    assert saved["format_version"] == PLAN_FORMAT_VERSION and saved["summary"]["create"] == EXAMPLE_COUNT
    assert {"lineage", "serial", "manifest_digest", "providers"} <= saved.keys()
    assert "SANDBOXSK" not in (tmp_path / "plan.json").read_text()
    shown = run_cli("show", "plan.json")
    assert shown.returncode == 0 and f"Plan: {EXAMPLE_COUNT} to create" in shown.stdout


def test_bad_manifests_get_one_line_per_error_and_exit_1(run_cli: RunCli, tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text(
        "apiVersion: reconciler/v1\n"
        "kind: PerfTestTask\n"
        "metadata: {name: t1}\n"
        "spec:\n"
        "  project_id: abc\n"
        "  case_id_list: [1]\n"
        "---\n"
        "apiVersion: reconciler/v1\n"
        "kind: Gizmo\n"
        "metadata: {name: g}\n"
        "spec: {}\n"
    )
    done = run_cli("plan", "bad.yaml")
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    lines = done.stderr.splitlines()
    assert any(line.startswith("bad.yaml:5: PerfTestTask/t1: spec.project_id:") for line in lines), lines
    assert any(line.startswith("bad.yaml:4: PerfTestTask/t1: spec:") and "parallel" in line for line in lines), lines
    assert any(line.startswith("bad.yaml:9:") and "Gizmo" in line for line in lines), lines
    assert lines[-1].endswith("nothing was sent.")


def test_unknown_option_is_a_usage_error_with_exit_1(run_cli: RunCli) -> None:
    done = run_cli("plan", str(EXAMPLES), "--bogus")
    assert done.returncode == 1
    assert "No such option" in done.stderr


def test_schema_prints_each_kind(run_cli: RunCli) -> None:
    done = run_cli("schema", "TaskSuite")
    assert done.returncode == 0
    schema = json.loads(done.stdout)
    assert schema["properties"]["kind"]["const"] == "TaskSuite"
    assert run_cli("schema", "Nope").returncode == 1


def test_state_commands_list_show_history_and_forget(run_cli: RunCli, tmp_path: Path) -> None:
    record_all_as_created(tmp_path, EXAMPLES)
    listed = run_cli("state", "list")
    assert listed.returncode == 0 and len(listed.stdout.splitlines()) == EXAMPLE_COUNT
    shown = run_cli("state", "show", "PerfTestTask/checkout-smoke")
    assert json.loads(shown.stdout)["status"] == "created"
    assert run_cli("state", "forget", "PerfTestTask/checkout-smoke").returncode == 0
    assert run_cli("state", "show", "PerfTestTask/checkout-smoke").returncode == 1
    history = run_cli("state", "history", "PerfTestTask/checkout-smoke")
    assert "forgotten" in history.stdout
    again = run_cli("plan", str(EXAMPLES), "--detailed-exitcode")
    assert again.returncode == 2 and "+ PerfTestTask/checkout-smoke" in again.stdout


def test_unlock_of_unknown_lock_is_a_clear_error(run_cli: RunCli) -> None:
    done = run_cli("state", "unlock", "no-such-lock")
    assert done.returncode == 1 and done.stderr.startswith("Error: ")


def test_a_folder_without_manifests_is_an_error_not_an_empty_plan(run_cli: RunCli, tmp_path: Path) -> None:
    (tmp_path / "ci").mkdir()
    (tmp_path / "ci" / "workflow.yml").write_text("on: [push]\njobs: {}\n")
    done = run_cli("plan", "ci")
    assert done.returncode == 1
    assert done.stderr.startswith("ci: no manifests here")
