"""Credentials never travel in clear: a provider endpoint is https://, or plain http:// to this machine only.

Whether the endpoint comes from a manifest or from ``RECONCILER_<PROVIDER>_ENDPOINT``, a cleartext one
elsewhere is refused before anything is planned or sent (issue 12).
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
RunCli = Callable[..., subprocess.CompletedProcess[str]]

PROVIDER = """\
apiVersion: reconciler/v1
kind: TolokaProvider
metadata: {{name: toloka}}
spec:
  endpoint: {endpoint}
  credentials: {{token_env: TOLOKA_API_KEY}}
"""


def write_provider(directory: Path, endpoint: str) -> Path:
    path = directory / "manifests" / "providers.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(PROVIDER.format(endpoint=endpoint))
    return path


def test_a_cleartext_endpoint_elsewhere_is_refused_at_its_line(run_cli: RunCli, tmp_path: Path) -> None:
    path = write_provider(tmp_path, "http://toloka.example.com")

    done = run_cli("validate", str(path.parent))

    assert done.returncode == 1
    assert f"{path}:5:" in done.stderr and "spec.endpoint" in done.stderr
    assert "in clear" in done.stderr and "https://" in done.stderr


@pytest.mark.parametrize("endpoint", ["http://127.0.0.1:8765", "http://localhost:8765", "http://[::1]:8765"])
def test_a_cleartext_endpoint_on_this_machine_is_accepted(run_cli: RunCli, tmp_path: Path, endpoint: str) -> None:
    path = write_provider(tmp_path, endpoint)

    done = run_cli("validate", str(path.parent))

    assert done.returncode == 0, done.stderr


def test_a_cleartext_endpoint_from_the_environment_stops_plan(run_cli: RunCli) -> None:
    done = run_cli("plan", str(EXAMPLES), env={"RECONCILER_TOLOKA_ENDPOINT": "http://toloka.example.com"})

    assert done.returncode == 1
    [line] = [line for line in done.stderr.splitlines() if line.startswith("Error:")]
    assert "RECONCILER_TOLOKA_ENDPOINT" in line and "in clear" in line
    assert done.stdout == ""
