from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"

RunCli = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def run_cli(tmp_path: Path) -> RunCli:
    """Run the real `reconciler` command in a fresh working directory (its own state/), as a user would."""

    def run(*args: str, env: dict[str, str] | None = None, timeout: float = 120, cwd: Path | None = None):
        full_env = {k: v for k, v in os.environ.items() if k != "RECONCILER_FAILPOINT"}
        # The state in this test's own folder, as before manifests chose it: the examples live in the repository.
        full_env.update({"NO_COLOR": "1", "RECONCILER_STATE": f"{tmp_path / 'state'}/", **(env or {})})
        return subprocess.run(
            [sys.executable, "-m", "reconciler", *args],
            cwd=cwd or tmp_path,
            env=full_env,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )

    return run
