"""What the README and the CI recipes tell people to run: it installs this project, and never starts from nothing.

The name `reconciler` on PyPI belongs to an unrelated project, so every install line must name this project's
distribution (read from pyproject.toml) at a pinned version. A CI job that starts with an empty state plans
every resource as new and creates it all again, so every recipe that runs reconciler checks its state first
and fails the job without it, except on the one bootstrap run it allows by an explicit switch. The recipes'
check is run here, with bash, against a real state made by reconciler and against no state at all.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from reconciler.state import open_store

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
RECIPES = sorted(p for p in (ROOT / "examples" / "ci").iterdir() if p.suffix in (".yml", ".yaml"))
TEST_COMMAND = "python3 -m venv .venv && . .venv/bin/activate && pip install -q -e '.[test]' && pytest"
QUICKSTART = (
    "python3 -m venv .venv && . .venv/bin/activate && pip install -e . && "
    "reconciler apply examples/ --sandbox --auto-approve"
)

_INSTALL = re.compile(r"\b(?:pip3?|pipx|uv\s+pip)\s+install\b(?P<args>[^`]*)")
_RUNS_STATE = re.compile(r"^\s*reconciler\s+(?:plan|apply)\b", re.MULTILINE)
_RUNS_RECONCILER = re.compile(r"^\s*reconciler\s", re.MULTILINE)
_APPLIES = re.compile(r"^\s*reconciler\s+apply\b", re.MULTILINE)
#: A check of the state made with reconciler itself (a database state has no file to look at).
_READS_STATE = re.compile(r"\breconciler\s+state\s+pull\b")
_EXPRESSION = re.compile(r"\$\{\{\s*(?P<expr>.*?)\s*\}\}")
_HOSTED_RUNNER = re.compile(r"^(ubuntu|windows|macos)-")
_GITLAB_KEYWORDS = {"default", "include", "stages", "variables", "workflow", "image", "services", "cache"}
_SHELL_END = {"&&", "||", ";", "|", ">", ">>", "2>&1"}
_OPTIONS_WITH_VALUE = {"-c", "--constraint", "-i", "--index-url", "--extra-index-url", "-f", "--find-links"}


def _project() -> tuple[str, str]:
    table = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return canonicalize_name(table["name"]), table["version"]


# --- Install lines -------------------------------------------------------------------------------------------


def _install_lines(path: Path) -> Iterator[tuple[int, str, bool]]:
    """(line number, the words after `pip install`, strict): strict where a checkout of this project is not
    at hand: anywhere in a CI recipe, and in the README's YAML blocks (its CI sketch)."""
    strict_file = path != README
    fence: str | None = None
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if path == README and line.lstrip().startswith("```"):
            fence = None if fence is not None else line.strip().strip("`").strip()
            continue
        for match in _INSTALL.finditer(line):
            yield number, match["args"], strict_file or fence in ("yaml", "yml")


def _requirements(args: str) -> Iterator[str]:
    words = iter(shlex.split(args, comments=True))
    for word in words:
        if word in _SHELL_END:
            return
        if word in ("-e", "--editable"):
            yield next(words)
        elif word in ("-r", "--requirement"):
            yield f"requirements file {next(words)}"
        elif word in _OPTIONS_WITH_VALUE:
            next(words)
        elif not word.startswith("-"):
            yield word


def _why_not_this_project_pinned(requirement: str, *, strict: bool) -> str | None:
    name, version = _project()
    if re.fullmatch(r"\./?(\[[\w,-]+\])?", requirement):
        if strict:
            return "installs the current directory, which in a CI job is your own repository, not this project"
        return None  # the README's checkout of this project, at whatever commit it is
    if requirement.endswith(".whl"):
        wheel_name, wheel_version = Path(requirement).name.split("-")[:2]
        if canonicalize_name(wheel_name) != name or wheel_version != version:
            return f"a wheel of {wheel_name} {wheel_version}, not {name} {version}"
        return None
    try:
        req = Requirement(requirement)
    except InvalidRequirement:
        return "not a requirement that names a distribution"
    if canonicalize_name(req.name) != name:
        return f"installs {req.name!r}, not this project ({name!r})"
    if req.url:
        ref = req.url.rsplit("@", 1)[-1] if req.url.count("@") else ""
        if ref not in (f"v{version}", version) and not re.fullmatch(r"[0-9a-f]{40}", ref):
            return f"{req.url} is not pinned to v{version} or a commit"
        return None
    if str(req.specifier) != f"=={version}":
        return f"not pinned to =={version}"
    return None


@pytest.mark.parametrize("path", [README, *RECIPES], ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_install_line_installs_this_project_pinned(path: Path) -> None:
    problems, strict_lines = [], 0
    for number, args, strict in _install_lines(path):
        strict_lines += strict
        requirements = list(_requirements(args))
        if not requirements:
            problems.append(f"line {number}: installs nothing it names")
        for requirement in requirements:
            why = _why_not_this_project_pinned(requirement, strict=strict)
            if why:
                problems.append(f"line {number}: {requirement!r}: {why}")
    assert not problems, f"{path.name}:\n" + "\n".join(problems)
    assert strict_lines, f"{path.name} shows no pinned install of this project for a CI job"


def test_the_readme_keeps_the_quickstart_and_the_test_command_ci_runs() -> None:
    lines = [line.strip() for line in README.read_text(encoding="utf-8").splitlines()]
    assert QUICKSTART in lines
    assert TEST_COMMAND in lines


def test_the_distribution_is_not_the_unrelated_pypi_project() -> None:
    name, _ = _project()
    assert name != "reconciler"


# --- CI recipes ----------------------------------------------------------------------------------------------


@dataclass
class Script:
    text: str
    env: dict[str, str]


@dataclass
class Job:
    name: str
    scripts: list[Script]
    runner: list[str]


@dataclass
class Recipe:
    """A CI file read the way its CI reads it: jobs of shell scripts, each with the environment it gets."""

    name: str
    doc: dict[Any, Any]

    @property
    def github(self) -> bool:
        return "jobs" in self.doc

    def switches(self) -> dict[str, str]:
        """The explicit, off-by-default inputs a person sets by hand: GitHub's boolean `workflow_dispatch`
        inputs, GitLab's pipeline variables offered as "false"."""
        if self.github:
            on = self.doc.get("on", self.doc.get(True)) or {}
            inputs = (on.get("workflow_dispatch") or {}).get("inputs") or {} if isinstance(on, dict) else {}
            return {k: "true" for k, v in inputs.items() if v.get("type") == "boolean" and v.get("default") is False}
        return {k: "true" for k, v in self.doc.get("variables", {}).items() if _value(v) == "false"}

    def jobs(self, switches: Mapping[str, str] | None = None) -> list[Job]:
        return self._github_jobs(switches or {}) if self.github else self._gitlab_jobs(switches or {})

    def _github_jobs(self, inputs: Mapping[str, str]) -> list[Job]:
        def expand(env: Mapping[str, Any]) -> dict[str, str]:
            return {k: _EXPRESSION.sub(lambda m: _input(m["expr"], inputs), str(v)) for k, v in env.items()}

        jobs = []
        for name, job in self.doc["jobs"].items():
            env = {**expand(self.doc.get("env") or {}), **expand(job.get("env") or {})}
            scripts = [Script(s["run"], {**env, **expand(s.get("env") or {})}) for s in job["steps"] if "run" in s]
            runs_on = job["runs-on"]
            jobs.append(Job(name, scripts, [runs_on] if isinstance(runs_on, str) else list(runs_on)))
        return jobs

    def _gitlab_jobs(self, pipeline_variables: Mapping[str, str]) -> list[Job]:
        default = self.doc.get("default") or {}
        variables = {k: _value(v) for k, v in (self.doc.get("variables") or {}).items()}
        jobs = []
        for name, job in self.doc.items():
            if name in _GITLAB_KEYWORDS or str(name).startswith(".") or not isinstance(job, dict):
                continue
            env = {**variables, **{k: _value(v) for k, v in (job.get("variables") or {}).items()}}
            env.update(pipeline_variables)
            lines = _flatten(job.get("before_script", default.get("before_script", []))) + _flatten(job["script"])
            jobs.append(
                Job(name, [Script(line, env) for line in lines], list(job.get("tags", default.get("tags", []))))
            )
        return jobs


def _value(variable: Any) -> str:
    return str(variable["value"] if isinstance(variable, dict) else variable)


def _input(expression: str, inputs: Mapping[str, str]) -> str:
    match = re.fullmatch(r"(?:github\.event\.)?inputs\.(\w+)", expression)
    return inputs.get(match[1], "") if match else ""


def _flatten(items: Any) -> list[str]:
    if isinstance(items, str):
        return [items]
    return [line for item in items for line in _flatten(item)]


def _recipes() -> list[Recipe]:
    recipes = [Recipe(p.relative_to(ROOT).as_posix(), yaml.safe_load(p.read_text(encoding="utf-8"))) for p in RECIPES]
    blocks = re.findall(r"^```ya?ml\n(.*?)^```", README.read_text(encoding="utf-8"), re.MULTILINE | re.DOTALL)
    recipes += [
        Recipe(f"README.md (YAML block {i})", yaml.safe_load(b)) for i, b in enumerate(blocks, 1) if "jobs" in b
    ]
    return recipes


def _state_jobs(recipe: Recipe, switches: Mapping[str, str] | None = None) -> list[tuple[Job, list[Script]]]:
    """Each job that runs `reconciler plan` or `apply`, with the scripts it runs before the first of them that
    neither install nor run reconciler: the place for a check of the state."""
    found = []
    for job in recipe.jobs(switches):
        firsts = [i for i, s in enumerate(job.scripts) if _RUNS_STATE.search(s.text)]
        if firsts:
            before = job.scripts[: firsts[0]]
            checks = [
                s
                for s in before
                if not _INSTALL.search(s.text) and (_READS_STATE.search(s.text) or not _RUNS_RECONCILER.search(s.text))
            ]
            found.append((job, checks))
    return found


def _applies(job: Job) -> bool:
    return any(_APPLIES.search(s.text) for s in job.scripts)


def _run(script: Script, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    full_env = {"PATH": os.environ["PATH"], "HOME": str(cwd), **script.env, **env}
    return subprocess.run(["bash", "-e", "-c", script.text], cwd=cwd, env=full_env, capture_output=True, text=True)


def _real_state(path: Path) -> Path:
    with open_store(str(path), workspace="default", root=path.parent) as store:
        store.meta()
    assert path.stat().st_size > 0
    return path


def _applying_recipes() -> list[Recipe]:
    """The recipes that deploy: a drift-only one reads and never applies (``test_ci_recipes`` checks it)."""
    return [r for r in _recipes() if any(_APPLIES.search(s.text) for job in r.jobs() for s in job.scripts)]


RECIPE_IDS = [r.name for r in _applying_recipes()]


@pytest.mark.parametrize("recipe", _applying_recipes(), ids=RECIPE_IDS)
def test_every_recipe_checks_its_state_before_reconciler_runs_and_fails_closed_without_it(
    recipe: Recipe, tmp_path: Path
) -> None:
    jobs = _state_jobs(recipe)
    assert any(_applies(job) for job, _ in jobs), f"{recipe.name} never applies"
    state = tmp_path / "srv" / "production.db"
    for job, checks in jobs:
        missing = [_run(check, tmp_path, RECONCILER_STATE=str(state)) for check in checks]
        refused = [done for done in missing if done.returncode != 0]
        assert refused, f"{recipe.name}: job {job.name} runs reconciler with no state at {state}"
        assert str(state) in refused[0].stdout + refused[0].stderr, "the refusal must say where it looked"

        state.parent.mkdir(exist_ok=True)
        state.touch()
        empty = [_run(check, tmp_path, RECONCILER_STATE=str(state)) for check in checks]
        assert any(done.returncode != 0 for done in empty), f"{recipe.name}: job {job.name} accepts an empty file"
        state.unlink()

        _real_state(state)
        present = [_run(check, tmp_path, RECONCILER_STATE=str(state)) for check in checks]
        failed = [done.stdout + done.stderr for done in present if done.returncode != 0]
        assert not failed, f"{recipe.name}: job {job.name} refuses a real state: {failed}"
        state.unlink()


@pytest.mark.parametrize(
    "recipe", [r for r in _applying_recipes() if not r.name.startswith("README")], ids=lambda r: r.name
)
def test_a_bootstrap_switch_lets_exactly_one_first_apply_create_the_state(recipe: Recipe, tmp_path: Path) -> None:
    switches = recipe.switches()
    assert switches, f"{recipe.name} offers no explicit, off-by-default switch for the first run"
    state = tmp_path / "srv" / "production.db"
    applying = [(job, checks) for job, checks in _state_jobs(recipe, switches) if _applies(job)]
    assert applying, f"{recipe.name}: no apply job"
    for job, checks in applying:
        first = [_run(check, tmp_path, RECONCILER_STATE=str(state)) for check in checks]
        assert all(done.returncode == 0 for done in first), f"{recipe.name}: bootstrap does not let {job.name} run"
        _real_state(state)
        again = [_run(check, tmp_path, RECONCILER_STATE=str(state)) for check in checks]
        assert any(done.returncode != 0 for done in again), (
            f"{recipe.name}: the bootstrap switch left on is accepted once a state exists"
        )
        state.unlink()


def _in_a_database(recipe: Recipe) -> bool:
    """A recipe whose state is in PostgreSQL, named by the manifests' StateBackend: it may run anywhere."""
    return (
        "kind: StateBackend" in (ROOT / recipe.name).read_text(encoding="utf-8")
        if recipe.name.endswith(".yml")
        else False
    )


@pytest.mark.parametrize("recipe", [r for r in _recipes() if _in_a_database(r)], ids=lambda r: r.name)
def test_recipes_with_a_database_state_read_it_before_planning_and_set_no_file(recipe: Recipe) -> None:
    for job, checks in _state_jobs(recipe):
        assert any(_READS_STATE.search(s.text) for s in checks), f"{recipe.name}: {job.name} never reads its state"
        assert not any("RECONCILER_STATE" in s.env for s in job.scripts), f"{recipe.name}: {job.name} sets a file"


@pytest.mark.parametrize("recipe", [r for r in _recipes() if not _in_a_database(r)], ids=lambda r: r.name)
def test_recipes_keep_the_state_at_one_absolute_path_on_runners_they_choose(recipe: Recipe) -> None:
    for job, _ in _state_jobs(recipe):
        locations = {s.env.get("RECONCILER_STATE") for s in job.scripts}
        assert len(locations) == 1 and None not in locations, f"{recipe.name}: {job.name} sets no RECONCILER_STATE"
        assert Path(locations.pop() or "").is_absolute(), f"{recipe.name}: {job.name}'s state is in the checkout"
        overridden = [s.text for s in job.scripts if _RUNS_RECONCILER.search(s.text) and "--state" in s.text]
        assert not overridden, f"{recipe.name}: {job.name} checks RECONCILER_STATE but runs on another: {overridden}"
        assert job.runner, f"{recipe.name}: {job.name} may run on any runner, which keeps no state"
        assert not any(_HOSTED_RUNNER.match(label) for label in job.runner), (
            f"{recipe.name}: {job.name} runs on a hosted runner {job.runner}, which starts with no state"
        )
