"""The CI recipes in examples/ci, as a user copies them: they parse, every reconciler command in them is one the
real command line accepts, they refuse to run without a state, and the drift jobs stay quiet on known drift.

Shell steps are run here with bash (or sh for the cron wrapper) and a stand-in `reconciler` (and `gh`) on PATH
that logs its arguments and answers as the contract says: exit 0 in sync, 2 drift, 1 an error.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shlex
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import pytest
import yaml

from reconciler.cli import cli

ROOT = Path(__file__).resolve().parents[2]
CI = ROOT / "examples" / "ci"
YAML_FILES = sorted(p for p in CI.rglob("*") if p.suffix in (".yml", ".yaml"))
WRAPPER = CI / "cron" / "reconciler-drift"
CRONTAB = CI / "cron" / "crontab"
GITHUB_DRIFT = CI / "github-actions-drift.yml"
GITLAB_POSTGRES = CI / "gitlab-ci-postgres.yml"
GITHUB_POSTGRES = CI / "github-actions-postgres.yml"

_GITLAB_KEYWORDS = {"default", "include", "stages", "variables", "workflow", "image", "services", "cache"}
#: `reconciler` where a shell runs it: at the start of a command, not inside a message.
_AT_COMMAND = re.compile(r"(?:^|&&|\|\||[;|()!]|\$\(|\b(?:if|then|elif|else|do)\s)\s*reconciler\s+(?P<rest>.*)")
_RUNS_STATE = {"plan", "apply", "drift"}
_EXPRESSION = re.compile(r"\$\{\{.*?\}\}")


# --- Reading the recipes -------------------------------------------------------------------------------------


def _load(path: Path) -> dict[Any, Any]:
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(doc, dict), f"{path.name} is not a mapping"
    return doc


def _flatten(items: Any) -> list[str]:
    if isinstance(items, str):
        return [items]
    return [line for item in items or [] for line in _flatten(item)]


def _jobs(path: Path) -> dict[str, list[tuple[dict[str, Any], str]]]:
    """Each job's shell scripts in order, with the step (GitHub) or job (GitLab) they belong to."""
    doc = _load(path)
    if "jobs" in doc:
        return {
            name: [(step, step["run"]) for step in job.get("steps", []) if "run" in step]
            for name, job in doc["jobs"].items()
        }
    default = doc.get("default") or {}
    jobs = {}
    for name, job in doc.items():
        if name in _GITLAB_KEYWORDS or str(name).startswith(".") or not isinstance(job, dict) or "script" not in job:
            continue
        lines = _flatten(job.get("before_script", default.get("before_script"))) + _flatten(job["script"])
        jobs[name] = [(job, line) for line in lines]
    return jobs


def _logical_lines(script: str) -> Iterator[str]:
    for line in script.replace("\\\n", " ").splitlines():
        if not line.lstrip().startswith("#"):
            yield line


def _commands(script: str) -> Iterator[list[str]]:
    """The words of each `reconciler ...` command in a script, up to the first shell operator."""
    for line in _logical_lines(script):
        for match in _AT_COMMAND.finditer(line):
            lexer = shlex.shlex(match["rest"], posix=True, punctuation_chars=True)
            lexer.whitespace_split = True
            lexer.commenters = "#"
            words = []
            for word in lexer:
                if word and set(word) <= set("();<>|&"):
                    break
                words.append(word)
            yield words


def _shell_sources() -> list[Path]:
    return [*YAML_FILES, WRAPPER]


def _all_commands() -> list[tuple[str, list[str]]]:
    found = []
    for path in _shell_sources():
        scripts = (
            [WRAPPER.read_text(encoding="utf-8")]
            if path == WRAPPER
            else [s for job in _jobs(path).values() for _, s in job]
        )
        for script in scripts:
            found += [(path.relative_to(ROOT).as_posix(), words) for words in _commands(script)]
    return found


# --- 1. They parse -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", YAML_FILES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_yaml_recipe_parses_and_has_jobs_that_run_something(path: Path) -> None:
    jobs = _jobs(path)
    assert jobs, f"{path.name}: no jobs"
    assert all(scripts for scripts in jobs.values()), f"{path.name}: a job runs no script"


def test_the_recipes_exist() -> None:
    names = {p.relative_to(CI).as_posix() for p in CI.rglob("*") if p.is_file()}
    assert {"github-actions-postgres.yml", "github-actions-drift.yml", "gitlab-ci-postgres.yml"} <= names
    assert {"cron/reconciler-drift", "cron/crontab"} <= names
    assert os.access(WRAPPER, os.X_OK), "the cron wrapper is not executable"


# --- 2. Every reconciler command is one the CLI accepts ------------------------------------------------------


def _problems(words: list[str]) -> list[str]:
    ctx = click.Context(cli)
    command: click.Command = cli
    group_options = {o: p for p in cli.params if isinstance(p, click.Option) for o in p.opts + p.secondary_opts}
    words = list(words)
    names = ["reconciler"]
    while words and words[0].startswith("-") and words[0] in group_options:
        option = group_options[words.pop(0)]
        if not (option.is_flag or option.count) and words:
            words.pop(0)
    while isinstance(command, click.Group):
        if not words:
            return [f"{' '.join(names)}: no subcommand"]
        name = words.pop(0)
        sub = command.get_command(ctx, name)
        if sub is None:
            return [f"{' '.join(names)} has no command {name!r} (has: {', '.join(command.list_commands(ctx))})"]
        command, names = sub, [*names, name]
    where = " ".join(names)
    options = {o: p for p in command.params if isinstance(p, click.Option) for o in p.opts + p.secondary_opts}
    options = {**group_options, **options}
    problems, positional = [], 0
    while words:
        word = words.pop(0)
        if word.startswith("-") and word != "-":
            name, has_value, value = word.partition("=")
            option = options.get(name)
            if option is None:
                problems.append(f"{where}: no option {name} (has: {', '.join(sorted(options))})")
                continue
            if option.is_flag or option.count:
                continue
            if not has_value:
                if not words:
                    problems.append(f"{where}: {name} without a value")
                    break
                value = words.pop(0)
            if isinstance(option.type, click.Choice) and "$" not in value and value not in option.type.choices:
                problems.append(f"{where}: {name} {value!r} is not one of {list(option.type.choices)}")
        else:
            positional += 1
    arguments = [p for p in command.params if isinstance(p, click.Argument)]
    required = sum(1 for a in arguments if a.required and a.nargs > 0)
    if positional < required:
        problems.append(f"{where}: {positional} arguments, needs {required}")
    if all(a.nargs > 0 for a in arguments) and positional > sum(a.nargs for a in arguments):
        problems.append(f"{where}: {positional} arguments, takes {sum(a.nargs for a in arguments)}")
    return problems


def test_the_command_check_catches_what_it_should() -> None:
    assert _problems(["plan", "manifests/", "--out", "plan.json", "--detailed-exitcode"]) == []
    assert _problems(["--no-color", "state", "pull", "x.db", "-m", "manifests/"]) == []
    assert "no command 'plna'" in _problems(["plna", "manifests/"])[0]
    assert "no option --detailed-exit-code" in _problems(["plan", "m/", "--detailed-exit-code"])[0]
    assert "is not one of" in _problems(["plan", "m/", "--format", "markdwn"])[0]
    assert "needs 1" in _problems(["state", "pull"])[0]
    script = 'x=$(reconciler show p.json --format markdown) || echo "reconciler drift failed"\n  2) reconciler drift m/'
    assert list(_commands(script)) == [["show", "p.json", "--format", "markdown"], ["drift", "m/"]]
    assert list(_commands("# reconciler drift --bogus\ncommand -v reconciler > /dev/null")) == []


@pytest.mark.parametrize(
    "where, words", _all_commands(), ids=[f"{w}: reconciler {' '.join(c[:2])}" for w, c in _all_commands()]
)
def test_every_reconciler_command_in_the_recipes_is_accepted_by_the_cli(where: str, words: list[str]) -> None:
    assert not _problems(words), f"{where}: reconciler {' '.join(words)}:\n" + "\n".join(_problems(words))


def test_the_recipes_use_the_commands_they_promise() -> None:
    used = {
        (Path(where).name, words[0], word)
        for where, words in _all_commands()
        for word in words
        if word.startswith("--")
    }
    assert {
        ("github-actions-drift.yml", "drift", "--json"),
        ("github-actions-drift.yml", "drift", "--format"),
        ("github-actions-postgres.yml", "show", "--format"),
        ("gitlab-ci-postgres.yml", "show", "--format"),
        ("gitlab-ci-postgres.yml", "apply", "--auto-approve"),
        ("gitlab-ci-postgres.yml", "drift", "--json"),
        ("reconciler-drift", "drift", "--json"),
        ("reconciler-drift", "drift", "--format"),
    } <= used


# --- 3. Fail closed: the state is read before anything plans, applies or compares -----------------------------


def _fake_bin(tmp_path: Path) -> Path:
    """A `reconciler` that logs its arguments; `state pull` exits FAKE_PULL, `drift` prints a report with the
    fingerprint FAKE_FP and exits FAKE_DRIFT, `apply` exits FAKE_APPLY (on 1 refusing the plan as stale, before
    writing any event). A `gh` that logs, and answers `issue list` with FAKE_ISSUE and the issue's own body with
    FAKE_BODY; the pull requests of a commit with FAKE_PR ("NUMBER HEAD_SHA", as the recipe's --jq prints them),
    `run list` with FAKE_RUN (a run id), and `run download -n NAME` with a plan.json only if NAME is
    FAKE_ARTIFACT."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "reconciler").write_text(
        """#!/bin/sh
echo "reconciler $*" >> "$FAKE_LOG"
case "$1 $2" in "state pull") exit "${FAKE_PULL:-0}" ;; esac
if [ "$1" = drift ]; then
  case " $* " in
    *" --json "*) printf '{"format_version": 1, "in_sync": false, "fingerprint": "%s", "summary": {"gone": 1,
      "changed": 0, "unreadable": 0, "unapplied": 0}, "findings": []}\\n' "$FAKE_FP" ;;
    *) echo "REPORT $FAKE_FP" ;;
  esac
  exit "${FAKE_DRIFT:-0}"
fi
if [ "$1" = apply ]; then
  case "${FAKE_APPLY:-0}" in
    0) echo '{"event": "summary"}' ;;
    1) echo "Error: plan.json is stale: it was made against state serial 3, and the state is now at serial 4" >&2 ;;
  esac
  exit "${FAKE_APPLY:-0}"
fi
case " $* " in *" --format markdown "*) echo "| plan |" ;; esac
exit 0
""",
        encoding="utf-8",
    )
    (bin_dir / "gh").write_text(
        """#!/bin/sh
echo "gh $*" >> "$FAKE_LOG"
case "$1 $2" in
  "issue list") [ -n "${FAKE_ISSUE:-}" ] && echo "$FAKE_ISSUE" ;;
  "api repos/"*/commits/*/pulls) [ -n "${FAKE_PR:-}" ] && echo "$FAKE_PR" ;;
  "api repos/"*) printf '%s\\n' "${FAKE_BODY:-}" ;;
  "run list") [ -n "${FAKE_RUN:-}" ] && echo "$FAKE_RUN" ;;
  "run download")
    while [ "$#" -gt 0 ] && [ "$1" != -n ]; do shift; done
    if [ -n "${FAKE_ARTIFACT:-}" ] && [ "${2:-}" = "$FAKE_ARTIFACT" ]; then
      echo '{"format_version": 2, "lineage": "l"}' > plan.json
    else
      echo "no artifact matches any of the names or patterns provided" >&2
      exit 1
    fi ;;
esac
exit 0
""",
        encoding="utf-8",
    )
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)
    return bin_dir


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {
        "PATH": f"{_fake_bin(tmp_path)}:{os.environ['PATH']}",
        "HOME": str(tmp_path),
        "TMPDIR": str(tmp_path),
        "RUNNER_TEMP": str(tmp_path),
        "FAKE_LOG": str(tmp_path / "log"),
        **extra,
    }


def _step_env(step: dict[str, Any]) -> dict[str, str]:
    env = step.get("env") if isinstance(step.get("env"), dict) else step.get("variables") or {}
    return {k: _EXPRESSION.sub("", str(v)) for k, v in env.items() if isinstance(v, str | int)}


def _bash(script: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", "-e", "-c", script], cwd=cwd, env=env, capture_output=True, text=True, timeout=30)


def _log(tmp_path: Path) -> str:
    log = tmp_path / "log"
    return log.read_text(encoding="utf-8") if log.exists() else ""


def _state_jobs() -> list[tuple[str, str, list[tuple[dict[str, Any], str]]]]:
    """(recipe, job, the scripts before its first plan/apply/drift) for every job that runs one."""
    found = []
    for path in YAML_FILES:
        for name, scripts in _jobs(path).items():
            firsts = [i for i, (_, s) in enumerate(scripts) if any(w and w[0] in _RUNS_STATE for w in _commands(s))]
            if firsts:
                before = [(owner, s) for owner, s in scripts[: firsts[0]] if "pip install" not in s]
                found.append((path.name, name, before))
    return found


def test_every_recipe_job_that_plans_applies_or_compares_is_found() -> None:
    found = {(recipe, job) for recipe, job, _ in _state_jobs()}
    assert {("github-actions-drift.yml", "drift"), ("github-actions-postgres.yml", "plan")} <= found
    assert {("gitlab-ci-postgres.yml", n) for n in ("plan", "apply", "drift")} <= found


@pytest.mark.parametrize("recipe, job, checks", _state_jobs(), ids=lambda v: v if isinstance(v, str) else "")
def test_a_job_reads_its_state_first_and_stops_without_it(
    recipe: str, job: str, checks: list[tuple[dict[str, Any], str]], tmp_path: Path
) -> None:
    # A database state (the manifests' StateBackend) is read with `reconciler state pull`; the SQLite recipes
    # look at their RECONCILER_STATE file. Either way: no state, no run.
    in_a_database = "kind: StateBackend" in (CI / recipe).read_text(encoding="utf-8")
    if in_a_database:
        assert any("reconciler state pull" in s for _, s in checks), f"{recipe}: {job} never reads its state first"
    state = tmp_path / "srv" / "production.db"
    missing = [
        _bash(s, tmp_path, _env(tmp_path, FAKE_PULL="1", **_step_env(owner), RECONCILER_STATE=str(state)))
        for owner, s in checks
    ]
    assert any(done.returncode != 0 for done in missing), f"{recipe}: {job} goes on with no state"
    if in_a_database:
        assert "reconciler state pull" in _log(tmp_path)
    state.parent.mkdir()
    state.write_bytes(b"SQLite format 3\0")
    present = [
        _bash(s, tmp_path, _env(tmp_path, FAKE_PULL="0", **_step_env(owner), RECONCILER_STATE=str(state)))
        for owner, s in checks
    ]
    failed = [done.stderr for done in present if done.returncode != 0]
    assert not failed, f"{recipe}: {job} refuses a state that exists: {failed}"


# --- 4. GitHub: one issue, updated on new drift only; exit 2 is no failure ----------------------------------


def _github_drift_steps() -> tuple[dict[str, Any], dict[str, Any]]:
    steps = _load(GITHUB_DRIFT)["jobs"]["drift"]["steps"]
    drift = next(s for s in steps if s.get("id") == "drift")
    issue = next(s for s in steps[steps.index(drift) :] if "gh issue" in s.get("run", ""))
    return drift, issue


def test_the_github_drift_workflow_runs_nightly_and_may_write_issues_only() -> None:
    doc = _load(GITHUB_DRIFT)
    on = doc.get("on", doc.get(True))
    assert on["schedule"][0]["cron"].count(" ") == 4 and "workflow_dispatch" in on
    assert doc["permissions"] == {"contents": "read", "issues": "write"}


@pytest.mark.parametrize("status, fails", [(0, False), (2, False), (1, True)])
def test_the_github_drift_step_fails_only_on_an_error(status: int, fails: bool, tmp_path: Path) -> None:
    step, _ = _github_drift_steps()
    output = tmp_path / "output"
    done = _bash(step["run"], tmp_path, _env(tmp_path, FAKE_DRIFT=str(status), FAKE_FP="f1", GITHUB_OUTPUT=str(output)))
    assert (done.returncode != 0) is fails, done.stderr
    assert f"status={status}" in output.read_text(encoding="utf-8")
    assert (tmp_path / "drift.md").exists() is (status == 2)


@pytest.mark.skipif(shutil.which("jq") is None, reason="jq is not installed (GitHub's runners have it)")
@pytest.mark.parametrize(
    "status, issue, recorded, expected",
    [
        (2, "", "", "gh issue create"),
        (2, "7", "f1", None),
        (2, "7", "f0", "gh issue comment 7"),
        (2, "7", "", "gh issue comment 7"),
        (0, "7", "", "gh issue close 7"),
        (0, "", "", None),
    ],
    ids=["new drift opens", "known drift is quiet", "other drift comments", "unmarked issue", "in sync closes", "calm"],
)
def test_the_github_drift_issue_is_opened_updated_on_new_drift_only_and_closed(
    status: int, issue: str, recorded: str, expected: str | None, tmp_path: Path
) -> None:
    _, step = _github_drift_steps()
    (tmp_path / "drift.json").write_text(json.dumps({"fingerprint": "f1", "summary": {"gone": 1}}), encoding="utf-8")
    (tmp_path / "drift.md").write_text("REPORT f1\n", encoding="utf-8")
    body = f"report\n<!-- drift-fingerprint: {recorded} -->" if recorded else "written by hand"
    env = _env(tmp_path, DRIFT_STATUS=str(status), FAKE_ISSUE=issue, FAKE_BODY=body, GH_REPO="o/r", RUN_URL="u")
    done = _bash(step["run"], tmp_path, env)
    assert done.returncode == 0, done.stderr
    writes = [c for c in _log(tmp_path).splitlines() if re.match(r"gh issue (create|comment|close)", c)]
    assert writes == ([c for c in writes if c.startswith(expected)] if expected else []), writes
    assert len(writes) == (1 if expected else 0), writes
    if expected and status == 2:
        posted = (tmp_path / "issue.md").read_text(encoding="utf-8")
        assert "<!-- drift-fingerprint: f1 -->" in posted and "REPORT f1" in posted
        assert "--label drift" in writes[0] or "comment" in writes[0]


# --- 5. GitLab: plan in merge requests, apply that plan, drift on schedules -----------------------------------


def test_the_gitlab_recipe_applies_the_plan_of_its_plan_job_and_drifts_on_schedules_only() -> None:
    doc = _load(GITLAB_POSTGRES)
    apply = doc["apply"]
    assert {"job": "plan", "artifacts": True} in apply["needs"]
    assert "plan.json" in doc["plan"]["artifacts"]["paths"]
    assert any(words[:2] == ["apply", "plan.json"] for s in _flatten(apply["script"]) for words in _commands(s))
    assert [r["if"] for r in doc["drift"]["rules"]] == ['$CI_PIPELINE_SOURCE == "schedule"']
    for job in ("plan", "apply"):
        assert {"if": '$CI_PIPELINE_SOURCE == "schedule"', "when": "never"} in doc[job]["rules"], job
    assert {"drift.json", "drift.md"} <= set(doc["drift"]["artifacts"]["paths"])
    assert doc["drift"]["artifacts"]["when"] == "always"


@pytest.mark.parametrize("status, fails", [(0, False), (2, False), (1, True)])
def test_the_gitlab_drift_job_fails_only_on_an_error(status: int, fails: bool, tmp_path: Path) -> None:
    script = _flatten(_load(GITLAB_POSTGRES)["drift"]["script"])[-1]
    done = _bash(script, tmp_path, _env(tmp_path, FAKE_DRIFT=str(status), FAKE_FP="f1"))
    assert (done.returncode != 0) is fails, done.stderr
    assert (tmp_path / "drift.json").exists()


# --- 5b. GitHub: a merge applies exactly the plan reviewed on its pull request, or nothing --------------------

MERGED, HEAD = "a" * 40, "b" * 40  # the commit pushed to main, and the head of the pull request it merged
REVIEWED = f"plan-{HEAD}"


def _bootstrap_only(step: dict[str, Any]) -> bool:
    return str(step.get("if", "")).replace(" ", "") == "inputs.bootstrap==true"


def _github_applies() -> list[tuple[dict[str, Any], list[str]]]:
    steps = _load(GITHUB_POSTGRES)["jobs"]["apply"]["steps"]
    return [(step, words) for step in steps if "run" in step for words in _commands(step["run"]) if words[0] == "apply"]


def _reviewed_plan_step() -> dict[str, Any]:
    steps = [step for step, _ in _github_applies() if not _bootstrap_only(step)]
    assert len(steps) == 1, "one step applies outside the bootstrap"
    return steps[0]


def test_the_github_plan_is_kept_under_the_name_of_the_pull_requests_head_commit() -> None:
    steps = _load(GITHUB_POSTGRES)["jobs"]["plan"]["steps"]
    uploads = [s for s in steps if str(s.get("uses", "")).startswith("actions/upload-artifact@")]
    assert [u["with"]["name"] for u in uploads] == ["plan-${{ github.event.pull_request.head.sha }}"]
    assert uploads[0]["with"]["path"] == "plan.json"
    assert any("reconciler show plan.json --format markdown" in s.get("run", "") for s in steps)


def test_the_github_merge_applies_the_reviewed_plan_and_manifests_only_on_the_bootstrap() -> None:
    job = _load(GITHUB_POSTGRES)["jobs"]["apply"]
    assert job["permissions"] == {"contents": "read", "actions": "read", "pull-requests": "read"}
    reviewed = [words for step, words in _github_applies() if not _bootstrap_only(step)]
    assert reviewed and all(words[1:2] == ["plan.json"] for words in reviewed), reviewed
    assert all({"--auto-approve", "--lock-timeout"} <= set(words) for words in reviewed)
    bootstrap = [words for step, words in _github_applies() if _bootstrap_only(step)]
    assert [words[1] for words in bootstrap] == ["manifests/"]
    step = _reviewed_plan_step()
    assert step["if"] == "inputs.bootstrap != true"
    assert step["env"]["GH_TOKEN"] == "${{ github.token }}" and step["env"]["SHA"] == "${{ github.sha }}"
    names = [s.get("name", "") for s in job["steps"]]
    check = names.index("Check that the state exists (fails closed)")
    assert all(check < job["steps"].index(s) for s, _ in _github_applies()), "an apply runs before the state check"


def _reviewed_apply(tmp_path: Path, **fakes: str) -> subprocess.CompletedProcess[str]:
    """The apply step as GitHub runs it (bash -eo pipefail), on a push of MERGED, with a fake `gh`."""
    step = _reviewed_plan_step()
    env = {
        **_step_env(step),
        "GH_REPO": "o/r",
        "SHA": MERGED,
        "WORKFLOW_REF": "o/r/.github/workflows/reconcile.yml@refs/heads/main",
        **fakes,
    }
    return subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]],
        cwd=tmp_path,
        env=_env(tmp_path, **env),
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_the_github_merge_applies_the_plan_artifact_of_the_merged_pull_request(tmp_path: Path) -> None:
    done = _reviewed_apply(tmp_path, FAKE_PR=f"12 {HEAD}", FAKE_RUN="4242", FAKE_ARTIFACT=REVIEWED)
    assert done.returncode == 0, done.stderr
    log = _log(tmp_path).splitlines()
    assert f"gh api repos/o/r/commits/{MERGED}/pulls" in log[0]
    assert any(c.startswith("gh run list --workflow reconcile.yml") and f"--commit {HEAD}" in c for c in log), log
    assert f"gh run download 4242 -n {REVIEWED}" in log
    assert [c for c in log if c.startswith("reconciler")] == [
        "reconciler apply plan.json --auto-approve --lock-timeout 10m --json"
    ]
    assert (tmp_path / "apply.jsonl").read_text(encoding="utf-8").strip()


@pytest.mark.parametrize(
    "fakes, says",
    [
        ({}, ["No pull request was merged as", "through a pull request", "bootstrap"]),
        ({"FAKE_PR": f"12 {HEAD}"}, [f"No plan artifact {REVIEWED}", "re-run the plan job on the"]),
        ({"FAKE_PR": f"12 {HEAD}", "FAKE_RUN": "4242"}, [f"No plan artifact {REVIEWED}", "or expired"]),
        ({"FAKE_PR": f"12 {HEAD}", "FAKE_RUN": "4242", "FAKE_ARTIFACT": f"plan-{MERGED}"}, ["No plan artifact"]),
    ],
    ids=["direct push", "no successful plan run", "no artifact", "another commit's artifact"],
)
def test_the_github_merge_applies_nothing_without_a_reviewed_plan(
    fakes: dict[str, str], says: list[str], tmp_path: Path
) -> None:
    (tmp_path / "plan.json").write_text('{"format_version": 2, "lineage": "left over"}', encoding="utf-8")
    done = _reviewed_apply(tmp_path, **fakes)
    assert done.returncode == 1, done.stderr
    assert all(words in done.stderr for words in says), done.stderr
    assert "reconciler" not in _log(tmp_path), "reconciler ran without the reviewed plan"
    assert ("gh run download" in _log(tmp_path)) is ("FAKE_RUN" in fakes)


def test_the_github_merge_stops_on_a_stale_plan_and_never_plans_afresh(tmp_path: Path) -> None:
    done = _reviewed_apply(tmp_path, FAKE_PR=f"12 {HEAD}", FAKE_RUN="4242", FAKE_ARTIFACT=REVIEWED, FAKE_APPLY="1")
    assert done.returncode == 1
    assert "is stale" in done.stderr
    assert "re-run the plan job on the pull request, or open a new one" in done.stderr
    assert [c for c in _log(tmp_path).splitlines() if c.startswith("reconciler")] == [
        "reconciler apply plan.json --auto-approve --lock-timeout 10m --json"
    ]


# --- 6. The cron wrapper ------------------------------------------------------------------------------------


def test_the_cron_wrapper_is_valid_posix_sh() -> None:
    done = subprocess.run(["sh", "-n", str(WRAPPER)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck is not installed")
def test_the_cron_wrapper_passes_shellcheck() -> None:
    done = subprocess.run(["shellcheck", "-s", "sh", str(WRAPPER)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_crontab_has_one_job_line_that_runs_the_wrapper() -> None:
    lines = [line for line in CRONTAB.read_text(encoding="utf-8").splitlines() if line.strip()]
    jobs = [line for line in lines if not line.startswith("#") and not re.match(r"^[A-Z_]+=", line)]
    assert len(jobs) == 1, jobs
    fields = jobs[0].split(None, 5)
    assert all(re.fullmatch(r"[\d*/,-]+", f) for f in fields[:5]), "not five cron time fields"
    assert "reconciler-drift" in fields[5]
    assert "%" not in fields[5].replace("\\%", ""), "cron turns an unescaped % into a newline"


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", "-c", "init.defaultBranch=main"]
    origin = tmp_path / "origin"
    (origin / "manifests").mkdir(parents=True)
    (origin / "manifests" / "a.yaml").write_text("apiVersion: reconciler/v1\n", encoding="utf-8")
    quiet = {"check": True, "capture_output": True}
    subprocess.run([*git, "init", "-q", str(origin)], **quiet)
    subprocess.run([*git, "-C", str(origin), "add", "."], **quiet)
    subprocess.run([*git, "-C", str(origin), "commit", "-q", "-m", "m"], **quiet)
    subprocess.run([*git, "clone", "-q", str(origin), str(tmp_path / "checkout")], **quiet)
    return tmp_path / "checkout"


def _wrapper(checkout: Path, tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    full = _env(
        tmp_path, STATE_DIR=str(tmp_path / "state"), **{"ALERT_COMMAND": f"cat >> {tmp_path / 'alerts'}", **env}
    )
    full["GIT_CONFIG_NOSYSTEM"] = "1"
    return subprocess.run([str(WRAPPER), str(checkout)], env=full, capture_output=True, text=True, timeout=30)


def _alerts(tmp_path: Path) -> list[str]:
    alerts = tmp_path / "alerts"
    return alerts.read_text(encoding="utf-8").splitlines() if alerts.exists() else []


def test_the_cron_wrapper_alerts_once_per_new_drift(checkout: Path, tmp_path: Path) -> None:
    runs = [("2", "f1"), ("2", "f1"), ("2", "f2"), ("2", "f2"), ("0", ""), ("2", "f2")]
    for status, fingerprint in runs:
        done = _wrapper(checkout, tmp_path, FAKE_DRIFT=status, FAKE_FP=fingerprint)
        assert done.returncode == 0, done.stderr
        assert done.stdout == "" and done.stderr == "", "a quiet run must print nothing, or cron mails it"
    assert _alerts(tmp_path) == ["REPORT f1", "REPORT f2", "REPORT f2"]
    assert "reconciler drift manifests/ --format text" in _log(tmp_path)


def test_the_cron_wrapper_fails_on_errors_and_alerts_again_after_a_failed_alert(checkout: Path, tmp_path: Path) -> None:
    done = _wrapper(checkout, tmp_path, FAKE_DRIFT="1", FAKE_FP="f1")
    assert done.returncode == 1 and "failed" in done.stderr and _alerts(tmp_path) == []
    done = _wrapper(checkout, tmp_path, FAKE_DRIFT="2", FAKE_FP="f1", ALERT_COMMAND="false")
    assert done.returncode == 1 and "ALERT_COMMAND" in done.stderr
    assert _wrapper(checkout, tmp_path, FAKE_DRIFT="2", FAKE_FP="f1").returncode == 0
    assert _alerts(tmp_path) == ["REPORT f1"]


def test_the_cron_wrapper_refuses_to_run_without_a_state(checkout: Path, tmp_path: Path) -> None:
    done = _wrapper(checkout, tmp_path, FAKE_PULL="1", FAKE_DRIFT="2", FAKE_FP="f1")
    assert done.returncode == 1 and "no state" in done.stderr
    assert "reconciler state pull" in _log(tmp_path) and "reconciler drift" not in _log(tmp_path)
    assert _alerts(tmp_path) == []


def test_two_cron_runs_never_overlap(checkout: Path, tmp_path: Path) -> None:
    (tmp_path / "state").mkdir()
    with open(tmp_path / "state" / "lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        done = _wrapper(checkout, tmp_path, FAKE_DRIFT="2", FAKE_FP="f1")
    assert done.returncode == 1 and "lock" in done.stderr
    assert "reconciler drift" not in _log(tmp_path)
