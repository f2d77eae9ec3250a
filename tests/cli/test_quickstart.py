"""The README's first command, exactly: `reconciler apply examples/ --sandbox --auto-approve`, twice."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

from reconciler import manifest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
RunCli = Callable[..., subprocess.CompletedProcess[str]]


def test_quickstart_creates_every_example_and_the_second_run_changes_nothing(run_cli: RunCli, tmp_path: Path) -> None:
    shutil.copytree(EXAMPLES, tmp_path / "examples")
    expected = set(manifest.load([tmp_path / "examples"]).resources)

    first = run_cli("apply", "examples/", "--sandbox", "--auto-approve")
    assert first.returncode == 0, first.stdout + first.stderr
    assert f"Apply complete: {len(expected)} created, 0 failed" in first.stdout

    listed = run_cli("state", "list", "--workspace", "sandbox")
    rows = [line.split("\t") for line in listed.stdout.splitlines()]
    assert {r[0] for r in rows} == expected
    assert all(r[1] == "created" and r[2] != "-" for r in rows)

    second = run_cli("apply", "examples/", "--sandbox", "--auto-approve")
    assert second.returncode == 0
    assert "No changes" in second.stdout

    plan = run_cli("plan", "examples/", "--sandbox", "--json", "--detailed-exitcode")
    assert plan.returncode == 0
    assert json.loads(plan.stdout.splitlines()[-1])["changes"]["noop"] == len(expected)
    assert not (tmp_path / "state" / "default.db").exists(), "--sandbox must not touch the default workspace"
