"""A run that is suspended (SIGSTOP: a closed lid, a paused container) past its lock's TTL, while another run
takes the lock over and finishes the work, sends and records nothing when it wakes, and says so."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers.apply_project import Project, assert_exactly_once

TTL = 3.0


def _wait_until_stopped(process: subprocess.Popen[str], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            out, err = process.communicate()
            raise AssertionError(f"the apply ended before its failpoint: {out}{err}")
        stat = Path(f"/proc/{process.pid}/stat").read_text()
        if stat.rsplit(")", 1)[1].split()[0] == "T":
            return
        time.sleep(0.02)
    raise AssertionError("the apply never reached its failpoint")


@pytest.mark.parametrize(
    "point",
    [
        "after_intent:3:stop",  # the intent is recorded; the main thread has yet to hand the call to a worker
        "before_send:3:stop",  # a worker holds the call and is about to send it
    ],
)
def test_apply_woken_after_another_took_its_lock_over_sends_nothing_twice(
    project: Callable[..., Project], point: str
) -> None:
    proj = project(tasks=8, rows=0)
    env = {"RECONCILER_FAILPOINT": point, "RECONCILER_LOCK_TTL": str(TTL)}
    sleeper = proj.popen("apply", "manifests", "--auto-approve", "--parallelism", "1", extra_env=env)
    try:
        _wait_until_stopped(sleeper)
        time.sleep(TTL + 0.3)
        taker = proj.apply()
        assert taker.returncode == 0, taker.stdout + taker.stderr
        assert_exactly_once(proj, tasks=8, rows=0)
    finally:
        sleeper.send_signal(signal.SIGCONT)
        out, err = sleeper.communicate(timeout=60)

    assert sleeper.returncode == 1, out + err
    assert "sends nothing more" in err or "records nothing more" in err, err
    assert "Traceback" not in err
    assert_exactly_once(proj, tasks=8, rows=0)
    again = proj.apply()
    assert again.returncode == 0 and "No changes" in again.stdout, again.stdout + again.stderr


def test_suspension_shorter_than_the_lease_changes_nothing(project: Callable[..., Project]) -> None:
    proj = project(tasks=4, rows=0)
    env = {"RECONCILER_FAILPOINT": "before_send:2:stop"}
    runner = proj.popen("apply", "manifests", "--auto-approve", "--parallelism", "1", extra_env=env)
    _wait_until_stopped(runner)
    time.sleep(0.5)
    os.kill(runner.pid, signal.SIGCONT)
    out, err = runner.communicate(timeout=60)
    assert runner.returncode == 0, out + err
    assert_exactly_once(proj, tasks=4, rows=0)
