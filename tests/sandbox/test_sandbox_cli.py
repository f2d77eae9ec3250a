"""``reconciler sandbox serve``: help, one-line errors, and a real server process that stops on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
from click.testing import CliRunner

from reconciler.sandbox.cli import sandbox

ROOT = Path(__file__).resolve().parents[2]


def test_serve_help_lists_every_option():
    result = CliRunner().invoke(sandbox, ["serve", "--help"])
    assert result.exit_code == 0
    for option in ("--host", "--port", "--seed", "--auto-create", "--data", "--faults", "SANDBOXAK"):
        assert option in result.output


def test_a_bad_fault_spec_is_a_one_line_error():
    result = CliRunner().invoke(sandbox, ["serve", "--faults", "500=2"])
    assert result.exit_code == 2
    assert "--faults" in result.output and "between 0 and 1" in result.output
    assert "Traceback" not in result.output


def test_a_bad_seed_file_is_a_one_line_error(tmp_path):
    seed = tmp_path / "seed.yaml"
    seed.write_text("pools: [{status: OPEN}]")
    result = CliRunner().invoke(sandbox, ["serve", "--seed", str(seed)])
    assert result.exit_code == 2 and "pools[0]" in result.output and "Traceback" not in result.output
    missing = CliRunner().invoke(sandbox, ["serve", "--seed", str(tmp_path / "nope.yaml")])
    assert missing.exit_code == 2 and "cannot read the seed file" in missing.output


def test_serve_runs_until_sigterm(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    data = tmp_path / "world.db"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "reconciler.sandbox",
            "serve",
            "--port",
            "0",
            "--auto-create",
            "--data",
            str(data),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert process.stdout is not None
        first_line = process.stdout.readline()
        assert first_line.startswith("sandbox listening on http://127.0.0.1:"), first_line
        url = first_line.split()[3]
        assert httpx.get(f"{url}/_sandbox/objects", timeout=5).status_code == 200
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert data.exists()
