"""The same manifests always reach the same state: found from the manifests (their StateBackend, or the
.reconciler/ beside them), never from the directory a command happens to run in."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers.apply_project import Project


def _unnamed(proj: Project) -> Project:
    """The project with no RECONCILER_STATE: the state is found as a user's would be."""
    env = {k: v for k, v in proj.env.items() if k != "RECONCILER_STATE"}
    return Project(root=proj.root, sandbox=proj.sandbox, env=env)


def _run_in(proj: Project, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "reconciler", *args],
        cwd=cwd,
        env=proj.env,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )


def test_plan_from_another_directory_reaches_the_state_apply_made(
    project: Callable[..., Project], tmp_path_factory: pytest.TempPathFactory
) -> None:
    proj = _unnamed(project(tasks=2, rows=6))
    applied = proj.apply()
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert (proj.manifests / ".reconciler" / "default.db").exists()
    assert "State: manifests/.reconciler/default.db (workspace default; beside the manifests)" in applied.stdout

    elsewhere = tmp_path_factory.mktemp("elsewhere")
    planned = _run_in(proj, elsewhere, "plan", str(proj.manifests))
    assert planned.returncode == 0, planned.stderr
    assert "No changes" in planned.stdout and "to create" not in planned.stdout
    listed = _run_in(proj, elsewhere, "state", "list", "--manifests", str(proj.manifests))
    assert len(listed.stdout.splitlines()) == 8, listed.stderr


def test_a_state_backend_document_names_the_state_relative_to_itself(
    project: Callable[..., Project], tmp_path_factory: pytest.TempPathFactory
) -> None:
    proj = _unnamed(project(tasks=1, rows=3))
    proj.write(
        "state.yaml",
        "apiVersion: reconciler/v1\nkind: StateBackend\nmetadata: {name: shared}\nspec: {path: ../kept/}\n",
    )
    applied = proj.apply()
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert (proj.root / "kept" / "default.db").exists()
    assert not (proj.manifests / ".reconciler" / "default.db").exists()
    assert "(workspace default; StateBackend at manifests/state.yaml:1)" in applied.stdout

    elsewhere = tmp_path_factory.mktemp("elsewhere")
    planned = _run_in(proj, elsewhere, "plan", str(proj.manifests))
    assert "No changes" in planned.stdout, planned.stdout + planned.stderr
    listed = _run_in(proj, elsewhere, "state", "list", "-m", str(proj.manifests))
    assert len(listed.stdout.splitlines()) == 4, listed.stderr


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        ("{url: 'postgresql://ci:hunter22@db.example.com/state'}", "must not hold a password"),
        ("{url: 'mysql://db/state'}", "must start with postgresql://"),
        ("{path: a, url: 'postgresql://db/state'}", "one of them"),
        ("{path: a, password_env: PW}", "password_env goes with url"),
    ],
)
def test_a_state_backend_that_cannot_be_right_is_one_error_naming_its_line(
    project: Callable[..., Project], spec: str, says: str
) -> None:
    proj = _unnamed(project(tasks=1, rows=0))
    proj.write("state.yaml", f"apiVersion: reconciler/v1\nkind: StateBackend\nmetadata: {{name: s}}\nspec: {spec}\n")
    planned = proj.run("plan", "manifests")
    assert planned.returncode == 1
    line, summary = planned.stderr.splitlines()
    assert "nothing was sent" in summary
    assert "manifests/state.yaml:4" in line and says in line, line
    assert "hunter22" not in planned.stdout + planned.stderr


def test_two_state_backends_are_refused(project: Callable[..., Project]) -> None:
    proj = _unnamed(project(tasks=1, rows=0))
    for name in ("a", "b"):
        proj.write(
            f"{name}.yaml",
            f"apiVersion: reconciler/v1\nkind: StateBackend\nmetadata: {{name: {name}}}\nspec: {{path: s/}}\n",
        )
    planned = proj.run("plan", "manifests")
    assert planned.returncode == 1 and "a second StateBackend" in planned.stderr


def test_a_state_left_in_the_old_place_is_never_replaced_by_a_new_one(project: Callable[..., Project]) -> None:
    proj = project(tasks=1, rows=2)
    assert proj.apply().returncode == 0
    (proj.root / "state").mkdir()
    proj.state_file.rename(proj.root / "state" / "default.db")
    moved = _unnamed(proj)
    for args in (("plan", "manifests"), ("apply", "manifests", "--auto-approve")):
        refused = moved.run(*args)
        assert refused.returncode == 1
        assert "holds one made by an earlier reconciler" in refused.stderr and "mv " in refused.stderr
    assert len(proj.sandbox.objects()["perftest_tasks"]) == 1
    assert not proj.state_file.exists()


def test_in_a_repository_a_subfolder_of_the_manifests_finds_their_state(project: Callable[..., Project]) -> None:
    proj = _unnamed(project(tasks=2, rows=4))
    (proj.root / ".git").mkdir()
    assert proj.apply().returncode == 0
    planned = proj.run("plan", "manifests/perftest", "manifests/providers.yaml")
    assert planned.returncode == 0, planned.stderr
    assert "Plan: 0 to create" in planned.stdout and "State: manifests/.reconciler/default.db" in planned.stdout
    inside = _run_in(proj, proj.manifests / "toloka", "state", "list")
    assert len(inside.stdout.splitlines()) == 6, inside.stderr


def test_apply_with_a_mistyped_target_leaves_no_state_behind(project: Callable[..., Project]) -> None:
    proj = _unnamed(project(tasks=1, rows=2))
    refused = proj.apply("--target", "PerfTestTask/lod-000", "--replace", "PerfTestTask/load-000")
    assert refused.returncode == 1
    assert "--target PerfTestTask/lod-000: no such resource" in refused.stderr and "load-000" in refused.stderr
    assert not (proj.manifests / ".reconciler").exists()
    assert proj.sandbox.objects()["perftest_tasks"] == []
