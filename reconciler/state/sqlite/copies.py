"""Copies of a SQLite state: ``state pull`` (a consistent copy, complete in one file) and ``state push`` (the whole
state replaced by a copy, after the checks that keep a push from losing or rewinding what was recorded).

Both go through SQLite's backup API, which copies a consistent snapshot page by page whatever the -wal holds.
"""

from __future__ import annotations

import contextlib
import sqlite3
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

from reconciler.errors import StateError
from reconciler.state.base import StateMeta
from reconciler.state.copy_file import copy_in_place
from reconciler.state.sqlite import journal
from reconciler.state.sqlite.schema import WRITING, immediate

if TYPE_CHECKING:
    from reconciler.state.sqlite.store import SqliteStateStore

__all__ = ["copy_to", "restore_from"]


def copy_to(store: SqliteStateStore, path: Path) -> StateMeta:
    """Write a consistent copy of the state to ``path`` (SQLite's backup API), complete in that one file."""
    meta = store.meta()
    with copy_in_place(path) as temporary, store._mutex:
        dest = sqlite3.connect(temporary, isolation_level=None)
        try:
            store._conn.backup(dest)
            dest.execute("DELETE FROM meta WHERE key = ?", (WRITING,))
            dest.execute("PRAGMA journal_mode = DELETE")
        finally:
            dest.close()
    return meta


def restore_from(store: SqliteStateStore, path: Path, *, force: bool) -> tuple[StateMeta, int, StateMeta]:
    """Replace the whole state by the state file at ``path`` (checked as any state is when opened), in one
    transaction; returns the state replaced (meta, resource count) and the state now.

    Refused (StateError, nothing changed) if ``path`` holds another lineage or an older serial than this
    state, unless ``force``; an empty state (serial 0, nothing recorded) takes any. The lock row of this
    state is kept with its fencing generation (the caller holds it), ``WRITING`` dropped, and the serial set
    past both, so that no plan made against either state applies to the result; the journal gets a ``pushed``
    entry."""
    if store.read_only:
        raise StateError(f"{store.path} was opened read-only; this command cannot change the state")
    source = type(store)(path, read_only=True)
    temporary = store.path.with_name(f".{store.path.name}.push-{uuid.uuid4().hex[:12]}")
    try:
        pushed = source.meta()
        with store._mutex:
            current = store.meta()
            with store._read() as db:
                (count,) = db.execute("SELECT count(*) FROM resources").fetchone()
                (intents,) = db.execute("SELECT count(*) FROM intents").fetchone()
                lock_rows = db.execute("SELECT * FROM lock").fetchall()
                generation = db.execute("SELECT value FROM meta WHERE key = 'lock_generation'").fetchone()
                if store._fence is not None:
                    store._check_fence(db, store._fence)
            empty = current.serial == 0 and count == 0 and intents == 0
            _check_push(path, pushed, current, count, empty=empty, force=force)
            serial = max(pushed.serial, current.serial) + 1
            copy = sqlite3.connect(temporary, isolation_level=None)
            try:
                with source._mutex:
                    source._conn.backup(copy)
                with immediate(copy):
                    copy.execute("DELETE FROM meta WHERE key = ?", (WRITING,))
                    copy.execute("UPDATE meta SET value = ? WHERE key = 'serial'", (serial,))
                    copy.execute("DELETE FROM lock")
                    copy.executemany("INSERT INTO lock VALUES (?, ?, ?, ?, ?, ?, ?)", lock_rows)
                    copy.execute("DELETE FROM meta WHERE key = 'lock_generation'")
                    if generation is not None:
                        copy.execute("INSERT INTO meta (key, value) VALUES ('lock_generation', ?)", generation)
                    detail = {
                        "lineage": pushed.lineage,
                        "serial": pushed.serial,
                        "replaced_lineage": current.lineage,
                        "replaced_serial": current.serial,
                    }
                    journal.append(copy, store._now(), None, journal.Entries.one("pushed", None, detail))
                copy.backup(store._conn)
            finally:
                copy.close()
            store._wrote = True
            store._marked = False
    except sqlite3.Error as e:
        raise StateError(f"cannot restore the state from {path}: {e}") from e
    finally:
        source.close()
        for suffix in ("", "-journal", "-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                temporary.with_name(temporary.name + suffix).unlink()
    return current, count, store.meta()


def _check_push(path: Path, pushed: StateMeta, current: StateMeta, count: int, *, empty: bool, force: bool) -> None:
    if empty:
        return
    if pushed.lineage != current.lineage and not force:
        raise StateError(
            f"{path} is another state (lineage {pushed.lineage}) than this one (lineage {current.lineage}, serial "
            f"{current.serial}, {count} resource(s)); pushing it would lose everything this state records. Pass "
            "--force to replace it anyway"
        )
    if pushed.lineage == current.lineage and pushed.serial < current.serial and not force:
        raise StateError(
            f"{path} is older than this state (serial {pushed.serial}, and this state is at serial "
            f"{current.serial}); pushing it would forget what was recorded since. Pass --force to go back anyway"
        )
