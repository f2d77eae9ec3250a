"""The default state store: one SQLite file per workspace, private to its owner.

Durability is the product here: an intent that ``record_intent`` returned from must survive a SIGKILL and a
power cut, so the file runs in WAL mode with ``synchronous=FULL`` (every commit is fsynced; ``fullfsync``
too, which matters on macOS), and every write method is a single ``BEGIN IMMEDIATE`` transaction, which also
serialises writers across threads and processes.

Tables (``format_version`` 3):

- ``meta``: key/value; ``lineage``, ``serial``, ``format_version``, ``created_at``.
- ``resources``: one row per address with an outcome (or imported). The narrow columns the planner reads come
  first and the JSON columns (``spec``, ``remote``) last, so a scan for summaries never touches their overflow
  pages. A row an intent's outcome wrote names its ``member``, its index in that intent's members, and leaves
  ``kind``, ``provider``, ``spec_hash``, ``attempt`` and ``spec`` NULL: reads take them from the members,
  since the intent already holds every one of them and writing them again per suite was most of the cost of
  recording a batch's outcomes. Imported rows, and format 1 and 2 rows, carry their own (``member`` NULL).
- ``intents``: ordered by ``seq``; ``addresses`` and ``detail`` are JSON; ``resolved`` is 0 or 1.
- ``intent_members``: per intent, written once: ``heads``, JSON of each address's kind, provider, spec hash,
  attempt and replaced id, and ``specs`` (apart, so that summaries decode only the heads; a table of its own:
  closing an intent then rewrites a small row, not a megabyte of members). An address is ``pending`` while an
  open intent newer than its row (if any) covers it: reads lay the open intents over the rows, so recording an
  intent writes one row however large the batch, and each resource row is written once, with its outcome.
  (Format 1 wrote a ``pending`` row per resource first; those rows are still read.)
- ``journal``: append-only (triggers refuse updates and deletes). A row holds ``entries`` consecutive entries
  numbered from its ``seq``: one for a lone event, a whole batch's for an intent or its outcomes. ``event`` then
  says how ``detail`` holds them: ``batch``, the entries' events, addresses and details side by side;
  ``created``, only addresses and remote ids (every outcome a plain creation), and whether a ``resolved``
  entry follows; ``members``, nothing: the entries are the intent's ``intent`` (and ``replaced``) entries,
  read from its members, which already say all they would. Writing a 5,000-suite batch as 10,000 rows cost
  more than the batch's resource rows; ``history`` expands them again.
- ``lock``: at most one row; ``expires`` is the epoch second it lapses at, ``expires_at`` the same for humans.

The file's SQLite ``application_id`` marks it as a reconciler state, so another SQLite database given by
mistake is refused instead of being written into.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from reconciler.errors import StateError, StateLockedError, StateVersionError, UnknownAddressError
from reconciler.state.base import (
    FORMAT_VERSION,
    Intent,
    JournalEntry,
    LockInfo,
    Outcome,
    PendingResource,
    ResourceRecord,
    ResourceSummary,
    StateMeta,
    Status,
)

APPLICATION_ID = 0x52434E4C  # "RCNL"
BUSY_TIMEOUT = 15.0
IN_CHUNK = 500
FETCH_CHUNK = 5000

_STATUS = {s.value: s for s in Status}
_SUMMARY_SLOTS = [getattr(ResourceSummary, f.name).__set__ for f in dataclasses.fields(ResourceSummary)]

_INTENT_MEMBERS = (
    "CREATE TABLE intent_members (operation_id TEXT PRIMARY KEY, heads TEXT NOT NULL, specs TEXT NOT NULL)"
)

#: ``{name}``: the upgrade from format 2 builds the table under another name, then swaps it in.
_RESOURCES = """
CREATE TABLE {name} (
    address TEXT PRIMARY KEY,
    kind TEXT,
    provider TEXT,
    spec_hash TEXT,
    status TEXT NOT NULL CHECK (status IN ('pending', 'created', 'failed')),
    remote_id TEXT,
    operation_id TEXT,
    attempt INTEGER,
    error TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    refreshed_at TEXT,
    member INTEGER,
    spec TEXT,
    remote TEXT,
    CHECK (member IS NOT NULL OR (kind IS NOT NULL AND provider IS NOT NULL AND spec_hash IS NOT NULL
                                  AND attempt IS NOT NULL AND spec IS NOT NULL))
)"""

_SCHEMA = f"""
CREATE TABLE meta (key TEXT PRIMARY KEY, value NOT NULL);
{_RESOURCES.format(name="resources")};
CREATE TABLE intents (
    seq INTEGER PRIMARY KEY,
    operation_id TEXT NOT NULL UNIQUE,
    provider TEXT NOT NULL,
    action TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    created_at TEXT NOT NULL,
    resolved INTEGER NOT NULL DEFAULT 0,
    resolved_at TEXT,
    addresses TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE INDEX intents_open ON intents (seq) WHERE resolved = 0;
{_INTENT_MEMBERS};
CREATE TABLE journal (
    seq INTEGER PRIMARY KEY,
    at TEXT NOT NULL,
    event TEXT NOT NULL,
    address TEXT,
    operation_id TEXT,
    detail TEXT NOT NULL,
    entries INTEGER NOT NULL DEFAULT 1
);
CREATE INDEX journal_address ON journal (address);
CREATE TRIGGER journal_no_update BEFORE UPDATE ON journal
    BEGIN SELECT RAISE(ABORT, 'the journal is append-only'); END;
CREATE TRIGGER journal_no_delete BEFORE DELETE ON journal
    BEGIN SELECT RAISE(ABORT, 'the journal is append-only'); END;
CREATE TABLE lock (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    lock_id TEXT NOT NULL,
    holder TEXT NOT NULL,
    operation TEXT NOT NULL,
    started_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    expires REAL NOT NULL
);
"""

#: A summary's columns, then ``member``.
_SUMMARY_COLUMNS = ", ".join(f.name for f in dataclasses.fields(ResourceSummary)) + ", member"
_RECORD_COLUMNS = (
    "address, kind, provider, spec, spec_hash, status, remote_id, operation_id, attempt, error, "
    "created_at, updated_at, remote, refreshed_at, member"
)
_INTENT_COLUMNS = "operation_id, provider, action, addresses, fingerprint, detail, created_at, resolved"
_LOCK_COLUMNS = "lock_id, holder, operation, started_at, expires_at"

#: The outcome of a format 1 intent, whose rows were written as pending.
_APPLY_OUTCOME = """
UPDATE resources SET status = ?1, remote_id = ?2, error = ?3, updated_at = ?4,
    remote = coalesce(?5, remote), refreshed_at = CASE WHEN ?5 IS NULL THEN refreshed_at ELSE ?4 END
WHERE address = ?6 AND operation_id = ?7
"""

_INSERT_INTENT = (
    "INSERT INTO intents (operation_id, provider, action, fingerprint, created_at, addresses, detail) "
    "VALUES (?, ?, ?, ?, ?, ?, ?)"
)

#: What the outcome of an intent with members does to a row that exists: a row last written by a newer intent
#: is left alone (``{seq}`` is this intent's seq), and ``created_at`` survives a retry after a failure.
_ON_CONFLICT = """
ON CONFLICT (address) DO UPDATE SET
    kind = NULL, provider = NULL, spec_hash = NULL, status = excluded.status, remote_id = excluded.remote_id,
    operation_id = excluded.operation_id, attempt = NULL, error = excluded.error, updated_at = excluded.updated_at,
    refreshed_at = excluded.refreshed_at, member = excluded.member, spec = NULL, remote = excluded.remote
WHERE resources.operation_id IS NULL OR resources.operation_id = excluded.operation_id
    OR coalesce((SELECT seq FROM intents WHERE operation_id = resources.operation_id), 0) < {seq}
"""

#: The outcome of an intent with members for one address: (address, status, remote id, operation id, error,
#: time, member, remote view, intent seq).
_UPSERT_OUTCOME = """
INSERT INTO resources (address, status, remote_id, operation_id, error, created_at, updated_at, refreshed_at,
                       member, remote)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6, CASE WHEN ?8 IS NULL THEN NULL ELSE ?6 END, ?7, ?8)
""" + _ON_CONFLICT.format(seq="?9")

#: The same for a whole batch of plain creations (no error, no remote view) in one statement: rows are a JSON
#: array of [address, remote id, member]. One statement lets go of the interpreter's lock once, where
#: ``executemany`` takes it back for every row. (``WHERE true`` keeps ``ON CONFLICT`` from reading as a
#: join's.)
_INSERT_CREATED = """
INSERT INTO resources (address, status, remote_id, operation_id, created_at, updated_at, member)
SELECT value ->> 0, 'created', value ->> 1, :op, :at, :at, value ->> 2
FROM json_each(:rows) WHERE true
""" + _ON_CONFLICT.format(seq=":seq")

_RESOLVE = "UPDATE intents SET resolved = 1, resolved_at = ? WHERE operation_id = ? AND resolved = 0"

_JOURNAL = (
    "INSERT INTO journal (seq, at, event, address, operation_id, detail, entries) VALUES "
    "(coalesce((SELECT seq + entries FROM journal ORDER BY seq DESC LIMIT 1), 1), ?, ?, ?, ?, ?, ?)"
)
_JOURNAL_COLUMNS = "seq, at, event, address, operation_id, detail, entries"
BATCH_EVENT = "batch"
CREATED_EVENT = "created"
MEMBERS_EVENT = "members"


def utc_iso(seconds: float) -> str:
    """Fixed width (always microseconds), so timestamps sort as strings."""
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


_slow_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def _dumps(value: Any) -> str:
    """orjson: recording 100,000 specs is a tenth of the work; the standard library takes what it refuses."""
    try:
        return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode("utf-8")
    except TypeError:
        return _slow_dumps(value)


def _loads_or_none(text: str | None) -> Any:
    return None if text is None else orjson.loads(text)


class SqliteStateStore:
    """A ``StateStore`` in one SQLite file; safe to share between threads of one process.

    ``clock`` returns epoch seconds; tests pass their own to control lock expiry and timestamps.
    """

    def __init__(self, path: Path, *, clock: Callable[[], float] = time.time) -> None:
        self.path = Path(path)
        self._clock = clock
        self._mutex = threading.RLock()
        self._conn = _open(self.path)
        # The members of intents this store recorded and not yet resolved, as written: their outcomes then
        # need not decode and re-encode them.
        self._members: dict[str, _Members] = {}

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
        """Streams from its own connection in one read transaction: a consistent snapshot that does not
        hold up writers, however slowly the caller consumes it. Rows come in insertion order, then the
        addresses only open intents know."""
        try:
            conn = _connect(self.path)
        except sqlite3.Error as e:
            raise self._error(e) from e
        try:
            conn.execute("PRAGMA query_only = ON")
            conn.execute("BEGIN")
            overlay = _Overlay(conn, None, specs=False)
            members = _Resolver(conn, specs=False)
            cursor = conn.execute(f"SELECT {_SUMMARY_COLUMNS} FROM resources")
            while rows := cursor.fetchmany(FETCH_CHUNK):
                resolved = members.summaries(rows)
                if overlay.pending:
                    yield from _summaries([overlay.summary(row) for row in resolved])
                else:
                    yield from _summaries(resolved)
            yield from _summaries([overlay.summary_of(address) for address in overlay.unseen()])
        except sqlite3.Error as e:
            raise self._error(e) from e
        finally:
            conn.close()

    def get(self, *, address: str) -> ResourceRecord | None:
        return self.get_many(addresses=[address]).get(address)

    def get_many(self, *, addresses: Iterable[str]) -> dict[str, ResourceRecord]:
        wanted = list(dict.fromkeys(addresses))
        found: dict[str, ResourceRecord] = {}
        with self._read() as db:
            overlay = _Overlay(db, wanted)
            members = _Resolver(db, specs=True)
            for start in range(0, len(wanted), IN_CHUNK):
                chunk = wanted[start : start + IN_CHUNK]
                sql = f"SELECT {_RECORD_COLUMNS} FROM resources WHERE address IN ({','.join('?' * len(chunk))})"
                rows = db.execute(sql, chunk).fetchall()
                found.update((row[0], overlay.record(row, members.record)) for row in rows)
            found.update((address, overlay.record_of(address, None)) for address in overlay.unseen())
        return found

    def open_intents(self) -> list[Intent]:
        with self._read() as db:
            rows = db.execute(f"SELECT {_INTENT_COLUMNS} FROM intents WHERE resolved = 0 ORDER BY seq").fetchall()
        return [_intent(row) for row in rows]

    def history(self, *, address: str | None = None, limit: int = 100) -> list[JournalEntry]:
        """The latest ``limit`` entries, oldest first; read newest row first, so a long journal is not read
        whole unless an address is asked for (its batch rows are found by the address's JSON text)."""
        args: tuple[str, ...] = ()
        if address is None:
            sql = f"SELECT {_JOURNAL_COLUMNS} FROM journal ORDER BY seq DESC"
        else:
            where = (
                "address = ?1 OR (entries > 1 AND instr(detail, ?2) > 0) OR (event = 'members' AND operation_id "
                "IN (SELECT operation_id FROM intents WHERE instr(addresses, ?2) > 0))"
            )
            sql, args = (
                f"SELECT {_JOURNAL_COLUMNS} FROM journal WHERE {where} ORDER BY seq DESC",
                (address, _dumps(address)),
            )
        newest_first: list[JournalEntry] = []
        with self._read() as db:
            members = _Resolver(db, specs=False)
            cursor = db.execute(sql, args)
            while len(newest_first) < limit and (rows := cursor.fetchmany(64)):
                for row in rows:
                    entries = _expand(row, members)
                    if address is not None:
                        entries = [e for e in entries if e.address == address]
                    newest_first.extend(reversed(entries))
        return list(reversed(newest_first[:limit]))

    def current_lock(self) -> LockInfo | None:
        with self._read() as db:
            row = db.execute(f"SELECT {_LOCK_COLUMNS} FROM lock").fetchone()
        return None if row is None else LockInfo(*row)

    # writes that bump the serial

    def record_intent(self, *, intent: Intent, resources: Sequence[PendingResource]) -> None:
        """One intent row, whose ``members`` say what each address will be; rows are serialised before the
        transaction opens, so the write lock is held only for the inserts."""
        _check_covers(intent, resources)
        at = self._now()
        op = intent.operation_id
        addresses, detail = _dumps(intent.addresses), _dumps(intent.detail)
        heads = [[r.address, r.kind, r.provider, r.spec_hash, r.attempt, r.replaces] for r in resources]
        specs = [r.spec for r in resources]
        heads_text, specs_text = _dumps(heads), _dumps(specs)
        head = (op, intent.provider, intent.action, intent.fingerprint, at, addresses, detail)
        replaced = sum(1 for r in resources if r.replaces)
        with self._write(bump=True) as db:
            if db.execute("SELECT 1 FROM intents WHERE operation_id = ?", (op,)).fetchone():
                raise StateError(f"an intent with operation id {op} is already recorded")
            db.execute(_INSERT_INTENT, head)
            db.execute(
                "INSERT INTO intent_members (operation_id, heads, specs) VALUES (?, ?, ?)", (op, heads_text, specs_text)
            )
            if len(resources) + replaced == 1:
                _journal(db, at, op, _intent_entries(heads))
            else:
                db.execute(_JOURNAL, (at, MEMBERS_EVENT, None, op, "{}", len(resources) + replaced))
        self._members[op] = _Members(heads, specs)

    def record_outcomes(self, *, operation_id: str, outcomes: Sequence[Outcome], resolved: bool) -> None:
        if not outcomes and not resolved:
            return
        at = self._now()
        op = operation_id
        created = Status.CREATED
        plain = [o for o in outcomes if o.status is created and o.error is None and o.remote is None]
        with self._write(bump=True) as db:
            row = db.execute("SELECT seq, addresses FROM intents WHERE operation_id = ?", (op,)).fetchone()
            if row is None:
                raise StateError(f"no intent with operation id {op} is recorded")
            seq, addresses = row
            known = self._members.get(op) or _Members.read(db, op, specs=False)
            covered = known.positions() if known is not None else set(orjson.loads(addresses))
            strays = [o[0] for o in outcomes if o[0] not in covered]
            if strays:
                raise ValueError(f"outcomes for addresses outside intent {op}: {strays[:5]}")
            if known is None:
                # A format 1 intent: its rows were written as pending when it was recorded.
                # A Status is a str (StrEnum): sqlite stores it as its text without the cost of ``.value``.
                updates = [
                    (o.status, o.remote_id, o.error, at, _dumps_or_none(o.remote), o.address, op) for o in outcomes
                ]
                db.executemany(_APPLY_OUTCOME, updates)
            else:
                if plain:
                    position = known.positions()
                    rows = _dumps([[address, remote_id, position[address]] for address, _, remote_id, _, _ in plain])
                    db.execute(_INSERT_CREATED, {"rows": rows, "op": op, "at": at, "seq": seq})
                if len(plain) < len(outcomes):
                    others = [o for o in outcomes if not (o.status is created and o.error is None and o.remote is None)]
                    db.executemany(_UPSERT_OUTCOME, [known.outcome_row(o, op, at, seq) for o in others])
            if resolved:
                db.execute(_RESOLVE, (at, op))
            _journal_outcomes(db, at, op, outcomes, resolved=resolved, all_plain=len(plain) == len(outcomes))
        if resolved:
            self._members.pop(op, None)

    def forget(self, *, address: str) -> None:
        at = self._now()
        with self._write(bump=True) as db:
            _refuse_pending(db, address, "forget it")
            row = db.execute(f"SELECT {_SUMMARY_COLUMNS} FROM resources WHERE address = ?", (address,)).fetchone()
            if row is None:
                raise UnknownAddressError(f"{address} is not in the state")
            db.execute("DELETE FROM resources WHERE address = ?", (address,))
            [(_, kind, provider, spec_hash, status, remote_id, _, _)] = _Resolver(db, specs=False).summaries([row])
            detail = {
                "kind": kind,
                "provider": provider,
                "remote_id": remote_id,
                "status": status,
                "spec_hash": spec_hash,
            }
            _journal(db, at, None, _Entries.one("forgotten", address, detail))

    def import_resource(
        self, *, address: str, kind: str, provider: str, remote_id: str, spec: dict[str, Any], spec_hash: str
    ) -> None:
        at = self._now()
        with self._write(bump=True) as db:
            _refuse_pending(db, address, "import another object")
            row = db.execute("SELECT remote_id FROM resources WHERE address = ?", (address,)).fetchone()
            if row is not None:
                raise StateError(
                    f"{address} is already in the state (remote id {row[0]}); "
                    f"`reconciler state forget {address}` first to import another object"
                )
            db.execute(
                "INSERT INTO resources (address, kind, provider, spec_hash, status, remote_id, attempt, "
                "created_at, updated_at, spec) VALUES (?, ?, ?, ?, 'created', ?, 0, ?, ?, ?)",
                (address, kind, provider, spec_hash, remote_id, at, at, _dumps(spec)),
            )
            detail = {"kind": kind, "provider": provider, "remote_id": remote_id, "spec_hash": spec_hash}
            _journal(db, at, None, _Entries.one("imported", address, detail))

    def record_refresh(self, *, views: Sequence[tuple[str, dict[str, Any] | None]]) -> None:
        """Addresses no longer in the state are skipped; the journal keeps one ``refreshed`` count."""
        if not views:
            return
        at = self._now()
        with self._write(bump=True) as db:
            before = db.total_changes
            db.executemany(
                "UPDATE resources SET remote = ?, refreshed_at = ? WHERE address = ?",
                [(_dumps_or_none(view), at, address) for address, view in views],
            )
            detail = {"count": db.total_changes - before, "gone": sum(1 for _, view in views if view is None)}
            _journal(db, at, None, _Entries.one("refreshed", None, detail))

    # writes that leave the serial alone

    def update_intent_detail(self, *, operation_id: str, detail: dict[str, Any]) -> None:
        with self._write(bump=False) as db:
            cursor = db.execute(
                "UPDATE intents SET detail = ? WHERE operation_id = ? AND resolved = 0",
                (_dumps(detail), operation_id),
            )
            if cursor.rowcount != 1:
                raise StateError(f"no open intent with operation id {operation_id}")

    def acquire_lock(self, *, holder: str, operation: str, ttl: float) -> LockInfo:
        now = self._clock()
        info = LockInfo(str(uuid.uuid4()), holder, operation, utc_iso(now), utc_iso(now + ttl))
        with self._write(bump=False) as db:
            row = db.execute(f"SELECT {_LOCK_COLUMNS}, expires FROM lock").fetchone()
            if row is not None and row[5] > now:
                raise StateLockedError(lock_id=row[0], holder=row[1], operation=row[2], since=row[3])
            db.execute(
                "INSERT OR REPLACE INTO lock (id, lock_id, holder, operation, started_at, expires_at, "
                "expires) VALUES (1, ?, ?, ?, ?, ?, ?)",
                (info.lock_id, holder, operation, info.started_at, info.expires_at, now + ttl),
            )
            if row is not None:
                detail = {"lock_id": row[0], "holder": row[1], "operation": row[2], "expired_at": row[4]}
                _journal(db, info.started_at, None, _Entries.one("lock_taken_over", None, detail))
        return info

    def renew_lock(self, *, lock_id: str, ttl: float) -> None:
        """Renews even a lapsed lock, as long as nobody has taken it since."""
        now = self._clock()
        with self._write(bump=False) as db:
            cursor = db.execute(
                "UPDATE lock SET expires_at = ?, expires = ? WHERE lock_id = ?",
                (utc_iso(now + ttl), now + ttl, lock_id),
            )
            if cursor.rowcount == 1:
                return
            row = db.execute(f"SELECT {_LOCK_COLUMNS} FROM lock").fetchone()
        if row is None:
            raise StateError(f"the lock {lock_id} was broken (`state unlock`) while this run held it")
        raise StateLockedError(lock_id=row[0], holder=row[1], operation=row[2], since=row[3])

    def release_lock(self, *, lock_id: str) -> None:
        """Releasing a lock that is no longer ours does nothing: it is someone else's now."""
        with self._write(bump=False) as db:
            db.execute("DELETE FROM lock WHERE lock_id = ?", (lock_id,))

    def force_unlock(self, *, lock_id: str) -> None:
        at = self._now()
        with self._write(bump=False) as db:
            row = db.execute(f"SELECT {_LOCK_COLUMNS} FROM lock").fetchone()
            if row is None or row[0] != lock_id:
                now_held = f"it is held by {row[1]} with lock id {row[0]}" if row else "the state is not locked"
                raise StateError(f"no lock with id {lock_id}: {now_held}")
            db.execute("DELETE FROM lock WHERE lock_id = ?", (lock_id,))
            detail = {"lock_id": row[0], "holder": row[1], "operation": row[2], "since": row[3]}
            _journal(db, at, None, _Entries.one("lock_broken", None, detail))

    def close(self) -> None:
        with self._mutex:
            self._conn.close()

    # plumbing

    def _now(self) -> str:
        return utc_iso(self._clock())

    def _error(self, e: sqlite3.Error) -> StateError:
        if isinstance(e, sqlite3.OperationalError) and "locked" in str(e):
            return StateError(f"{self.path}: the state file stayed busy for {BUSY_TIMEOUT:g}s; is a process stuck?")
        return StateError(f"{self.path}: {e}")

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        with self._mutex:
            try:
                yield self._conn
            except sqlite3.Error as e:
                raise self._error(e) from e

    @contextmanager
    def _write(self, *, bump: bool) -> Iterator[sqlite3.Connection]:
        """One ``BEGIN IMMEDIATE`` transaction: the write lock is taken up front, so two writers never both
        read a state and then both act on it; committing it is what makes the change durable."""
        with self._mutex:
            db = self._conn
            try:
                with _immediate(db):
                    yield db
                    if bump:
                        db.execute("UPDATE meta SET value = value + 1 WHERE key = 'serial'")
            except sqlite3.Error as e:
                raise self._error(e) from e


@dataclasses.dataclass
class _Entries:
    """Journal entries of one write, side by side: how a batch row stores them."""

    events: list[str]
    addresses: list[str | None]
    details: list[dict[str, Any]]

    @classmethod
    def one(cls, event: str, address: str | None, detail: dict[str, Any]) -> _Entries:
        return cls([event], [address], [detail])

    def add(self, event: str, address: str | None, detail: dict[str, Any]) -> None:
        self.events.append(event)
        self.addresses.append(address)
        self.details.append(detail)


def _journal(db: sqlite3.Connection, at: str, operation_id: str | None, entries: _Entries) -> None:
    """Append entries as one row: a lone entry as itself, several side by side under ``batch``."""
    count = len(entries.events)
    if count == 1:
        db.execute(_JOURNAL, (at, entries.events[0], entries.addresses[0], operation_id, _dumps(entries.details[0]), 1))
    elif count:
        text = _dumps({"events": entries.events, "addresses": entries.addresses, "details": entries.details})
        db.execute(_JOURNAL, (at, BATCH_EVENT, None, operation_id, text, count))


def _journal_outcomes(
    db: sqlite3.Connection, at: str, op: str, outcomes: Sequence[Outcome], *, resolved: bool, all_plain: bool
) -> None:
    """An intent's outcomes (and its ``resolved``); a batch of plain creations as addresses and remote ids."""
    if all_plain and len(outcomes) > 1:
        addresses, remote_ids = [o.address for o in outcomes], [o.remote_id for o in outcomes]
        text = _dumps({"addresses": addresses, "remote_ids": remote_ids, "resolved": resolved})
        db.execute(_JOURNAL, (at, CREATED_EVENT, None, op, text, len(outcomes) + resolved))
        return
    entries = _Entries(
        [o.status for o in outcomes], [o.address for o in outcomes], [_outcome_entry(o) for o in outcomes]
    )
    if resolved:
        entries.add("resolved", None, {})
    _journal(db, at, op, entries)


def _intent_entries(heads: Sequence[Sequence[Any]]) -> _Entries:
    """The ``intent`` entry of each member, then a ``replaced`` entry for each member replacing an object."""
    entries = _Entries(
        ["intent"] * len(heads),
        [head[0] for head in heads],
        [{"spec_hash": head[3], "attempt": head[4]} for head in heads],
    )
    for head in heads:
        if head[5]:
            entries.add("replaced", head[0], {"remote_id": head[5]})
    return entries


def _expand(row: tuple[Any, ...], members: _Resolver) -> list[JournalEntry]:
    seq, at, event, address, operation_id, detail, count = row
    if count == 1:
        return [JournalEntry(seq, at, event, address, operation_id, orjson.loads(detail))]
    if event == MEMBERS_EVENT:
        entries = _intent_entries(members.members(operation_id).heads)
    elif event == CREATED_EVENT:
        body = orjson.loads(detail)
        entries = _Entries(
            [CREATED_EVENT] * len(body["addresses"]),
            body["addresses"],
            [{} if remote_id is None else {"remote_id": remote_id} for remote_id in body["remote_ids"]],
        )
        if body["resolved"]:
            entries.add("resolved", None, {})
    else:
        body = orjson.loads(detail)
        entries = _Entries(body["events"], body["addresses"], body["details"])
    return [
        JournalEntry(seq + i, at, e, a, operation_id, d)
        for i, (e, a, d) in enumerate(zip(entries.events, entries.addresses, entries.details, strict=True))
    ]


class _Members:
    """What an intent says each of its addresses will be: heads (address, kind, provider, spec hash, attempt,
    replaced id) and, unless left unread, specs, in request order."""

    def __init__(self, heads: list[list[Any]], specs: list[dict[str, Any]] | None) -> None:
        self.heads = heads
        self.specs = specs
        self._index: dict[str, int] | None = None

    @classmethod
    def read(cls, db: sqlite3.Connection, operation_id: str, *, specs: bool) -> _Members | None:
        """An intent's members as recorded; None for a format 1 intent (its pending rows say it all)."""
        columns = "heads, specs" if specs else "heads, NULL"
        sql = f"SELECT {columns} FROM intent_members WHERE operation_id = ?"
        row = db.execute(sql, (operation_id,)).fetchone()
        if row is None:
            return None
        return cls(orjson.loads(row[0]), None if row[1] is None else orjson.loads(row[1]))

    def positions(self) -> dict[str, int]:
        """Each address's index among the members."""
        if self._index is None:
            self._index = {head[0]: i for i, head in enumerate(self.heads)}
        return self._index

    def outcome_row(self, outcome: Outcome, op: str, at: str, seq: int) -> tuple[Any, ...]:
        address, status, remote_id, error, remote = outcome
        return (address, status, remote_id, op, error, at, self.positions()[address], _dumps_or_none(remote), seq)


class _Resolver:
    """Fills in what a member row leaves to its intent's members, decoding each intent once per read."""

    def __init__(self, db: sqlite3.Connection, *, specs: bool) -> None:
        self.db = db
        self.specs = specs
        self._read: dict[str, _Members] = {}

    def members(self, operation_id: str) -> _Members:
        found = self._read.get(operation_id)
        if found is None:
            found = _Members.read(self.db, operation_id, specs=self.specs)
            if found is None:
                raise StateError(f"the state is damaged: intent {operation_id} has rows but no members")
            self._read[operation_id] = found
        return found

    def summaries(self, rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
        """Rows of ``_SUMMARY_COLUMNS`` as summary tuples (``member`` dropped)."""
        return [row[:8] if row[8] is None else self._summary(row) for row in rows]

    def _summary(self, row: tuple[Any, ...]) -> tuple[Any, ...]:
        address, _, _, _, status, remote_id, op, _, member = row
        _, kind, provider, spec_hash, attempt, _ = self.members(op).heads[member]
        return (address, kind, provider, spec_hash, status, remote_id, op, attempt)

    def record(self, row: tuple[Any, ...]) -> ResourceRecord:
        """A row of ``_RECORD_COLUMNS`` as a record."""
        if row[14] is None:
            return _record(row)
        op, i = row[7], row[14]
        members = self.members(op)
        assert members.specs is not None
        _, kind, provider, spec_hash, attempt, _ = members.heads[i]
        filled = (row[0], kind, provider, None, spec_hash, *row[5:8], attempt, *row[9:])
        return _record(filled, spec=members.specs[i])


class _Overlay:
    """The addresses open intents are creating, laid over the rows they are newer than.

    ``wanted`` limits it to some addresses (None: all); an open intent none of them is in is not decoded
    beyond its address list. Each candidate is (intent seq, operation id, intent time, member); without
    ``specs`` a member's spec is None.
    """

    def __init__(self, db: sqlite3.Connection, wanted: Sequence[str] | None, *, specs: bool = True) -> None:
        self.db = db
        self.pending: dict[str, tuple[int, str, str, list[Any]]] = {}
        self._seen: set[str] = set()
        self._seq_of: dict[str, int | None] = {}
        want = None if wanted is None else set(wanted)
        sql = (
            f"SELECT seq, operation_id, created_at, addresses, heads, {'specs' if specs else 'NULL'} FROM intents "
            "JOIN intent_members USING (operation_id) WHERE resolved = 0 ORDER BY seq"
        )
        for seq, op, at, addresses, heads, specs_text in db.execute(sql).fetchall():
            if want is not None and want.isdisjoint(orjson.loads(addresses)):
                continue
            self._seq_of[op] = seq
            decoded = orjson.loads(heads)
            member_specs = [None] * len(decoded) if specs_text is None else orjson.loads(specs_text)
            for head, spec in zip(decoded, member_specs, strict=True):
                if want is None or head[0] in want:
                    self.pending[head[0]] = (seq, op, at, [*head, spec])

    def unseen(self) -> list[str]:
        """Pending addresses no row was shown for: only open intents know them."""
        return [address for address in self.pending if address not in self._seen]

    def overrides(self, address: str, row_operation_id: str | None) -> bool:
        self._seen.add(address)
        seq = self.pending[address][0]
        if row_operation_id is None:
            return True
        if row_operation_id not in self._seq_of:
            found = self.db.execute("SELECT seq FROM intents WHERE operation_id = ?", (row_operation_id,)).fetchone()
            self._seq_of[row_operation_id] = None if found is None else found[0]
        row_seq = self._seq_of[row_operation_id]
        return row_seq is None or row_seq < seq

    def summary(self, row: tuple[Any, ...]) -> tuple[Any, ...]:
        address = row[0]
        if address in self.pending and self.overrides(address, row[6]):
            return self.summary_of(address)
        return row

    def summary_of(self, address: str) -> tuple[Any, ...]:
        _, op, _, (_, kind, provider, spec_hash, attempt, _, _) = self.pending[address]
        return (address, kind, provider, spec_hash, Status.PENDING.value, None, op, attempt)

    def record(self, row: tuple[Any, ...], otherwise: Callable[[tuple[Any, ...]], ResourceRecord]) -> ResourceRecord:
        address = row[0]
        if address in self.pending and self.overrides(address, row[7]):
            return self.record_of(address, row[10])
        return otherwise(row)

    def record_of(self, address: str, created_at: str | None) -> ResourceRecord:
        _, op, at, (_, kind, provider, spec_hash, attempt, _, spec) = self.pending[address]
        return ResourceRecord(
            address=address,
            kind=kind,
            provider=provider,
            spec=spec,
            spec_hash=spec_hash,
            status=Status.PENDING,
            remote_id=None,
            operation_id=op,
            attempt=attempt,
            error=None,
            created_at=created_at or at,
            updated_at=at,
        )


def _refuse_pending(db: sqlite3.Connection, address: str, what: str) -> None:
    overlay = _Overlay(db, [address])
    if address not in overlay.pending:
        return
    row = db.execute("SELECT operation_id FROM resources WHERE address = ?", (address,)).fetchone()
    if row is None or overlay.overrides(address, row[0]):
        op = overlay.pending[address][1]
        raise StateError(
            f"{address} is pending: an interrupted apply (operation {op}) may have created it. Run "
            f"`reconciler apply` to find out, or `reconciler state import {address} REMOTE_ID ...` if you know "
            f"the remote object, before you {what}"
        )


@contextmanager
def _immediate(conn: sqlite3.Connection) -> Iterator[None]:
    """A ``BEGIN IMMEDIATE`` transaction, committed if the block ends normally, else rolled back."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def _dumps_or_none(value: Any) -> str | None:
    return None if value is None else _dumps(value)


def _outcome_entry(outcome: Outcome) -> dict[str, Any]:
    if outcome.error is None:
        return {} if outcome.remote_id is None else {"remote_id": outcome.remote_id}
    return {k: v for k, v in (("remote_id", outcome.remote_id), ("error", outcome.error)) if v is not None}


def _check_covers(intent: Intent, resources: Sequence[PendingResource]) -> None:
    addresses = [r.address for r in resources]
    if len(set(addresses)) != len(addresses) or set(addresses) != set(intent.addresses):
        raise ValueError(f"the resources of intent {intent.operation_id} must be exactly its addresses, once each")


def _summaries(rows: list[tuple[Any, ...]]) -> Iterator[ResourceSummary]:
    """Fills the slots directly: a frozen dataclass's ``__init__`` sets each field through
    ``object.__setattr__``, which is half the cost of a summary, a second or more per million rows."""
    new, cls, status = object.__new__, ResourceSummary, _STATUS
    set_a, set_k, set_p, set_h, set_s, set_r, set_o, set_n = _SUMMARY_SLOTS
    for a, k, p, h, s, r, o, n in rows:
        summary = new(cls)
        set_a(summary, a)
        set_k(summary, k)
        set_p(summary, p)
        set_h(summary, h)
        set_s(summary, status[s])
        set_r(summary, r)
        set_o(summary, o)
        set_n(summary, n)
        yield summary


def _record(row: tuple[Any, ...], *, spec: dict[str, Any] | None = None) -> ResourceRecord:
    """A row of ``_RECORD_COLUMNS`` that carries its own columns, or has them filled in with ``spec`` decoded."""
    address, kind, provider, spec_text, spec_hash, status, remote_id, operation_id, attempt, *rest = row
    error, created_at, updated_at, remote, refreshed_at, _ = rest
    return ResourceRecord(
        address=address,
        kind=kind,
        provider=provider,
        spec=orjson.loads(spec_text) if spec is None else spec,
        spec_hash=spec_hash,
        status=_STATUS[status],
        remote_id=remote_id,
        operation_id=operation_id,
        attempt=attempt,
        error=error,
        created_at=created_at,
        updated_at=updated_at,
        remote=_loads_or_none(remote),
        refreshed_at=refreshed_at,
    )


def _intent(row: tuple[Any, ...]) -> Intent:
    operation_id, provider, action, addresses, fingerprint, detail, created_at, resolved = row
    return Intent(
        operation_id=operation_id,
        provider=provider,
        action=action,
        addresses=tuple(orjson.loads(addresses)),
        fingerprint=fingerprint,
        detail=orjson.loads(detail),
        created_at=created_at,
        resolved=bool(resolved),
    )


def _connect(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(path, timeout=BUSY_TIMEOUT, isolation_level=None, check_same_thread=False)


def _open(path: Path) -> sqlite3.Connection:
    """Open (creating if needed) a reconciler state file, refusing anything else before writing to it."""
    if path.is_dir():
        raise StateError(f"{path} is a directory, not a state file")
    try:
        _create_private(path)
        conn = _connect(path)
    except OSError as e:
        raise StateError(f"cannot create the state file {path}: {e.strerror}") from e
    except sqlite3.Error as e:
        raise StateError(f"cannot open the state file {path}: {e}") from e
    try:
        _prepare(conn, path)
    except BaseException:
        conn.close()
        raise
    return conn


def _create_private(path: Path) -> None:
    """The file exists, owner-only, before SQLite opens it (SQLite gives its -wal and -shm files the same
    mode); the directory entry is fsynced, so a fresh state survives a power cut like its first commit."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    os.close(fd)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _prepare(conn: sqlite3.Connection, path: Path) -> None:
    try:
        version = _identify(conn, path)
        _use_wal(conn)
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA fullfsync = ON")
        conn.execute("PRAGMA checkpoint_fullfsync = ON")
        if version is None:
            _initialise(conn)
        elif version < FORMAT_VERSION:
            _upgrade(conn)
    except sqlite3.Error as e:
        raise StateError(f"cannot open the state file {path}: {e}") from e


def _use_wal(conn: sqlite3.Connection) -> None:
    """Switching a new file to WAL needs it to itself, and SQLite answers "locked" at once, without waiting,
    while another process or thread is opening the same new file: so wait here, as long as for any lock."""
    deadline = time.monotonic() + BUSY_TIMEOUT
    while True:
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def _identify(conn: sqlite3.Connection, path: Path) -> int | None:
    """The state's format version, None for a new (empty) file; raises for anything that is not a state this
    reconciler can read.

    Everything is read in one transaction, so a state another process is creating right now is seen either
    empty or complete."""
    conn.execute("BEGIN")
    try:
        return _identify_snapshot(conn, path)
    finally:
        if conn.in_transaction:
            conn.execute("ROLLBACK")


def _identify_snapshot(conn: sqlite3.Connection, path: Path) -> int | None:
    try:
        (app_id,) = conn.execute("PRAGMA application_id").fetchone()
        (tables,) = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.DatabaseError as e:
        raise StateError(f"{path} is not a reconciler state file (not an SQLite database: {e})") from e
    if app_id == 0 and tables == 0:
        return None
    if app_id != APPLICATION_ID:
        raise StateError(f"{path} is not a reconciler state file (it is an SQLite database of something else)")
    try:
        row = conn.execute("SELECT value FROM meta WHERE key = 'format_version'").fetchone()
    except sqlite3.DatabaseError as e:
        raise StateError(f"{path} is a damaged reconciler state file: {e}") from e
    if row is None or not isinstance(row[0], int):
        raise StateError(f"{path} is a damaged reconciler state file: it records no format version")
    if row[0] > FORMAT_VERSION:
        raise StateVersionError(
            f"{path} was written by a newer reconciler (state format {row[0]}; this one reads up to "
            f"{FORMAT_VERSION}); upgrade reconciler to use this state"
        )
    return row[0]


def _upgrade(conn: sqlite3.Connection) -> None:
    """One format at a time, in one transaction. Idempotent under a race like ``_initialise``: the version is
    read again under the write lock.

    - 1 to 2: journal rows gain ``entries`` (every format 1 row is one entry), and ``intent_members`` appears
      (format 1 intents have no members: their pending rows are in ``resources``).
    - 2 to 3: ``resources`` is rebuilt with ``member`` and the columns a member row leaves NULL (SQLite cannot
      drop a NOT NULL in place); every row keeps its own columns. ``intent_members`` splits its JSON into
      ``heads`` and ``specs``.
    """
    with _immediate(conn):
        (version,) = conn.execute("SELECT value FROM meta WHERE key = 'format_version'").fetchone()
        if version == 1:
            conn.execute("ALTER TABLE journal ADD COLUMN entries INTEGER NOT NULL DEFAULT 1")
            conn.execute("CREATE TABLE intent_members (operation_id TEXT PRIMARY KEY, members TEXT NOT NULL)")
            version = 2
        if version == 2:
            columns = (
                "address, kind, provider, spec_hash, status, remote_id, operation_id, attempt, error, created_at, "
                "updated_at, refreshed_at, spec, remote"
            )
            conn.execute(_RESOURCES.format(name="resources_v3"))
            conn.execute(f"INSERT INTO resources_v3 ({columns}) SELECT {columns} FROM resources")
            conn.execute("DROP TABLE resources")
            conn.execute("ALTER TABLE resources_v3 RENAME TO resources")
            conn.execute("ALTER TABLE intent_members RENAME TO intent_members_v2")
            conn.execute(_INTENT_MEMBERS)
            conn.execute(
                "INSERT INTO intent_members (operation_id, heads, specs) SELECT operation_id, "
                "json_extract(members, '$.heads'), json_extract(members, '$.specs') FROM intent_members_v2"
            )
            conn.execute("DROP TABLE intent_members_v2")
        conn.execute("UPDATE meta SET value = ? WHERE key = 'format_version'", (FORMAT_VERSION,))


def _initialise(conn: sqlite3.Connection) -> None:
    """Idempotent under a race: whoever takes the write lock second finds the schema there and stops."""
    with _immediate(conn):
        if conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] == 0:
            for statement in _SCHEMA.split(";\n"):
                if statement.strip():
                    conn.execute(statement)
            conn.executemany(
                "INSERT INTO meta (key, value) VALUES (?, ?)",
                [
                    ("lineage", str(uuid.uuid4())),
                    ("serial", 0),
                    ("format_version", FORMAT_VERSION),
                    ("created_at", utc_iso(time.time())),
                ],
            )
            conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
