"""``PostgresStateStore``: the ``StateStore`` contract of ``reconciler.state.base`` on one workspace of a database.

Every write method is one transaction (``session``) that first locks its workspace's row (``schema``: ``hold``): that
serialises the writers of one workspace across threads, processes and machines, as ``BEGIN IMMEDIATE`` does for
SQLite, while writers of other workspaces lock other rows and never wait. ``hold`` also checks the fencing
generation before anything is written, and reads the server's clock once the row is held, so the state's times
follow its commit order. Counters (serial, intent and journal numbers) are advanced in SQL from the row's own
values. So the two writes apply makes per call, ``record_intent`` and ``record_outcomes``, need nothing back
from the server before they end: their statements, ``BEGIN`` to ``COMMIT``, go out in one round trip (libpq's
pipeline mode), which on a busy machine costs far less than a round trip per statement. ``COMMIT`` returns once
the server has flushed its WAL (``synchronous_commit`` as the server sets it; ``on`` by default), which is what
makes ``record_intent`` durable.

Reads are one ``REPEATABLE READ`` transaction each (one snapshot); ``summaries`` streams through a server-side
cursor on a connection of its own, so a slow consumer holds up no writer and no other method of the store.

A connection that breaks (a restarted server, ``pg_terminate_backend``) fails the call it was in with a
StateError, and the next call connects again. A write whose ``COMMIT`` got no answer may or may not have been
committed: that is a lost acknowledgement, which the protocol already resolves (an intent is resolved by the
next run; a call is never sent without its intent's commit acknowledged).
"""

from __future__ import annotations

import uuid
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
import psycopg

from reconciler.encoding import dumps_text
from reconciler.errors import StateAbsentError, StateError, StateLockedError, UnknownAddressError
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
from reconciler.state.postgres import copies, rows, schema
from reconciler.state.postgres.journal import read_history
from reconciler.state.postgres.location import PostgresLocation
from reconciler.state.postgres.rows import Place
from reconciler.state.postgres.session import Session
from reconciler.state.sqlite.journal import Entries

__all__ = ["PostgresStateStore"]


_LOCK_COLUMNS = "lock_id, lock_holder, lock_operation, lock_started_at, lock_expires_at, lock_generation"
_INSERT_INTENT = (
    "INSERT INTO {s}.intents (workspace, seq, operation_id, provider, action, fingerprint, created_at, addresses, "
    f"detail, heads, specs) SELECT workspace, next_intent, %s, %s, %s, %s, {schema.AT}, %s, %s, %s, %s "
    "FROM {s}.workspaces WHERE workspace = %s"
)
#: How many intents' members a store keeps decoded: those it recorded last, whose outcomes it records next.
_MEMBERS_KEPT = 32

#: Every outcome of one call in one statement, from two JSON arrays (as SQLite's store does it): ``%(created)s``,
#: the plain creations, as ``[address, remote id, member index]``, and ``%(others)s``, every other outcome, as
#: ``[address, status, remote id, member index, error, remote view as JSON text]``. JSON, because psycopg
#: quotes a text array element by element in Python, five times slower than the server parses the JSON. A row
#: last written by a newer intent is left alone; ``created_at`` survives an update (a retry keeps it).
_UPSERT_OUTCOMES = f"""
WITH i AS (SELECT seq, {schema.AT} AS at FROM {{s}}.intents WHERE workspace = %(ws)s AND operation_id = %(op)s)
INSERT INTO {{s}}.resources AS r (workspace, address, status, remote_id, member, error, remote, operation_id,
                               written_by, created_at, updated_at, refreshed_at)
SELECT %(ws)s, o ->> 0, 'created', o ->> 1, (o ->> 2)::integer, NULL, NULL, %(op)s, i.seq, i.at, i.at, NULL
FROM jsonb_array_elements(%(created)s::jsonb) AS o, i
UNION ALL
SELECT %(ws)s, o ->> 0, o ->> 1, o ->> 2, (o ->> 3)::integer, o ->> 4, o ->> 5, %(op)s, i.seq, i.at, i.at,
       CASE WHEN o ->> 5 IS NULL THEN NULL ELSE i.at END
FROM jsonb_array_elements(%(others)s::jsonb) AS o, i
ON CONFLICT (workspace, address) DO UPDATE SET
    kind = NULL, provider = NULL, spec_hash = NULL, status = excluded.status, remote_id = excluded.remote_id,
    operation_id = excluded.operation_id, written_by = excluded.written_by, attempt = NULL, error = excluded.error,
    updated_at = excluded.updated_at, refreshed_at = excluded.refreshed_at, member = excluded.member, spec = NULL,
    remote = excluded.remote
WHERE r.written_by IS NULL OR r.written_by <= excluded.written_by
"""
_INSERT_IMPORTED = (
    "INSERT INTO {s}.resources (workspace, address, kind, provider, spec_hash, status, remote_id, attempt, "
    f"created_at, updated_at, spec) VALUES (%s, %s, %s, %s, %s, 'created', %s, 0, {schema.AT}, {schema.AT}, %s)"
)
#: ``%s``: a JSON array of ``[address, remote view as JSON text or null]``, each address once.
_REFRESH = f"""
UPDATE {{s}}.resources AS r SET remote = v ->> 1, refreshed_at = {schema.AT}
FROM jsonb_array_elements(%s::jsonb) AS v
WHERE r.workspace = %s AND r.address = v ->> 0
RETURNING r.address
"""


class PostgresStateStore:
    """A ``StateStore`` on one workspace of a PostgreSQL database; safe to share between threads of one process.

    ``url``: a ``postgresql://`` URL (see ``location``). ``read_only``: for commands that only read; nothing is
    created (StateAbsentError if the workspace has no state) and every write raises StateError. ``lineage``: the
    lineage of the state if this opening creates it.

    Each method is one transaction of its ``Session`` (``read``, ``write``), which owns the connection, the
    mutex that makes the store safe to share between threads, and the fence. Longer than this project's classes
    usually are, for the reason ``SqliteStateStore`` gives: it is the whole ``StateStore`` protocol, one short
    transaction per method.
    """

    def __init__(self, url: str, *, workspace: str, read_only: bool = False, lineage: str | None = None) -> None:
        self.location = PostgresLocation.parse(url)
        self.workspace = workspace
        self.read_only = read_only
        self._members: OrderedDict[str, dict[str, int]] = OrderedDict()
        self._session = Session(self.location, workspace, read_only=read_only, shown=str(self))
        try:
            self._open(lineage)
        except BaseException:
            self.close()
            raise

    def _open(self, lineage: str | None) -> None:
        conn = self._session.connection()
        try:
            version = schema.identify(conn, self.location)
            if version is None and self.read_only:
                raise StateAbsentError(f"there is no state of workspace {self.workspace} at {self.location} yet")
            if version != schema.SCHEMA_VERSION:
                if self.read_only:
                    raise StateError(
                        f"the state {self} is of an older reconciler (schema version {version}); a command that "
                        "writes (`reconciler apply`) upgrades it"
                    )
                schema.migrate(conn, self.location)
            schema.ensure_workspace(conn, self.location, self.workspace, create=not self.read_only, lineage=lineage)
        except psycopg.Error as e:
            raise self._session.error(e) from e

    def __enter__(self) -> PostgresStateStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"PostgresStateStore({str(self)!r})"

    def __str__(self) -> str:
        return f"{self.location.display} (workspace {self.workspace})"

    # reads

    def meta(self) -> StateMeta:
        with self._session.read() as place:
            row = place.one("SELECT lineage, serial FROM {s}.workspaces WHERE workspace = %s")
        if row is None:
            raise StateError(f"the state {self} is gone: its workspace row was removed")
        return StateMeta(lineage=row[0], serial=row[1])

    def summaries(self) -> Iterator[ResourceSummary]:
        """Streams from a connection of its own, in one read-only snapshot that holds up no writer."""
        conn = self._session.stream()
        try:
            with conn.transaction():
                yield from rows.read_summaries(Place(conn.cursor(), self.location.schema, self.workspace), conn)
        except psycopg.Error as e:
            raise self._session.error(e) from e
        except (ValueError, KeyError, IndexError, TypeError) as e:
            raise self._session.damaged(e) from e
        finally:
            conn.close()

    def get(self, *, address: str) -> ResourceRecord | None:
        return self.get_many(addresses=[address]).get(address)

    def get_many(self, *, addresses: Iterable[str]) -> dict[str, ResourceRecord]:
        with self._session.read() as place:
            return rows.read_records(place, addresses)

    def open_intents(self) -> list[Intent]:
        sql = f"SELECT {rows.INTENT_COLUMNS} FROM {{s}}.intents WHERE workspace = %s AND NOT resolved ORDER BY seq"
        with self._session.read() as place:
            return [rows.intent_of_row(row) for row in place.all(sql)]

    def history(self, *, address: str | None = None, limit: int = 100) -> list[JournalEntry]:
        with self._session.read() as place:
            return read_history(place, address=address, limit=limit, heads_of=rows.Members(place, specs=False).heads)

    def current_lock(self) -> LockInfo | None:
        with self._session.read() as place:
            row = place.one(f"SELECT {_LOCK_COLUMNS} FROM {{s}}.workspaces WHERE workspace = %s")
        return None if row is None or row[0] is None else LockInfo(*row)

    def fence(self, *, generation: int | None) -> None:
        self._session.fence = generation

    # writes that bump the serial

    def record_intent(self, *, intent: Intent, resources: Sequence[PendingResource]) -> None:
        """One intent row, members included, however many addresses: encoded before the transaction, then sent
        with the rest of the write in one round trip."""
        check_covers(intent, resources)
        op = intent.operation_id
        heads = [[r.address, r.kind, r.provider, r.spec_hash, r.attempt, r.replaces] for r in resources]
        texts = (dumps_text(intent.addresses), dumps_text(intent.detail), dumps_text(heads))
        specs = dumps_text([r.spec for r in resources])
        try:
            with self._session.write(bump=True, pipelined=True) as held:
                row = (op, intent.provider, intent.action, intent.fingerprint, *texts, specs, self.workspace)
                held.run(_INSERT_INTENT, row)
                held.intents = 1
                held.journal.intent(op, heads)
        except StateError as e:
            if isinstance(e.__cause__, psycopg.errors.UniqueViolation):
                raise StateError(f"an intent with operation id {op} is already recorded") from None
            raise
        self._remember(op, {r.address: i for i, r in enumerate(resources)})

    def record_outcomes(self, *, operation_id: str, outcomes: Sequence[Outcome], resolved: bool) -> None:
        """Every outcome in one statement, the whole write in one round trip. Each address's member index comes
        from the intent's heads, which the store keeps decoded for the intents it recorded last (else reads them
        first: an intent's members never change)."""
        if not outcomes and not resolved:
            return
        op = operation_id
        member = self._members_of(op)
        if any(o[0] not in member for o in outcomes):
            self._check_outcomes_covered(op, outcomes)
        created, others = outcome_rows(outcomes, member)
        with self._session.write(bump=True, pipelined=True) as held:
            if created or others:
                args = {"ws": self.workspace, "op": op, "created": dumps_text(created), "others": dumps_text(others)}
                held.run(_UPSERT_OUTCOMES, args)
            if resolved:
                held.run(
                    f"UPDATE {{s}}.intents SET resolved = true, resolved_at = {schema.AT} "
                    "WHERE workspace = %s AND operation_id = %s AND NOT resolved",
                    (self.workspace, op),
                )
            held.journal.outcomes(op, outcomes, resolved=resolved)

    def forget(self, *, address: str) -> None:
        with self._session.write(bump=True) as held:
            refused = rows.refuse_pending(held.place, address, "forget it")
            if refused is not None:
                raise StateError(refused)
            summary = rows.stored_summary(held.place, address)
            if summary is None:
                raise UnknownAddressError(f"{address} is not in the state")
            held.run("DELETE FROM {s}.resources WHERE workspace = %s AND address = %s", (self.workspace, address))
            _, kind, provider, spec_hash, status, remote_id, _, _ = summary
            detail = {"kind": kind, "provider": provider, "remote_id": remote_id, "status": status}
            held.journal.append(None, Entries.one("forgotten", address, {**detail, "spec_hash": spec_hash}))

    def import_resource(
        self, *, address: str, kind: str, provider: str, remote_id: str, spec: dict[str, Any], spec_hash: str
    ) -> None:
        with self._session.write(bump=True) as held:
            refused = rows.refuse_pending(held.place, address, "import another object")
            if refused is not None:
                raise StateError(refused)
            sql = "SELECT remote_id FROM {s}.resources WHERE workspace = %s AND address = %s"
            row = held.place.one(sql, (address,))
            if row is not None:
                raise StateError(
                    f"{address} is already in the state (remote id {row[0]}); "
                    f"`reconciler state forget {address}` first to import another object"
                )
            params = (self.workspace, address, kind, provider, spec_hash, remote_id, dumps_text(spec))
            held.run(_INSERT_IMPORTED, params)
            detail = {"kind": kind, "provider": provider, "remote_id": remote_id, "spec_hash": spec_hash}
            held.journal.append(None, Entries.one("imported", address, detail))

    def record_refresh(self, *, views: Sequence[tuple[str, dict[str, Any] | None]]) -> None:
        """Addresses no longer in the state are skipped; the journal keeps one ``refreshed`` count (of views
        stored: an address given twice counts twice, and its last view stays)."""
        if not views:
            return
        latest = {address: None if view is None else dumps_text(view) for address, view in views}
        with self._session.write(bump=True) as held:
            found = {row[0] for row in held.run(_REFRESH, (dumps_text(list(latest.items())), self.workspace))}
            detail = {"count": sum(1 for a, _ in views if a in found), "gone": sum(1 for _, v in views if v is None)}
            held.journal.append(None, Entries.one("refreshed", None, detail))

    # the lock: writes that leave the serial alone, judged by the server's clock

    def acquire_lock(self, *, holder: str, operation: str, ttl: float) -> LockInfo:
        lock_id = str(uuid.uuid4())
        with self._session.write(bump=False, fenced=False) as held:
            assert held.row is not None
            _, _, _, generation, _, now, current_id, current_holder, current_operation, since, expires_at, live = (
                held.row
            )
            if current_id is not None and live:
                raise StateLockedError(
                    lock_id=current_id, holder=current_holder, operation=current_operation, since=since
                )
            expires = now + timedelta(seconds=ttl)
            generation += 1
            info = LockInfo(lock_id, holder, operation, held.at, schema.utc_text(expires), generation)
            held.run(
                "UPDATE {s}.workspaces SET lock_id = %s, lock_holder = %s, lock_operation = %s, "
                "lock_started_at = %s, lock_expires_at = %s, lock_expires = %s, lock_generation = %s "
                "WHERE workspace = %s",
                (lock_id, holder, operation, info.started_at, info.expires_at, expires, generation, self.workspace),
            )
            if current_id is not None:
                detail = {
                    "lock_id": current_id,
                    "holder": current_holder,
                    "operation": current_operation,
                    "expired_at": expires_at,
                }
                held.journal.append(None, Entries.one("lock_taken_over", None, detail))
        return info

    def renew_lock(self, *, lock_id: str, ttl: float) -> None:
        """Renews even a lapsed lock, as long as nobody has taken it since. One statement: no row lock waits
        behind another statement of ours."""
        with self._session.statement() as conn:
            s = self.location.schema
            renewed = conn.execute(
                f"WITH t AS (SELECT clock_timestamp() + %s * interval '1 second' AS until) "
                f"UPDATE {s}.workspaces SET lock_expires = t.until, lock_expires_at = to_char(t.until AT TIME ZONE "
                """'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') FROM t WHERE workspace = %s AND lock_id = %s RETURNING 1""",
                (ttl, self.workspace, lock_id),
            ).fetchone()
        if renewed is not None:
            return
        current = self.current_lock()
        if current is None:
            raise StateError(
                f"the lock {lock_id} is no longer this run's: another run took it over after it expired, or it was "
                "broken (`state unlock`)"
            )
        raise StateLockedError(
            lock_id=current.lock_id, holder=current.holder, operation=current.operation, since=current.started_at
        )

    def release_lock(self, *, lock_id: str) -> None:
        """Releasing a lock that is no longer ours does nothing: it is someone else's now."""
        with self._session.statement() as conn:
            conn.execute(
                f"UPDATE {self.location.schema}.workspaces SET lock_id = NULL, lock_holder = NULL, "
                "lock_operation = NULL, lock_started_at = NULL, lock_expires_at = NULL, lock_expires = NULL "
                "WHERE workspace = %s AND lock_id = %s",
                (self.workspace, lock_id),
            )

    def force_unlock(self, *, lock_id: str) -> None:
        with self._session.write(bump=False, fenced=False) as held:
            assert held.row is not None
            current_id, current_holder, current_operation, since = held.row[6:10]
            if current_id is None or current_id != lock_id:
                now_held = f"it is held by {current_holder} with lock id {current_id}"
                if current_id is None:
                    now_held = "the state is not locked"
                raise StateError(f"no lock with id {lock_id}: {now_held}")
            held.run(
                "UPDATE {s}.workspaces SET lock_id = NULL, lock_holder = NULL, lock_operation = NULL, "
                "lock_started_at = NULL, lock_expires_at = NULL, lock_expires = NULL, "
                "lock_generation = lock_generation + 1 WHERE workspace = %s",
                (self.workspace,),
            )
            detail = {"lock_id": current_id, "holder": current_holder, "operation": current_operation, "since": since}
            held.journal.append(None, Entries.one("lock_broken", None, detail))

    # copies (the work is in ``copies``)

    def copy_to(self, *, path: Path) -> StateMeta:
        """Write a consistent copy of the workspace's state to ``path``, a SQLite state file."""
        with self._session.read() as place:
            return copies.copy_to(place, path, shown=str(self))

    def restore_from(self, *, path: Path, force: bool) -> tuple[StateMeta, int, StateMeta]:
        """Replace the whole state by the SQLite state file at ``path``; see ``copies.restore_from``."""
        with copies.SourceFile(path) as source, self._session.write(bump=False) as held:
            before, count = copies.restore_from(held.place, source, force=force)
            serial = max(source.meta.serial, before.serial) + 1
            held.run(
                "UPDATE {s}.workspaces SET serial = %s, next_intent = %s, next_journal = %s WHERE workspace = %s",
                (serial, source.next_intent, source.next_journal, self.workspace),
            )
            detail = {
                "lineage": source.meta.lineage,
                "serial": source.meta.serial,
                "replaced_lineage": before.lineage,
                "replaced_serial": before.serial,
            }
            held.journal.append(None, Entries.one("pushed", None, detail))
            self._members.clear()
        return before, count, StateMeta(lineage=source.meta.lineage, serial=serial)

    def close(self) -> None:
        session = getattr(self, "_session", None)
        if session is not None:
            session.close()

    # plumbing

    def _remember(self, operation_id: str, member: dict[str, int]) -> None:
        with self._session.mutex:
            self._members[operation_id] = member
            while len(self._members) > _MEMBERS_KEPT:
                self._members.popitem(last=False)

    def _members_of(self, operation_id: str) -> dict[str, int]:
        """Each address of the intent by its member index; raises StateError for an unknown operation id."""
        with self._session.mutex:
            known = self._members.get(operation_id)
        if known is not None:
            return known
        with self._session.read() as place:
            found = place.one(
                "SELECT heads FROM {s}.intents WHERE workspace = %s AND operation_id = %s", (operation_id,)
            )
        if found is None:
            raise StateError(f"no intent with operation id {operation_id} is recorded")
        member = {} if found[0] is None else {head[0]: i for i, head in enumerate(orjson.loads(found[0]))}
        self._remember(operation_id, member)
        return member

    def _check_outcomes_covered(self, operation_id: str, outcomes: Sequence[Outcome]) -> None:
        """Outcomes are for the intent's addresses only; an intent without members (see ``schema``) covers its
        addresses, whose outcomes reach the journal only."""
        with self._session.read() as place:
            found = place.one(
                "SELECT addresses FROM {s}.intents WHERE workspace = %s AND operation_id = %s", (operation_id,)
            )
        check_outcomes_covered(operation_id, outcomes, () if found is None else orjson.loads(found[0]))
