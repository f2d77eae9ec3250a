"""Reading a workspace's rows as the store promises them: member rows filled in, open intents laid over.

The same two steps as SQLite's ``overlay`` (whose docstring says why rows are not yet what a reader sees), on
this backend's tables: ``Members`` fetches an intent's members once per read, and ``Overlay`` lays the open
intents over the rows they are newer than, which here is one comparison, since every row names the ``seq`` of
the intent that wrote it (``written_by``).

Every function takes a ``Place`` (a cursor in a transaction, the schema and the workspace); nothing here
writes. What a fetched row's fields decode to is ``reconciler.state.rows``'s, shared with SQLite.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import psycopg

from reconciler.state import rows as row_forms
from reconciler.state.base import Intent, ResourceRecord, ResourceSummary

__all__ = [
    "INTENT_COLUMNS",
    "Members",
    "Overlay",
    "Place",
    "intent_of_row",
    "read_records",
    "read_summaries",
    "refuse_pending",
    "stored_summary",
]

FETCH_CHUNK = 10_000
IN_CHUNK = 5_000

#: A summary's columns, then ``member`` and ``written_by``.
SUMMARY_COLUMNS = "address, kind, provider, spec_hash, status, remote_id, operation_id, attempt, member, written_by"
_RECORD_COLUMNS = (
    "address, kind, provider, spec, spec_hash, status, remote_id, operation_id, attempt, error, "
    "created_at, updated_at, remote, refreshed_at, member, written_by"
)
INTENT_COLUMNS = "operation_id, provider, action, addresses, fingerprint, detail, created_at, resolved"


@dataclass(frozen=True)
class Place:
    """Where a read happens: a cursor (inside a transaction), the schema, the workspace."""

    cur: psycopg.Cursor[Any]
    schema: str
    workspace: str

    def all(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """``{s}`` in ``sql`` is the schema; the workspace is its first parameter."""
        return self.cur.execute(sql.format(s=self.schema), (self.workspace, *params)).fetchall()

    def one(self, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        return self.cur.execute(sql.format(s=self.schema), (self.workspace, *params)).fetchone()


class Members:
    """What each intent says its addresses will be (heads, and specs unless left unread), fetched once per read."""

    def __init__(self, place: Place, *, specs: bool) -> None:
        self.place = place
        self.specs = specs
        self._read: dict[str, tuple[list[list[Any]], list[Any] | None]] = {}

    def of(self, operation_id: str) -> tuple[list[list[Any]], list[Any] | None]:
        found = self._read.get(operation_id)
        if found is None:
            columns = "heads, specs" if self.specs else "heads, NULL"
            row = self.place.one(
                f"SELECT {columns} FROM {{s}}.intents WHERE workspace = %s AND operation_id = %s", (operation_id,)
            )
            if row is None or row[0] is None:
                raise ValueError(f"intent {operation_id} has rows but no members")
            try:
                found = (orjson.loads(row[0]), None if row[1] is None else orjson.loads(row[1]))
            except orjson.JSONDecodeError as e:
                raise ValueError(f"the members of intent {operation_id} are not JSON ({e})") from e
            self._read[operation_id] = found
        return found

    def heads(self, operation_id: str) -> list[list[Any]]:
        return self.of(operation_id)[0]

    def summary(self, row: tuple[Any, ...]) -> tuple[Any, ...]:
        """A row of ``SUMMARY_COLUMNS`` as a summary tuple (kind, provider, hash, attempt from its member)."""
        if row[8] is None:
            return row[:8]
        return row_forms.member_summary(row, self.heads(row[6])[row[8]])

    def record(self, row: tuple[Any, ...]) -> ResourceRecord:
        """A row of ``_RECORD_COLUMNS`` as a record."""
        if row[14] is None:
            return row_forms.record_of_row(row)
        heads, specs = self.of(row[7])
        assert specs is not None
        return row_forms.member_record(row, heads[row[14]], specs[row[14]])


class Overlay:
    """The addresses open intents are creating (see SQLite's ``overlay.Overlay``), limited to ``wanted`` if
    given; each maps to (intent seq, operation id, intent time, member head + spec)."""

    def __init__(self, place: Place, wanted: Sequence[str] | None, *, specs: bool = True) -> None:
        self.pending: dict[str, tuple[int, str, str, list[Any]]] = {}
        self._seen: set[str] = set()
        want = None if wanted is None else set(wanted)
        opened = place.all(
            "SELECT seq, operation_id, created_at, addresses FROM {s}.intents WHERE workspace = %s AND NOT resolved "
            "ORDER BY seq"
        )
        relevant = [row for row in opened if want is None or not want.isdisjoint(orjson.loads(row[3]))]
        if not relevant:
            return
        columns = "seq, heads, specs" if specs else "seq, heads, NULL"
        members = {
            seq: (heads, specs_text)
            for seq, heads, specs_text in place.all(
                f"SELECT {columns} FROM {{s}}.intents WHERE workspace = %s AND seq = ANY(%s)",
                ([row[0] for row in relevant],),
            )
        }
        for seq, op, at, _ in relevant:
            heads, specs_text = members[seq]
            if heads is None:
                raise ValueError(f"the open intent {op} has no members")
            for member in row_forms.open_members(heads, specs_text, want):
                self.pending[member[0]] = (seq, op, at, member)

    def unseen(self) -> list[str]:
        return [address for address in self.pending if address not in self._seen]

    def overrides(self, address: str, written_by: int | None) -> bool:
        """Whether the open intent covering ``address`` is newer than its row (None: imported)."""
        self._seen.add(address)
        return written_by is None or written_by < self.pending[address][0]

    def summary_of(self, address: str) -> tuple[Any, ...]:
        _, op, _, member = self.pending[address]
        return row_forms.pending_summary(address, op, member)

    def record_of(self, address: str, created_at: str | None) -> ResourceRecord:
        _, op, at, member = self.pending[address]
        return row_forms.pending_record(address, op, at, member, created_at)


def read_summaries(place: Place, conn: psycopg.Connection[Any]) -> Iterator[ResourceSummary]:
    """Every resource: rows as a server-side cursor yields them, then the addresses only open intents know."""
    overlay = Overlay(place, None, specs=False)
    members = Members(place, specs=False)
    pending = overlay.pending
    with conn.cursor(name="reconciler_summaries") as stream:
        stream.itersize = FETCH_CHUNK
        stream.execute(
            f"SELECT {SUMMARY_COLUMNS} FROM {place.schema}.resources WHERE workspace = %s", (place.workspace,)
        )
        while rows := stream.fetchmany(FETCH_CHUNK):
            resolved = []
            for row in rows:
                if pending and row[0] in pending and overlay.overrides(row[0], row[9]):
                    resolved.append(overlay.summary_of(row[0]))
                elif row[8] is None:
                    resolved.append(row[:8])
                else:
                    resolved.append(members.summary(row))
            yield from row_forms.summaries(resolved)
    yield from row_forms.summaries([overlay.summary_of(address) for address in overlay.unseen()])


def read_records(place: Place, addresses: Iterable[str]) -> dict[str, ResourceRecord]:
    wanted = list(dict.fromkeys(addresses))
    found: dict[str, ResourceRecord] = {}
    overlay = Overlay(place, wanted)
    members = Members(place, specs=True)
    sql = f"SELECT {_RECORD_COLUMNS} FROM {{s}}.resources WHERE workspace = %s AND address = ANY(%s)"
    for start in range(0, len(wanted), IN_CHUNK):
        for row in place.all(sql, (wanted[start : start + IN_CHUNK],)):
            address = row[0]
            if address in overlay.pending and overlay.overrides(address, row[15]):
                found[address] = overlay.record_of(address, row[10])
            else:
                found[address] = members.record(row)
    found.update((address, overlay.record_of(address, None)) for address in overlay.unseen())
    return found


def stored_summary(place: Place, address: str) -> tuple[Any, ...] | None:
    """The summary tuple of an address's row as stored (no intent laid over), or None without a row."""
    row = place.one(f"SELECT {SUMMARY_COLUMNS} FROM {{s}}.resources WHERE workspace = %s AND address = %s", (address,))
    return None if row is None else Members(place, specs=False).summary(row)


def refuse_pending(place: Place, address: str, what: str) -> str | None:
    """A message refusing ``what`` if an open intent is creating ``address`` (it may exist remotely already)."""
    overlay = Overlay(place, [address], specs=False)
    if address not in overlay.pending:
        return None
    row = place.one("SELECT written_by FROM {s}.resources WHERE workspace = %s AND address = %s", (address,))
    if row is not None and not overlay.overrides(address, row[0]):
        return None
    return row_forms.pending_refusal(address, overlay.pending[address][1], what)


def intent_of_row(row: tuple[Any, ...]) -> Intent:
    """A row of ``INTENT_COLUMNS`` as an intent."""
    operation_id, provider, action, addresses, fingerprint, detail, created_at, resolved = row
    covered, decoded = orjson.loads(addresses), orjson.loads(detail)
    if not isinstance(covered, list) or not all(isinstance(a, str) for a in covered) or not isinstance(decoded, dict):
        raise ValueError(f"intent {operation_id}: its addresses or detail are not as the format says")
    return Intent(
        operation_id=operation_id,
        provider=provider,
        action=action,
        addresses=tuple(covered),
        fingerprint=fingerprint,
        detail=decoded,
        created_at=created_at,
        resolved=bool(resolved),
    )
