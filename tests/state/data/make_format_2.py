"""How ``format-2.db`` and ``format-2.json`` were made: run with the format 2 store (commit 5d1ac74) from the
project's root, ``python tests/state/data/make_format_2.py``. Kept for the record; the store it needs is gone.

The file holds a bit of everything a format 2 state could: batches created, failed, replaced, refreshed,
imported and forgotten, and an interrupted apply with one of its two outcomes known. The JSON is what that
store read it as, which the upgraded file must still read as.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1]))
from helpers.state_builders import create, intent_for, pending, record  # noqa: E402

from reconciler.state import Outcome, SqliteStateStore, Status  # noqa: E402

OUT = Path(__file__).parent
TICKS = itertools.count()


def clock() -> float:
    return 1_790_000_000.0 + next(TICKS)


def replace(store: SqliteStateStore, address: str, old_remote_id: str, operation_id: str | None = None) -> str:
    resources = [pending(address, attempt=1, replaces=old_remote_id)]
    intent = intent_for(resources, operation_id=operation_id)
    store.record_intent(intent=intent, resources=resources)
    return intent.operation_id


def main() -> None:
    path = OUT / "format-2.db"
    for old in OUT.glob("format-2.db*"):
        old.unlink()
    with SqliteStateStore(path, clock=clock) as store:
        create(store, "TaskSuite/a", "TaskSuite/b", "TaskSuite/c")
        mixed = record(store, "TaskSuite/d", "TaskSuite/e")
        outcomes = [
            Outcome("TaskSuite/d", Status.FAILED, error="pool_id: bad"),
            Outcome("TaskSuite/e", Status.CREATED, remote_id="r-e", remote={"id": "r-e", "x": 1}),
        ]
        store.record_outcomes(operation_id=mixed.operation_id, outcomes=outcomes, resolved=True)
        create(store, "PerfTestTask/t")
        spec = {"pool_id": "pool-1", "name": "TaskSuite/imp"}
        store.import_resource(
            address="TaskSuite/imp", kind="TaskSuite", provider="toloka", remote_id="r-imp", spec=spec, spec_hash="h"
        )
        create(store, "TaskSuite/gone")
        store.forget(address="TaskSuite/gone")
        op = replace(store, "TaskSuite/b", "remote-TaskSuite/b")
        store.record_outcomes(
            operation_id=op, outcomes=[Outcome("TaskSuite/b", Status.CREATED, remote_id="r-b2")], resolved=True
        )
        store.record_refresh(views=[("TaskSuite/a", {"id": "remote-TaskSuite/a", "seen": True})])
        resources = [pending("TaskSuite/c", attempt=1, replaces="remote-TaskSuite/c"), pending("TaskSuite/f")]
        interrupted = intent_for(resources, operation_id="00000000-0000-0000-0000-0000000000ff")
        store.record_intent(intent=interrupted, resources=resources)
        store.record_outcomes(
            operation_id=interrupted.operation_id,
            outcomes=[Outcome("TaskSuite/f", Status.CREATED, remote_id="r-f")],
            resolved=False,
        )
        store._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        addresses = [s.address for s in store.summaries()]
        expected = {
            "meta": dataclasses.asdict(store.meta()),
            "summaries": [dataclasses.asdict(s) for s in store.summaries()],
            "records": {a: dataclasses.asdict(r) for a, r in sorted(store.get_many(addresses=addresses).items())},
            "open_intents": [dataclasses.asdict(i) for i in store.open_intents()],
            "history": [dataclasses.asdict(e) for e in store.history(limit=1000)],
        }
    (OUT / "format-2.json").write_text(json.dumps(expected, indent=1, sort_keys=True, default=str) + "\n")


if __name__ == "__main__":
    main()
