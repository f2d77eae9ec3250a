"""A writer killed at any moment leaves whole transactions behind: what it committed, nothing half-done."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

from helpers.state_backends import Backend

from reconciler.state import StateStore, Status

WORKER = Path(__file__).with_name("state_worker.py")


def _start(command: str, backend: Backend) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, str(WORKER), command, backend.location], stdout=subprocess.PIPE, text=True)


def test_intent_survives_sigkill_of_writer(backend: Backend, store: StateStore) -> None:
    writer = _start("intent", backend)
    assert writer.stdout is not None
    operation_id = writer.stdout.readline().strip()
    writer.send_signal(signal.SIGKILL)
    writer.wait(timeout=10)
    reopened = backend.open()
    [intent] = reopened.open_intents()
    assert (intent.operation_id, intent.addresses) == (
        operation_id,
        ("TaskSuite/a", "TaskSuite/b", "TaskSuite/c"),
    )
    assert {r.status for r in reopened.get_many(addresses=intent.addresses).values()} == {Status.PENDING}
    assert reopened.meta().serial == 1


def test_writer_killed_mid_write_leaves_only_whole_transactions(backend: Backend, store: StateStore) -> None:
    writer = _start("churn", backend)
    assert writer.stdout is not None
    while int(writer.stdout.readline()) < 5:
        pass
    writer.send_signal(signal.SIGKILL)
    writer.wait(timeout=10)
    reopened = backend.open()
    serial = reopened.meta().serial
    summaries = list(reopened.summaries())
    intents = reopened.open_intents()
    created = [s for s in summaries if s.status is Status.CREATED]
    pending = [s for s in summaries if s.status is Status.PENDING]
    assert len(created) % 50 == 0 and len(created) >= 250
    assert len(intents) <= 1 and len(pending) == 50 * len(intents)
    assert serial == 2 * len(created) // 50 + len(intents)
    assert len(reopened.history(limit=10**6)) == len(created) // 50 * 101 + len(pending)
