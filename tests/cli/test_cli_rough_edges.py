"""Rough edges of the command line (issue 10), each as a user of Terraform, kubectl or toloka-kit meets it:
closed pipes, saved plans across workspaces, what `--detailed-exitcode` means, the sandbox's workspace, common
options before the command, manifests from standard input, `validate --json` and `state import` of an id that
names nothing."""

from __future__ import annotations

import json
import os
import queue
import shlex
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import pytest
from click.testing import CliRunner
from helpers.apply_project import Project, providers_yaml, tasks_yaml

from reconciler import manifest
from reconciler.cli import cli
from reconciler.state import open_store
from reconciler.state.base import Intent, Outcome, PendingResource, Status

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
RunCli = Callable[..., subprocess.CompletedProcess[str]]
CLOSED_PIPE = 141  # what a shell reports for a process SIGPIPE ended: 128 + 13


def _environment(workdir: Path) -> dict[str, str]:
    """The test's own state folder, named: the examples the tests plan live in the repository."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECONCILER_")}
    return {**env, "NO_COLOR": "1", "RECONCILER_STATE": f"{workdir / 'state'}/"}


def _record_created(workdir: Path, manifests: Path, *, workspace: str = "default") -> None:
    """The state of an apply that created every resource of ``manifests``."""
    desired = manifest.load([manifests])
    store = open_store(f"{workdir / 'state'}/", workspace=workspace, root=workdir)
    try:
        for n, resource in enumerate(desired.resources.values()):
            store.record_intent(
                intent=Intent(f"op-{n}", resource.provider, "test", (resource.address,), "fp"),
                resources=[
                    PendingResource(
                        resource.address, resource.kind, resource.provider, resource.spec, resource.spec_hash, 0
                    )
                ],
            )
            store.record_outcomes(
                operation_id=f"op-{n}",
                outcomes=[Outcome(resource.address, Status.CREATED, remote_id=str(1000 + n))],
                resolved=True,
            )
    finally:
        store.close()


def _examples_in(tmp_path: Path) -> Path:
    copy = tmp_path / "examples"
    shutil.copytree(EXAMPLES, copy)
    return copy


def _invoke(*args: str, input: str | None = None) -> Any:
    return CliRunner().invoke(cli, list(args), input=input, env={"NO_COLOR": "1"}, catch_exceptions=False)


def _big_suite_set(root: Path, rows: int) -> Path:
    """A manifest folder whose `plan -v` prints one line per row: far more than a pipe holds."""
    folder = root / "big"
    (folder / "data").mkdir(parents=True)
    (folder / "data" / "rows.jsonl").write_text(
        "".join(json.dumps({"id": f"r{n:05d}", "text": f"review number {n}"}) + "\n" for n in range(rows))
    )
    (folder / "set.yaml").write_text(
        "apiVersion: reconciler/v1\n"
        "kind: TolokaProvider\n"
        "metadata: {name: toloka}\n"
        "spec: {credentials: {token_env: TOLOKA_API_KEY}}\n"
        "---\n"
        "apiVersion: reconciler/v1\n"
        "kind: TaskSuiteSet\n"
        "metadata: {name: reviews}\n"
        "spec:\n"
        "  source: data/rows.jsonl\n"
        "  key: id\n"
        '  template: {pool_id: "5001", overlap: 1}\n'
    )
    return folder


# --- 3. a closed pipe is normal shell use -------------------------------------------------------------------


def test_plan_piped_into_a_reader_that_closes_early_exits_quietly(tmp_path: Path) -> None:
    _big_suite_set(tmp_path, rows=6000)
    reader = subprocess.Popen(
        [sys.executable, "-m", "reconciler", "plan", "big", "-v"],
        cwd=tmp_path,
        env=_environment(tmp_path),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert reader.stdout is not None and reader.stderr is not None
    first = reader.stdout.readline()  # `| head -1`: one line, then the pipe is closed
    reader.stdout.close()
    errors = reader.stderr.read().decode()
    assert reader.wait(timeout=120) == CLOSED_PIPE, errors
    assert first.startswith(b"reconciler will perform")
    assert errors == ""


def test_state_list_into_a_closed_pipe_exits_quietly(tmp_path: Path) -> None:
    _record_created(tmp_path, EXAMPLES)
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before the first byte, as with `| head -0` or `| true`
    try:
        done = subprocess.run(
            [sys.executable, "-m", "reconciler", "state", "list"],
            cwd=tmp_path,
            env=_environment(tmp_path),
            stdin=subprocess.DEVNULL,
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
        )
    finally:
        os.close(write_end)
    assert done.returncode == CLOSED_PIPE, done.stderr
    assert done.stderr == ""


# --- 8. a saved plan in another workspace or state says what differs ----------------------------------------


def test_saved_plan_applied_in_another_workspace_names_both_workspaces(run_cli: RunCli) -> None:
    assert run_cli("plan", str(EXAMPLES), "--workspace", "staging", "--out", "plan.json").returncode == 0
    done = run_cli("apply", "plan.json", "--auto-approve")
    assert done.returncode == 1
    [line] = done.stderr.splitlines()
    assert "made for workspace 'staging'" in line and "this is workspace 'default'" in line, line
    assert "apply it with --workspace staging" in line and "lineage" in line, line


def test_saved_sandbox_plan_applied_without_sandbox_says_to_add_it(run_cli: RunCli) -> None:
    assert run_cli("plan", str(EXAMPLES), "--sandbox", "--out", "plan.json").returncode == 0
    done = run_cli("apply", "plan.json", "--auto-approve")
    assert done.returncode == 1
    assert "made for workspace 'sandbox'" in done.stderr and "apply it with --sandbox" in done.stderr


def test_saved_plan_applied_to_another_state_of_its_workspace_says_so(run_cli: RunCli) -> None:
    assert run_cli("plan", str(EXAMPLES), "--state", "first.db", "--out", "plan.json").returncode == 0
    done = run_cli("apply", "plan.json", "--state", "second.db", "--auto-approve")
    assert done.returncode == 1
    [line] = done.stderr.splitlines()
    assert "another state of workspace 'default'" in line and "--state it was made with" in line, line


# --- 11. --detailed-exitcode: 2 means "apply would change something" ----------------------------------------


def test_detailed_exitcode_is_0_for_a_plan_of_orphans_alone(run_cli: RunCli, tmp_path: Path) -> None:
    examples = _examples_in(tmp_path)
    _record_created(tmp_path, examples)
    (examples / "perftest" / "search.yaml").unlink()
    done = run_cli("plan", "examples", "--detailed-exitcode")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "! PerfTestTask/search-soak" in done.stdout and "2 orphaned" in done.stdout


def _with_one_changed_spec(tmp_path: Path) -> None:
    examples = _examples_in(tmp_path)
    _record_created(tmp_path, examples)
    checkout = examples / "perftest" / "checkout.yaml"
    checkout.write_text(checkout.read_text().replace("project_id: 393862", "project_id: 393863", 1))


def test_detailed_exitcode_is_1_with_the_reason_for_a_plan_apply_would_refuse(run_cli: RunCli, tmp_path: Path) -> None:
    _with_one_changed_spec(tmp_path)
    done = run_cli("plan", "examples", "--detailed-exitcode")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "~ PerfTestTask/checkout-smoke" in done.stdout
    [line] = done.stderr.splitlines()
    assert line.startswith("Error: apply would refuse this plan: 1 resource(s) differ"), line
    assert "--replace PerfTestTask/checkout-smoke" in line


def test_plan_of_a_change_shows_it_and_says_apply_would_refuse_it(run_cli: RunCli, tmp_path: Path) -> None:
    _with_one_changed_spec(tmp_path)
    done = run_cli("plan", "examples")
    assert done.returncode == 0, done.stderr
    plan_part, _, warning = done.stdout.partition("Warning: apply would refuse this plan")
    assert "~ project_id: 393862 -> 393863" in plan_part
    assert "--replace PerfTestTask/checkout-smoke" in warning


def test_saving_a_plan_apply_would_refuse_says_so_instead_of_how_to_apply_it(run_cli: RunCli, tmp_path: Path) -> None:
    _with_one_changed_spec(tmp_path)
    done = run_cli("plan", "examples", "--out", "plan.json")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "plan.json").exists()
    assert "Saved the plan to plan.json, but apply would refuse it" in done.stdout
    assert "reconciler apply plan.json" not in done.stdout


# --- 12. the sandbox's workspace is visible, and hints work as printed --------------------------------------


def test_state_commands_with_sandbox_see_what_apply_with_sandbox_created(run_cli: RunCli, tmp_path: Path) -> None:
    assert run_cli("state", "list", "--sandbox").stdout == ""
    assert not (tmp_path / "state" / "sandbox-remote.db").exists(), "state list must not start the emulator"
    shutil.copytree(EXAMPLES, tmp_path / "examples")
    applied = run_cli("apply", "examples", "--sandbox", "--auto-approve")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    listed = run_cli("state", "list", "--sandbox")
    assert listed.returncode == 0, listed.stderr
    rows = [line.split("\t") for line in listed.stdout.splitlines()]
    assert {r[0] for r in rows} == set(manifest.load([EXAMPLES]).resources)
    shown = run_cli("state", "show", "PerfTestTask/checkout-smoke", "--sandbox")
    assert json.loads(shown.stdout)["status"] == "created"


def test_saved_plan_hint_is_a_command_that_works_as_printed(run_cli: RunCli, tmp_path: Path) -> None:
    shutil.copytree(EXAMPLES, tmp_path / "examples")
    planned = run_cli("plan", "examples", "--sandbox", "--state", "kept/", "--out", "plan.json")
    assert planned.returncode == 0, planned.stderr
    hint = planned.stdout.splitlines()[-1]
    command = shlex.split(hint.partition("Apply exactly this plan with: ")[2])
    assert command[:3] == ["reconciler", "apply", "plan.json"] and "--sandbox" in command, hint
    (tmp_path / "kept").mkdir(exist_ok=True)
    applied = run_cli(*command[1:], "--auto-approve")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert "Apply complete" in applied.stdout


def _lines_of(stream: IO[str]) -> queue.Queue[str]:
    """The lines of a running process's output as they come, so a test waits for each with a timeout."""
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        for line in stream:
            lines.put(line)

    threading.Thread(target=pump, daemon=True).start()
    return lines


def test_sandbox_serve_prints_the_environment_that_points_reconciler_at_it(run_cli: RunCli, tmp_path: Path) -> None:
    server = subprocess.Popen(
        [sys.executable, "-m", "reconciler", "sandbox", "serve", "--port", "0", "--auto-create"],
        env=_environment(tmp_path),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert server.stdout is not None
    lines = _lines_of(server.stdout)
    try:
        assert lines.get(timeout=30).startswith("sandbox listening on http://127.0.0.1:")
        assert "Point reconciler at it" in lines.get(timeout=5)
        exports = [lines.get(timeout=5).strip() for _ in range(6)]
        assert all(line.startswith("export ") for line in exports), exports
        env = dict(shlex.split(line)[1].split("=", 1) for line in exports)
        assert {"RECONCILER_PERFTEST_ENDPOINT", "RECONCILER_TOLOKA_ENDPOINT", "TOLOKA_API_KEY"} <= env.keys()
        shutil.copytree(EXAMPLES, tmp_path / "examples")
        applied = run_cli("apply", "examples", "--auto-approve", env=env)
        assert applied.returncode == 0, applied.stdout + applied.stderr
        assert "Apply complete" in applied.stdout
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=15)


# --- 13. common options before the command, stdin, validate --json, state import ----------------------------


def test_common_options_before_the_command_are_accepted(run_cli: RunCli, tmp_path: Path) -> None:
    done = run_cli("--no-color", "-v", "plan", str(EXAMPLES))
    assert done.returncode == 0, done.stderr
    staging = run_cli("--workspace", "staging", "plan", str(EXAMPLES), "--out", "plan.json")
    assert staging.returncode == 0, staging.stderr
    assert json.loads((tmp_path / "plan.json").read_text())["workspace"] == "staging"
    assert f"No state yet at {tmp_path / 'state' / 'staging.db'}" in staging.stdout  # plan creates no state
    both = run_cli("--workspace", "staging", "plan", str(EXAMPLES), "--workspace", "qa", "--out", "plan.json")
    assert both.returncode == 0, both.stderr
    assert json.loads((tmp_path / "plan.json").read_text())["workspace"] == "qa", "the command's own option wins"
    elsewhere = run_cli("--state", "elsewhere.db", "state", "list")
    assert elsewhere.returncode == 0 and "No state at elsewhere.db" in elsewhere.stderr


def test_validate_takes_no_state_option(run_cli: RunCli) -> None:
    done = run_cli("validate", str(EXAMPLES), "--state", "x.db")
    assert done.returncode == 1
    assert "No such option" in done.stderr


def test_manifests_from_standard_input_validate_like_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    shutil.copy(EXAMPLES / "toloka" / "data" / "reviews.jsonl", tmp_path / "data" / "reviews.jsonl")
    documents = [(EXAMPLES / "providers.yaml").read_text(), (EXAMPLES / "toloka" / "sentiment.yaml").read_text()]
    done = _invoke("validate", "-", input="\n---\n".join(documents))
    assert done.exit_code == 0, done.output
    assert done.stdout.startswith("Valid: ") and "TaskSuite" in done.stdout
    broken = _invoke("validate", "-", input=documents[0].replace("rate_limit: 20", "rate_limit: many"))
    assert broken.exit_code == 1
    assert broken.stderr.startswith("<stdin>:"), broken.stderr


def test_validate_json_reports_one_object_per_problem_and_a_summary(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "apiVersion: reconciler/v1\n"
        "kind: PerfTestTask\n"
        "metadata: {name: t1}\n"
        "spec:\n"
        "  project_id: abc\n"
        "  parallel: false\n"
        "  case_id_list: [1]\n"
    )
    done = _invoke("validate", "--json", str(bad))
    assert done.exit_code == 1
    events = [json.loads(line) for line in done.stdout.splitlines()]
    problems, summary = events[:-1], events[-1]
    assert problems and all(e["type"] == "problem" for e in problems)
    first = problems[0]
    assert {"file", "line", "address", "field", "message"} <= first.keys()
    assert (first["line"], first["address"], first["field"]) == (5, "PerfTestTask/t1", "spec.project_id")
    assert summary == {"type": "summary", "valid": False, "problems": len(problems)}
    good = _invoke("validate", "--json", str(EXAMPLES))
    assert good.exit_code == 0
    [only] = [json.loads(line) for line in good.stdout.splitlines()]
    assert only["type"] == "summary" and only["valid"] is True and only["problems"] == 0


def _import_project(tmp_path: Path, sandbox: Any) -> Project:
    env = {
        **_environment(tmp_path),
        "TEST_CPTS_AK": sandbox.access_key,
        "TEST_CPTS_SK": sandbox.secret_key,
        "TEST_TOLOKA_KEY": sandbox.toloka_token,
        "RECONCILER_STATE": f"{tmp_path / 'manifests' / '.reconciler'}/",
    }
    project = Project(root=tmp_path, sandbox=sandbox, env=env)
    project.write("providers.yaml", providers_yaml(sandbox))
    project.write("perftest/tasks.yaml", tasks_yaml(1))
    project.write(
        "toloka/suite.yaml",
        'apiVersion: reconciler/v1\nkind: TaskSuite\nmetadata: {name: one}\nspec:\n  pool_id: "5001"\n'
        "  overlap: 1\n  tasks: [{input_values: {text: hello}}]\n",
    )
    return project


def test_state_import_of_a_remote_id_that_does_not_exist_is_refused(tmp_path: Path, sandbox: Any) -> None:
    project = _import_project(tmp_path, sandbox)
    for address, remote_id, what in (
        ("PerfTestTask/load-000", "987654", "no task with id 987654"),
        ("TaskSuite/one", "00000000-0000-0000-0000-000000000000", "no task suite with id"),
    ):
        done = project.run("state", "import", address, remote_id, "manifests")
        assert done.returncode == 1, done.stdout
        [line] = done.stderr.splitlines()
        assert line.startswith("Error: ") and address in line and what in line, line
    assert project.recorded() == {}


def test_state_import_of_an_existing_remote_object_is_recorded(tmp_path: Path, sandbox: Any) -> None:
    project = _import_project(tmp_path, sandbox)
    assert project.apply().returncode == 0
    task_id = project.recorded()["PerfTestTask/load-000"].remote_id
    assert project.run("state", "forget", "PerfTestTask/load-000").returncode == 0
    done = project.run("state", "import", "PerfTestTask/load-000", str(task_id), "manifests")
    assert done.returncode == 0, done.stderr
    assert project.recorded()["PerfTestTask/load-000"].remote_id == task_id


def test_state_import_with_sandbox_reads_the_embedded_emulator(run_cli: RunCli, tmp_path: Path) -> None:
    shutil.copytree(EXAMPLES, tmp_path / "examples")
    assert run_cli("apply", "examples", "--sandbox", "--auto-approve").returncode == 0
    shown = json.loads(run_cli("state", "show", "PerfTestTask/checkout-smoke", "--sandbox").stdout)
    assert run_cli("state", "forget", "PerfTestTask/checkout-smoke", "--sandbox").returncode == 0
    missing = run_cli("state", "import", "PerfTestTask/checkout-smoke", "987654", "examples", "--sandbox")
    assert missing.returncode == 1 and "no task with id 987654" in missing.stderr
    kept = run_cli("state", "import", "PerfTestTask/checkout-smoke", shown["remote_id"], "examples", "--sandbox")
    assert kept.returncode == 0, kept.stderr
    again = run_cli("plan", "examples", "--sandbox", "--detailed-exitcode")
    assert again.returncode == 0, again.stdout


def test_a_misspelt_provider_variable_stops_plan_and_the_apply_of_a_saved_plan(run_cli: RunCli) -> None:
    assert run_cli("plan", str(EXAMPLES), "--out", "plan.json").returncode == 0
    misspelt = {"RECONCILER_TOLOKA_ENDPIONT": "https://toloka.dev"}
    for args in (("plan", str(EXAMPLES)), ("apply", "plan.json", "--auto-approve")):
        done = run_cli(*args, env=misspelt)
        assert done.returncode == 1, done.stdout
        [line] = done.stderr.splitlines()
        assert "RECONCILER_TOLOKA_ENDPIONT" in line and "RECONCILER_TOLOKA_ENDPOINT" in line, line
        assert "reconciler will perform" not in done.stdout


def test_a_bad_provider_variable_value_stops_plan_before_any_plan_is_shown(run_cli: RunCli) -> None:
    done = run_cli("plan", str(EXAMPLES), env={"RECONCILER_TOLOKA_RATE_LIMIT": "abc"})

    assert done.returncode == 1, done.stdout
    [line] = done.stderr.splitlines()
    assert "RECONCILER_TOLOKA_RATE_LIMIT" in line and "must be a number of requests per second" in line, line
    assert done.stdout == ""


def test_validate_offers_no_workspace_since_it_reads_no_state(tmp_path: Path) -> None:
    refused = subprocess.run(
        [sys.executable, "-m", "reconciler", "validate", str(EXAMPLES), "--workspace", "staging"],
        cwd=tmp_path,
        env=_environment(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode == 1 and "No such option '--workspace'" in refused.stderr
    assert (
        "--workspace"
        not in subprocess.run(
            [sys.executable, "-m", "reconciler", "validate", "--help"], capture_output=True, text=True, timeout=60
        ).stdout
    )
