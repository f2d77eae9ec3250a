"""``SqliteStateStore``: the ``StateStore`` contract of ``reconciler.state.base`` on one SQLite file.

Each public method is one transaction (``_write``: ``BEGIN IMMEDIATE``, and the serial bumped in it when the
contract says so) or one read under the store's mutex; the file's layout is ``schema``'s, reads go through
``overlay`` and journal rows through ``journal``. What is left here is the write statements, each sized so
that a call over thousands of addresses is a handful of statements, never one per address.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson

from reconciler.encoding import dumps_text
from reconciler.errors import LeaseLostError, StateError, StateLockedError, UnknownAddressError
from reconciler.state.base import (
    Intent,
    JournalEntry,
    LockInfo,
    Outcome,
    PendingResource,
    ResourceRecord,
    ResourceSummary,
    StateMeta,
)
from reconciler.state.outcomes import check_covers, check_outcomes_covered, outcome_rows
from reconciler.state.rows import damaged
from reconciler.state.sqlite import copies, journal, overlay
from reconciler.state.sqlite.schema import (
    BUSY_TIMEOUT,
    WRITING,
    connect,
    connect_read_only,
    immediate,
    open_state_file,
    utc_iso,
)

__all__ = ["SqliteStateStore"]

_LOCK_COLUMNS = "lock_id, holder, operation, started_at, expires_at"

_INSERT_INTENT = (
    "INSERT INTO intents (operation_id, provider, action, fingerprint, created_at, addresses, detail) "
    "VALUES (?, ?, ?, ?, ?, ?, ?)"
)
_INSERT_MEMBERS = "INSERT INTO intent_members (operation_id, heads, specs) VALUES (?, ?, ?)"

#: Every outcome of one call, in one statement (it lets go of the interpreter's lock once, where
#: ``executemany`` takes it back for every row), from two JSON arrays: ``:created``, the plain creations (a
#: remote id, no error, no remote view), as ``[address, remote id, member index]``, and ``:others``, every other
#: outcome, as ``[address, status, remote id, member index, error, remote view as JSON text]``. Two arrays
#: because SQLite parses an element again for each field it reads: a full row for each of 5,000 plain creations
#: costs a third more than the statement's inserts. On an existing row, a row last written by a newer intent
#: is left alone, and ``created_at`` survives (a retry after a failure keeps it). (``WHERE true`` keeps
#: ``ON CONFLICT`` from reading as part of the ``SELECT``.)
_UPSERT_OUTCOMES = """
INSERT INTO resources (address, status, remote_id, member, operation_id, error, created_at, updated_at,
                       refreshed_at, remote)
SELECT value ->> 0, 'created', value ->> 1, value ->> 2, :op, NULL, :at, :at, NULL, NULL FROM json_each(:created)
UNION ALL
SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, :op, value ->> 4, :at, :at,
       CASE WHEN value ->> 5 IS NULL THEN NULL ELSE :at END, value ->> 5
FROM json_each(:others) WHERE true
ON CONFLICT (address) DO UPDATE SET
    kind = NULL, provider = NULL, spec_hash = NULL, status = excluded.status, remote_id = excluded.remote_id,
    operation_id = excluded.operation_id, attempt = NULL, error = excluded.error, updated_at = excluded.updated_at,
    refreshed_at = excluded.refreshed_at, member = excluded.member, spec = NULL, remote = excluded.remote
WHERE resources.operation_id IS NULL OR resources.operation_id = excluded.operation_id
    OR coalesce((SELECT seq FROM intents WHERE operation_id = resources.operation_id), 0) < :seq
"""

#: An intent's seq and heads: every intent has members, but one of format 1 that was resolved before the
#: upgrade to format 4 (its outcomes were written into its own rows, and a late one now reaches the journal only).
_SEQ_AND_HEADS = "SELECT seq, heads FROM intents LEFT JOIN intent_members USING (operation_id) WHERE operation_id = ?"

_RESOLVE = "UPDATE intents SET resolved = 1, resolved_at = ? WHERE operation_id = ? AND resolved = 0"

#: Set ``WRITING``; changes a row only if it was not set.
_MARK = "INSERT INTO meta (key, value) VALUES (?, 1) ON CONFLICT (key) DO NOTHING"

_INSERT_IMPORTED = (
    "INSERT INTO resources (address, kind, provider, spec_hash, status, remote_id, attempt, created_at, "
    "updated_at, spec) VALUES (?, ?, ?, ?, 'created', ?, 0, ?, ?, ?)"
)


class SqliteStateStore:
    """A ``StateStore`` in one SQLite file; safe to share between threads of one process.

    ``clock`` returns epoch seconds; tests pass their own to control lock expiry and timestamps. ``read_only``:
    for commands that only read, which never create the file (StateAbsentError if there is none) nor write a
    byte of it; every write method then raises StateError. ``lineage``: the lineage of the state if this opening
    creates it (a plan saved against no state names the state its apply makes).

    While a store writes, the file itself says so (``schema.WRITING``, checkpointed into it before the first
    write and cleared on ``close``), so a copy of the file taken without the -wal that holds the latest changes
    is refused instead of read as an older state.

    Longer than this project's classes usually are, on purpose: it is the whole ``StateStore`` protocol, and each
    method is a short transaction under one mutex and one write discipline (``_read``, ``_write``), its work in
    ``schema``, ``overlay`` and ``journal``. Split across classes, a reader would hunt for those rules.
    """

    def __init__(
        self,
        path: Path,
        *,
        clock: Callable[[], float] = time.time,
        read_only: bool = False,
        lineage: str | None = None,
        replace_empty: bool = False,
    ) -> None:
        self.path = Path(path)
        self.read_only = read_only
        self._clock = clock
        self._mutex = threading.RLock()
        self._conn = open_state_file(self.path, read_only=read_only, lineage=lineage, replace_empty=replace_empty)
        self._in_memory = read_only and self._conn.execute("PRAGMA database_list").fetchone()[2] == ""
        self._marked = False
        self._wrote = False
        self._fence: int | None = None

    def __enter__(self) -> SqliteStateStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"SqliteStateStore({str(self.path)!r})"

    # reads

    def meta(self) -> StateMeta:
        with self._read() as db:
            values = dict(db.execute("SELECT key, value FROM meta").fetchall())
        return StateMeta(lineage=values["lineage"], serial=values["serial"], format_version=values["format_version"])

    def summaries(self) -> Iterator[ResourceSummary]:
        """Streams from its own connection in one read transaction: a consistent snapshot that does not hold
        up writers, however slowly the caller consumes it."""
        if self._in_memory:
            with self._read() as db:
                rows = list(overlay.read_summaries(db))
            yield from rows
            return
        try:
            conn = connect_read_only(self.path) if self.read_only else connect(self.path)
        except sqlite3.Error as e:
            raise self._error(e) from e
        try:
            conn.execute("PRAGMA query_only = ON")
            conn.execute("BEGIN")
            yield from overlay.read_summaries(conn)
        except sqlite3.Error as e:
            raise self._error(e) from e
        except (ValueError, KeyError, IndexError, TypeError) as e:
            raise self._damaged(e) from e
        finally:
            conn.close()

    def get(self, *, address: str) -> ResourceRecord | None:
        return self.get_many(addresses=[address]).get(address)

    def get_many(self, *, addresses: Iterable[str]) -> dict[str, ResourceRecord]:
        with self._read() as db:
            return overlay.read_records(db, addresses)

    def open_intents(self) -> list[Intent]:
        sql = f"SELECT {overlay.INTENT_COLUMNS} FROM intents WHERE resolved = 0 ORDER BY seq"
        with self._read() as db:  # decoded inside, so a damaged row is "damaged", not a raw decode error
            return [overlay.intent_of_row(row) for row in db.execute(sql).fetchall()]

    def history(self, *, address: str | None = None, limit: int = 100) -> list[JournalEntry]:
        with self._read() as db:
            heads_of = overlay.Resolver(db, specs=False).heads
            return journal.read_history(db, address=address, limit=limit, heads_of=heads_of)

    def current_lock(self) -> LockInfo | None:
        with self._read() as db:
            row = db.execute(f"SELECT {_LOCK_COLUMNS} FROM lock").fetchone()
            return None if row is None else LockInfo(row[0], row[1], row[2], row[3], row[4], _generation(db))

    def fence(self, *, generation: int | None) -> None:
        self._fence = generation

    # writes that bump the serial

    def record_intent(self, *, intent: Intent, resources: Sequence[PendingResource]) -> None:
        """One intent row and one members row, however many addresses; encoded before the transaction opens,
        so the write lock is held only for the inserts."""
        check_covers(intent, resources)
        at = self._now()
        op = intent.operation_id
        heads = [[r.address, r.kind, r.provider, r.spec_hash, r.attempt, r.replaces] for r in resources]
        members = (op, dumps_text(heads), dumps_text([r.spec for r in resources]))
        addresses, detail = dumps_text(intent.addresses), dumps_text(intent.detail)
        row = (op, intent.provider, intent.action, intent.fingerprint, at, addresses, detail)
        with self._write(bump=True) as db:
            if db.execute("SELECT 1 FROM intents WHERE operation_id = ?", (op,)).fetchone():
                raise StateError(f"an intent with operation id {op} is already recorded")
            db.execute(_INSERT_INTENT, row)
            db.execute(_INSERT_MEMBERS, members)
            journal.append_intent(db, at, op, heads)

    def record_outcomes(self, *, operation_id: str, outcomes: Sequence[Outcome], resolved: bool) -> None:
        """Every outcome in one statement (``_UPSERT_OUTCOMES``). Each address's member index comes from the
        intent's heads, decoded once per call: a few milliseconds for 5,000 members, a fraction of what
        joining the heads in SQL costs (``json_each`` parses every head again for each field read)."""
        if not outcomes and not resolved:
            return
        at = self._now()
        op = operation_id
        with self._write(bump=True) as db:
            found = db.execute(_SEQ_AND_HEADS, (op,)).fetchone()
            if found is None:
                raise StateError(f"no intent with operation id {op} is recorded")
            seq, heads = found
            member = {} if heads is None else {head[0]: i for i, head in enumerate(orjson.loads(heads))}
            if any(o[0] not in member for o in outcomes):
                _check_outcomes_covered(db, op, outcomes)
            created, others = outcome_rows(outcomes, member)
            if created or others:
                args = {"created": dumps_text(created), "others": dumps_text(others), "op": op, "at": at, "seq": seq}
                db.execute(_UPSERT_OUTCOMES, args)
            if resolved:
                db.execute(_RESOLVE, (at, op))
            journal.append_outcomes(db, at, op, outcomes, resolved=resolved)

    def forget(self, *, address: str) -> None:
        at = self._now()
        with self._write(bump=True) as db:
            overlay.refuse_pending(db, address, "forget it")
            summary = overlay.stored_summary(db, address)
            if summary is None:
                raise UnknownAddressError(f"{address} is not in the state")
            db.execute("DELETE FROM resources WHERE address = ?", (address,))
            _, kind, provider, spec_hash, status, remote_id, _, _ = summary
            detail = {
                "kind": kind,
                "provider": provider,
                "remote_id": remote_id,
                "status": status,
                "spec_hash": spec_hash,
            }
            journal.append(db, at, None, journal.Entries.one("forgotten", address, detail))

    def import_resource(
        self, *, address: str, kind: str, provider: str, remote_id: str, spec: dict[str, Any], spec_hash: str
    ) -> None:
        at = self._now()
        with self._write(bump=True) as db:
            overlay.refuse_pending(db, address, "import another object")
            row = db.execute("SELECT remote_id FROM resources WHERE address = ?", (address,)).fetchone()
            if row is not None:
                raise StateError(
                    f"{address} is already in the state (remote id {row[0]}); "
                    f"`reconciler state forget {address}` first to import another object"
                )
            db.execute(_INSERT_IMPORTED, (address, kind, provider, spec_hash, remote_id, at, at, dumps_text(spec)))
            detail = {"kind": kind, "provider": provider, "remote_id": remote_id, "spec_hash": spec_hash}
            journal.append(db, at, None, journal.Entries.one("imported", address, detail))

    def record_refresh(self, *, views: Sequence[tuple[str, dict[str, Any] | None]]) -> None:
        """Addresses no longer in the state are skipped; the journal keeps one ``refreshed`` count."""
        if not views:
            return
        at = self._now()
        rows = [(None if view is None else dumps_text(view), at, address) for address, view in views]
        with self._write(bump=True) as db:
            before = db.total_changes
            db.executemany("UPDATE resources SET remote = ?, refreshed_at = ? WHERE address = ?", rows)
            detail = {"count": db.total_changes - before, "gone": sum(1 for _, view in views if view is None)}
            journal.append(db, at, None, journal.Entries.one("refreshed", None, detail))

    # the lock: writes that leave the serial alone

    def acquire_lock(self, *, holder: str, operation: str, ttl: float) -> LockInfo:
        now = self._clock()
        lock_id = str(uuid.uuid4())
        with self._write(bump=False, fenced=False) as db:
            row = db.execute(f"SELECT {_LOCK_COLUMNS}, expires FROM lock").fetchone()
            if row is not None and row[5] > now:
                raise StateLockedError(lock_id=row[0], holder=row[1], operation=row[2], since=row[3])
            info = LockInfo(lock_id, holder, operation, utc_iso(now), utc_iso(now + ttl), _next_generation(db))
            db.execute(
                "INSERT OR REPLACE INTO lock (id, lock_id, holder, operation, started_at, expires_at, "
                "expires) VALUES (1, ?, ?, ?, ?, ?, ?)",
                (info.lock_id, holder, operation, info.started_at, info.expires_at, now + ttl),
            )
            if row is not None:
                detail = {"lock_id": row[0], "holder": row[1], "operation": row[2], "expired_at": row[4]}
                journal.append(db, info.started_at, None, journal.Entries.one("lock_taken_over", None, detail))
        return info

    def renew_lock(self, *, lock_id: str, ttl: float) -> None:
        """Renews even a lapsed lock, as long as nobody has taken it since."""
        now = self._clock()
        with self._write(bump=False, fenced=False) as db:
            cursor = db.execute(
                "UPDATE lock SET expires_at = ?, expires = ? WHERE lock_id = ?",
                (utc_iso(now + ttl), now + ttl, lock_id),
            )
            if cursor.rowcount == 1:
                return
            row = db.execute(f"SELECT {_LOCK_COLUMNS} FROM lock").fetchone()
        if row is None:
            raise StateError(
                f"the lock {lock_id} is no longer this run's: another run took it over after it expired, or it was "
                "broken (`state unlock`)"
            )
        raise StateLockedError(lock_id=row[0], holder=row[1], operation=row[2], since=row[3])

    def release_lock(self, *, lock_id: str) -> None:
        """Releasing a lock that is no longer ours does nothing: it is someone else's now."""
        with self._write(bump=False, fenced=False) as db:
            db.execute("DELETE FROM lock WHERE lock_id = ?", (lock_id,))

    def force_unlock(self, *, lock_id: str) -> None:
        at = self._now()
        with self._write(bump=False, fenced=False) as db:
            row = db.execute(f"SELECT {_LOCK_COLUMNS} FROM lock").fetchone()
            if row is None or row[0] != lock_id:
                now_held = f"it is held by {row[1]} with lock id {row[0]}" if row else "the state is not locked"
                raise StateError(f"no lock with id {lock_id}: {now_held}")
            db.execute("DELETE FROM lock WHERE lock_id = ?", (lock_id,))
            _next_generation(db)
            detail = {"lock_id": row[0], "holder": row[1], "operation": row[2], "since": row[3]}
            journal.append(db, at, None, journal.Entries.one("lock_broken", None, detail))

    # copies (the work is in ``copies``)

    def copy_to(self, *, path: Path) -> StateMeta:
        """Write a consistent copy of the state to ``path`` (SQLite's backup API), complete in that one file."""
        return copies.copy_to(self, path)

    def restore_from(self, *, path: Path, force: bool) -> tuple[StateMeta, int, StateMeta]:
        """Replace the whole state by the state file at ``path``; see ``copies.restore_from``."""
        return copies.restore_from(self, path, force=force)

    def close(self) -> None:
        """Closing a store opened for writing clears ``WRITING`` and checkpoints, so the file at rest is complete
        alone. If that cannot be done now (a busy file), the file keeps saying it is being written: the safe side."""
        with self._mutex:
            if not self.read_only:
                with contextlib.suppress(sqlite3.Error):
                    self._clear_writing()
                self._wrote = False
            self._conn.close()

    def _clear_writing(self) -> None:
        """Also done by a store that did not write: closing the last connection checkpoints the -wal into the
        file and deletes it, so ``WRITING`` left set (by a run that was killed) would read as a missing -wal. If
        another store is still writing, its next write sets it again."""
        if self._wrote or self._conn.execute("SELECT 1 FROM meta WHERE key = ?", (WRITING,)).fetchone():
            with immediate(self._conn):
                self._conn.execute("DELETE FROM meta WHERE key = ?", (WRITING,))
            self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)")

    # plumbing

    def _now(self) -> str:
        return utc_iso(self._clock())

    def _damaged(self, e: Exception) -> StateError:
        """A row that cannot be read as the format says: undecodable JSON, an unknown status, a missing member."""
        return damaged(self.path, e)

    def _error(self, e: sqlite3.Error) -> StateError:
        if isinstance(e, sqlite3.OperationalError) and "Could not decode to UTF-8" in str(e):
            return StateError(f"the state {self.path} is damaged: a text column holds bytes that are not UTF-8 ({e})")
        if isinstance(e, sqlite3.OperationalError) and "locked" in str(e):
            return StateError(f"{self.path}: the state file stayed busy for {BUSY_TIMEOUT:g}s; is a process stuck?")
        return StateError(f"{self.path}: {e}")

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        """One read transaction: a read of several statements sees one snapshot."""
        with self._mutex:
            db = self._conn
            try:
                db.execute("BEGIN")
                try:
                    yield db
                finally:
                    if db.in_transaction:
                        db.execute("ROLLBACK")
            except sqlite3.Error as e:
                raise self._error(e) from e
            except (ValueError, KeyError, IndexError, TypeError) as e:
                if isinstance(e, UnknownAddressError):
                    raise
                raise self._damaged(e) from e

    @contextmanager
    def _write(self, *, bump: bool, fenced: bool = True) -> Iterator[sqlite3.Connection]:
        """One ``BEGIN IMMEDIATE`` transaction; committing it is what makes the change durable. ``fenced``: the
        lock generation is checked first, inside the transaction (see ``fence``).

        The first write of this store first puts ``WRITING`` in the file itself (its own transaction, then a
        checkpoint); every write keeps it set, and if another store's ``close`` cleared it meanwhile, sets it and
        checkpoints again."""
        if self.read_only:
            raise StateError(f"{self.path} was opened read-only; this command cannot change the state")
        with self._mutex:
            db = self._conn
            try:
                if not self._marked:
                    with immediate(db):
                        db.execute(_MARK, (WRITING,))
                    self._wrote = True
                    self._checkpoint_mark()
                with immediate(db):
                    if fenced and self._fence is not None:
                        self._check_fence(db, self._fence)
                    yield db
                    if bump:
                        db.execute("UPDATE meta SET value = value + 1 WHERE key = 'serial'")
                    cleared = db.execute(_MARK, (WRITING,)).rowcount == 1
                if cleared:
                    self._checkpoint_mark()
            except sqlite3.Error as e:
                raise self._error(e) from e

    def _check_fence(self, db: sqlite3.Connection, generation: int) -> None:
        current = _generation(db)
        if current != generation:
            raise LeaseLostError(
                f"this run's hold on the lock of {self.path} has ended (lock generation {generation}, the state is at "
                f"{current}: another run took the lock over, or it was broken); it records nothing more. Run "
                "`reconciler apply` again: it resolves whatever this run left open"
            )

    def _checkpoint_mark(self) -> None:
        """Copy the WAL into the file, so the file alone says ``WRITING``; if a reader holds part of it back,
        try again after the next write."""
        _, log, done = self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        self._marked = log == done


def _generation(db: sqlite3.Connection) -> int:
    row = db.execute("SELECT value FROM meta WHERE key = 'lock_generation'").fetchone()
    return 0 if row is None else int(row[0])


def _next_generation(db: sqlite3.Connection) -> int:
    """Raised in the transaction that takes or breaks the lock, so no two holders ever share a generation."""
    generation = _generation(db) + 1
    db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('lock_generation', ?)", (generation,))
    return generation


def _check_outcomes_covered(db: sqlite3.Connection, operation_id: str, outcomes: Sequence[Outcome]) -> None:
    """Outcomes are for the intent's addresses only. Every address of an intent is a member, except in an intent
    of format 1 (see ``_SEQ_AND_HEADS`` and the upgrade to format 4): such an outcome is journalled only."""
    (addresses,) = db.execute("SELECT addresses FROM intents WHERE operation_id = ?", (operation_id,)).fetchone()
    check_outcomes_covered(operation_id, outcomes, orjson.loads(addresses))
