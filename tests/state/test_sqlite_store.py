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
from state_builders import create, record

from reconciler.errors import StateError
from reconciler.state import FORMAT_VERSION, Outcome, SqliteStateStore, Status


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


def test_empty_file_becomes_a_new_state(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    path.touch()
    with SqliteStateStore(path) as store:
        assert store.meta().serial == 0


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
