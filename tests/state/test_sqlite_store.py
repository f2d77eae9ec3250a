"""What only the SQLite backend promises: a private file, durable settings, and refusing foreign files."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import sqlite3
import stat
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers.state_builders import create, record

from reconciler.errors import StateError
from reconciler.state import FORMAT_VERSION, Outcome, SqliteStateStore, StateMeta, Status


@pytest.fixture
def permissive_umask() -> Iterator[None]:
    previous = os.umask(0)
    yield
    os.umask(previous)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_new_state_file_is_private_to_its_owner(tmp_path: Path, permissive_umask: None) -> None:
    path = tmp_path / "state" / "default.db"
    with SqliteStateStore(path) as store:
        create(store, "TaskSuite/a")
        files = [path, path.with_name("default.db-wal"), path.with_name("default.db-shm")]
        assert {f.name: _mode(f) for f in files} == {f.name: 0o600 for f in files}


def test_parent_directories_are_created(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "c.db"
    with SqliteStateStore(path) as store:
        assert store.meta().serial == 0
    assert path.is_file()


def test_state_is_kept_in_wal_mode_with_every_commit_synced(tmp_path: Path) -> None:
    with SqliteStateStore(tmp_path / "s.db") as store:
        db = store._conn
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert db.execute("PRAGMA synchronous").fetchone() == (2,)
        assert db.execute("PRAGMA busy_timeout").fetchone()[0] >= 5000


def test_file_that_is_not_sqlite_is_refused_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "notes.db"
    path.write_text("these are my notes, not a database\n")
    with pytest.raises(StateError, match=r"notes\.db is not a reconciler state file") as refused:
        SqliteStateStore(path)
    assert "\n" not in str(refused.value)
    assert path.read_text() == "these are my notes, not a database\n"


def test_sqlite_database_of_another_application_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE things (x)")
    with pytest.raises(StateError, match=r"other\.db is not a reconciler state file"):
        SqliteStateStore(path)


def test_directory_is_refused_as_a_state_file(tmp_path: Path) -> None:
    with pytest.raises(StateError, match="is a directory"):
        SqliteStateStore(tmp_path)


def test_empty_file_is_refused_and_left_empty(tmp_path: Path) -> None:
    """Issue 11 item 4: a 0-byte file is not a new state (it was: initialised over, with a new lineage)."""
    path = tmp_path / "s.db"
    path.touch()
    with pytest.raises(StateError, match=r"s\.db is empty \(0 bytes\).*delete it.*state push"):
        SqliteStateStore(path)
    assert path.stat().st_size == 0


def test_stores_opened_at_once_on_a_new_file_share_one_lineage(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    stores: list[SqliteStateStore] = []
    errors: list[Exception] = []
    barrier = threading.Barrier(6)

    def open_it() -> None:
        barrier.wait()
        try:
            stores.append(SqliteStateStore(path))
        except Exception as e:
            errors.append(e)

    threads = [threading.Thread(target=open_it) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len({s.meta().lineage for s in stores}) == 1
    for s in stores:
        s.close()


def test_journal_refuses_to_be_rewritten(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    with SqliteStateStore(path) as store:
        create(store, "TaskSuite/a")
    with sqlite3.connect(path) as db:
        for statement in ("UPDATE journal SET event = 'x'", "DELETE FROM journal"):
            with pytest.raises(sqlite3.IntegrityError, match="append-only"):
                db.execute(statement)


def test_batch_of_five_thousand_is_one_transaction(tmp_path: Path) -> None:
    with SqliteStateStore(tmp_path / "s.db") as store:
        intent = record(store, *(f"TaskSuite/{i}" for i in range(5000)))
        assert store.meta().serial == 1
        [opened] = store.open_intents()
        assert opened.addresses == intent.addresses
        assert {s.status for s in store.summaries()} == {Status.PENDING}


def test_closed_store_refuses_further_use(tmp_path: Path) -> None:
    store = SqliteStateStore(tmp_path / "s.db")
    store.close()
    with pytest.raises(StateError):
        store.meta()


FORMAT_2 = Path(__file__).with_name("data") / "format-2.db"


def _format_2_copy(tmp_path: Path) -> Path:
    """A state written by format 2's store (commit 5d1ac74, ``data/make_format_2.py``): batches created,
    failed, replaced, refreshed, imported, forgotten, and an apply interrupted with one of two outcomes known."""
    path = tmp_path / "s.db"
    shutil.copyfile(FORMAT_2, path)
    return path


def _as_read(store: SqliteStateStore) -> dict[str, Any]:
    """What a store reads as, in the shape of ``data/format-2.json``."""
    addresses = [s.address for s in store.summaries()]
    return json.loads(
        json.dumps(
            {
                "meta": dataclasses.asdict(store.meta()),
                "summaries": [dataclasses.asdict(s) for s in store.summaries()],
                "records": {a: dataclasses.asdict(r) for a, r in sorted(store.get_many(addresses=addresses).items())},
                "open_intents": [dataclasses.asdict(i) for i in store.open_intents()],
                "history": [dataclasses.asdict(e) for e in store.history(limit=1000)],
            },
            default=str,
        )
    )


def test_state_of_format_two_is_upgraded_and_reads_as_before(tmp_path: Path) -> None:
    path = _format_2_copy(tmp_path)
    before = json.loads(FORMAT_2.with_suffix(".json").read_text())
    with SqliteStateStore(path) as store:
        assert _as_read(store) == {**before, "meta": {**before["meta"], "format_version": FORMAT_VERSION}}
        [interrupted] = store.open_intents()
        store.record_outcomes(
            operation_id=interrupted.operation_id,
            outcomes=[Outcome("TaskSuite/c", Status.CREATED, remote_id="r-c2")],
            resolved=True,
        )
        create(store, "TaskSuite/b", "TaskSuite/g")
        after = store.get_many(addresses=["TaskSuite/a", "TaskSuite/b", "TaskSuite/c", "TaskSuite/g"])
        history = store.history(limit=1000)
    assert {a: (r.status, r.remote_id) for a, r in after.items()} == {
        "TaskSuite/a": (Status.CREATED, "remote-TaskSuite/a"),
        "TaskSuite/b": (Status.CREATED, "remote-TaskSuite/b"),
        "TaskSuite/c": (Status.CREATED, "r-c2"),
        "TaskSuite/g": (Status.CREATED, "remote-TaskSuite/g"),
    }
    assert after["TaskSuite/a"].remote == {"id": "remote-TaskSuite/a", "seen": True}
    assert after["TaskSuite/c"].spec == before["records"]["TaskSuite/c"]["spec"]
    assert [e.seq for e in history] == list(range(1, len(history) + 1))


def test_state_of_format_one_is_upgraded_and_keeps_its_journal(tmp_path: Path) -> None:
    path = _format_2_copy(tmp_path)
    with SqliteStateStore(path) as store:
        before = store.history(limit=1000)
        [interrupted] = store.open_intents()
    with sqlite3.connect(path) as db:  # what format 1 wrote: one row per entry, pending rows, no members
        db.execute(
            "UPDATE resources SET status = 'pending', operation_id = ?, attempt = 1 WHERE address = 'TaskSuite/c'",
            (interrupted.operation_id,),
        )
        db.execute("DROP TABLE intent_members")
        db.execute("DROP TRIGGER journal_no_update")
        db.execute("DROP TRIGGER journal_no_delete")
        db.execute("DELETE FROM journal")
        db.executemany(
            "INSERT INTO journal (seq, at, event, address, operation_id, detail) VALUES (?, ?, ?, ?, ?, ?)",
            [(e.seq, e.at, e.event, e.address, e.operation_id, json.dumps(e.detail)) for e in before],
        )
        db.execute("ALTER TABLE journal DROP COLUMN entries")
        db.execute("UPDATE meta SET value = 1 WHERE key = 'format_version'")
    with SqliteStateStore(path) as store:
        assert store.meta().format_version == FORMAT_VERSION
        assert store.history(limit=1000) == before
        assert store.get(address="TaskSuite/c").status is Status.PENDING  # type: ignore[union-attr]
        store.record_outcomes(
            operation_id=interrupted.operation_id,
            outcomes=[Outcome("TaskSuite/c", Status.CREATED, remote_id="r-c2")],
            resolved=True,
        )
        settled = store.get(address="TaskSuite/c")
        assert settled is not None and (settled.status, settled.remote_id) == (Status.CREATED, "r-c2")
        create(store, "TaskSuite/h")
        after = store.history(limit=1000)
    assert after[: len(before)] == before
    assert [e.seq for e in after] == list(range(1, len(after) + 1))


#: What format 1's store created (``git show fa2d2f8^:reconciler/state/sqlite.py``): resource rows carry every
#: column, an intent writes a pending row per address, the journal is one row per entry.
FORMAT_1_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value NOT NULL);
CREATE TABLE resources (
    address TEXT PRIMARY KEY, kind TEXT NOT NULL, provider TEXT NOT NULL, spec_hash TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'created', 'failed')), remote_id TEXT, operation_id TEXT,
    attempt INTEGER NOT NULL, error TEXT, created_at TEXT NOT NULL, updated_at TEXT NOT NULL, refreshed_at TEXT,
    spec TEXT NOT NULL, remote TEXT
);
CREATE TABLE intents (
    seq INTEGER PRIMARY KEY, operation_id TEXT NOT NULL UNIQUE, provider TEXT NOT NULL, action TEXT NOT NULL,
    fingerprint TEXT NOT NULL, created_at TEXT NOT NULL, resolved INTEGER NOT NULL DEFAULT 0, resolved_at TEXT,
    addresses TEXT NOT NULL, detail TEXT NOT NULL
);
CREATE INDEX intents_open ON intents (seq) WHERE resolved = 0;
CREATE TABLE journal (
    seq INTEGER PRIMARY KEY, at TEXT NOT NULL, event TEXT NOT NULL, address TEXT, operation_id TEXT,
    detail TEXT NOT NULL
);
CREATE INDEX journal_address ON journal (address);
CREATE TRIGGER journal_no_update BEFORE UPDATE ON journal
    BEGIN SELECT RAISE(ABORT, 'the journal is append-only'); END;
CREATE TRIGGER journal_no_delete BEFORE DELETE ON journal
    BEGIN SELECT RAISE(ABORT, 'the journal is append-only'); END;
CREATE TABLE lock (
    id INTEGER PRIMARY KEY CHECK (id = 1), lock_id TEXT NOT NULL, holder TEXT NOT NULL, operation TEXT NOT NULL,
    started_at TEXT NOT NULL, expires_at TEXT NOT NULL, expires REAL NOT NULL
);
PRAGMA application_id = 1380142668;
"""


def _format_1_state(path: Path) -> dict[str, Any]:
    """A format 1 state, row by row: intent ``op-1`` over a, b, c is open (b already created); intent ``op-2``,
    recorded later over c, created it. Returns the specs and times it holds."""
    spec = {a: {"pool_id": "pool-1", "name": a} for a in ("TaskSuite/a", "TaskSuite/b", "TaskSuite/c")}
    t = [f"2026-01-01T00:00:0{i}.000000Z" for i in range(6)]
    resources = [  # address, spec_hash, status, remote_id, operation_id, attempt, created_at, updated_at
        ("TaskSuite/a", "ha", "pending", None, "op-1", 1, t[0], t[1]),
        ("TaskSuite/b", "hb", "created", "r-b", "op-1", 0, t[1], t[2]),
        ("TaskSuite/c", "hc2", "created", "r-c", "op-2", 0, t[1], t[4]),
    ]
    intents = [
        (1, "op-1", t[1], 0, None, ["TaskSuite/a", "TaskSuite/b", "TaskSuite/c"]),
        (2, "op-2", t[3], 1, t[4], ["TaskSuite/c"]),
    ]
    journal = [  # at, event, address, operation_id, detail
        (t[1], "intent", "TaskSuite/a", "op-1", {"spec_hash": "ha", "attempt": 1}),
        (t[1], "intent", "TaskSuite/b", "op-1", {"spec_hash": "hb", "attempt": 0}),
        (t[1], "intent", "TaskSuite/c", "op-1", {"spec_hash": "hc", "attempt": 0}),
        (t[2], "created", "TaskSuite/b", "op-1", {"remote_id": "r-b"}),
        (t[3], "intent", "TaskSuite/c", "op-2", {"spec_hash": "hc2", "attempt": 0}),
        (t[4], "created", "TaskSuite/c", "op-2", {"remote_id": "r-c"}),
        (t[4], "resolved", None, "op-2", {}),
    ]
    with sqlite3.connect(path) as db:
        db.executescript(FORMAT_1_SCHEMA)
        db.executemany(
            "INSERT INTO meta (key, value) VALUES (?, ?)",
            [("lineage", "11111111-2222-3333-4444-555555555555"), ("serial", 4), ("format_version", 1)],
        )
        db.executemany(
            "INSERT INTO resources (address, kind, provider, spec_hash, status, remote_id, operation_id, attempt, "
            "created_at, updated_at, spec) VALUES (?1, 'TaskSuite', 'toloka', ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            [(*row, json.dumps(spec[row[0]])) for row in resources],
        )
        db.executemany(
            "INSERT INTO intents (seq, operation_id, provider, action, fingerprint, created_at, resolved, "
            "resolved_at, addresses, detail) VALUES (?, ?, 'toloka', 'toloka_batch', 'f', ?, ?, ?, ?, '{}')",
            [(*row[:5], json.dumps(row[5])) for row in intents],
        )
        db.executemany(
            "INSERT INTO journal (at, event, address, operation_id, detail) VALUES (?, ?, ?, ?, ?)",
            [(*row[:4], json.dumps(row[4])) for row in journal],
        )
    db.close()
    return {"spec": spec, "times": t, "journal": journal}


def test_open_intent_of_format_one_is_upgraded_and_settles_as_before(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    made = _format_1_state(path)
    with SqliteStateStore(path, clock=lambda: 1_790_000_000.0) as store:
        assert store.meta() == StateMeta("11111111-2222-3333-4444-555555555555", 4, FORMAT_VERSION)
        history = store.history(limit=100)
        assert [(e.seq, e.at, e.event, e.address, e.operation_id, e.detail) for e in history] == [
            (i, *row) for i, row in enumerate(made["journal"], start=1)
        ]
        assert {s.address: (s.status, s.remote_id, s.operation_id, s.attempt) for s in store.summaries()} == {
            "TaskSuite/a": (Status.PENDING, None, "op-1", 1),
            "TaskSuite/b": (Status.CREATED, "r-b", "op-1", 0),
            "TaskSuite/c": (Status.CREATED, "r-c", "op-2", 0),
        }
        [opened] = store.open_intents()
        assert opened.operation_id == "op-1"
        store.record_outcomes(
            operation_id="op-1",
            outcomes=[
                Outcome("TaskSuite/c", Status.CREATED, remote_id="late"),
                Outcome("TaskSuite/a", Status.CREATED, remote_id="r-a", remote={"id": "r-a"}),
            ],
            resolved=True,
        )
        late = [Outcome("TaskSuite/c", Status.FAILED, error="late")]
        store.record_outcomes(operation_id="op-2", outcomes=late, resolved=False)  # resolved before the upgrade
        records = store.get_many(addresses=["TaskSuite/a", "TaskSuite/b", "TaskSuite/c"])
        after = store.history(limit=100)
        assert store.open_intents() == []
        assert store.meta().serial == 6
    a, b, c = (records[f"TaskSuite/{x}"] for x in "abc")
    assert (a.status, a.remote_id, a.remote, a.operation_id) == (Status.CREATED, "r-a", {"id": "r-a"}, "op-1")
    assert (a.kind, a.provider, a.spec, a.spec_hash, a.attempt) == (
        "TaskSuite",
        "toloka",
        made["spec"]["TaskSuite/a"],
        "ha",
        1,
    )
    assert (a.created_at, a.updated_at, a.refreshed_at) == (made["times"][0], *["2026-09-21T14:13:20.000000Z"] * 2)
    assert (b.status, b.remote_id, b.spec) == (Status.CREATED, "r-b", made["spec"]["TaskSuite/b"])
    assert (c.status, c.remote_id, c.operation_id) == (Status.CREATED, "r-c", "op-2")
    assert after[: len(history)] == history
    assert [(e.event, e.address, e.detail) for e in after[len(history) :]] == [
        ("created", "TaskSuite/c", {"remote_id": "late"}),
        ("created", "TaskSuite/a", {"remote_id": "r-a"}),
        ("resolved", None, {}),
        ("failed", "TaskSuite/c", {"error": "late"}),
    ]
    with sqlite3.connect(path) as db:
        members = db.execute("SELECT heads, specs FROM intent_members WHERE operation_id = 'op-1'").fetchone()
    db.close()
    assert [json.loads(m) for m in members] == [
        [["TaskSuite/a", "TaskSuite", "toloka", "ha", 1, None], ["TaskSuite/b", "TaskSuite", "toloka", "hb", 0, None]],
        [made["spec"]["TaskSuite/a"], made["spec"]["TaskSuite/b"]],
    ]
