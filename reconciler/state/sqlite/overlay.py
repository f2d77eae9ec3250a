"""Reading resources as the store promises them: rows filled in from their intents, open intents laid over.

A ``resources`` row is not yet what a reader sees, for two reasons:

- A member row leaves kind, provider, spec hash, attempt and spec to the members of the intent that wrote
  it (``Resolver`` fills them in).
- An address an open intent covers is ``pending`` (with that intent's operation id and what its member says
  the address will be) unless its row was written by that intent or a newer one. Recording an intent writes
  no resource row at all, so an address only an open intent knows has no row (``Overlay`` lays the open
  intents over the rows, and adds the addresses no row was seen for).

Both decode each intent's members at most once per read. Open intents are few (one per call in flight, and
those a crash left), so the overlay is read whole up front. What a fetched row's fields decode to is
``reconciler.state.rows``'s, shared with PostgreSQL.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import orjson

from reconciler.errors import StateError
from reconciler.state import rows as row_forms
from reconciler.state.base import Intent, ResourceRecord, ResourceSummary

__all__ = [
    "INTENT_COLUMNS",
    "Members",
    "Overlay",
    "Resolver",
    "intent_of_row",
    "read_records",
    "read_summaries",
    "refuse_pending",
    "stored_summary",
]

IN_CHUNK = 500
FETCH_CHUNK = 5000

_SUMMARY_FIELDS = ("address", "kind", "provider", "spec_hash", "status", "remote_id", "operation_id", "attempt")

#: A summary's columns, then ``member``.
SUMMARY_COLUMNS = ", ".join(_SUMMARY_FIELDS) + ", member"
#: The same, with ``status`` read as NULL (which no row can hold) where another column holds a value of the
#: wrong type: SQLite checks every row's types as it reads it, at no cost to Python, and ``summaries``
#: reports such a row as damaged instead of handing out an address that is not text.
_SOUND_STATUS = (
    "CASE WHEN typeof(address) = 'text' AND typeof(remote_id) IN ('text', 'null') "
    "AND typeof(operation_id) IN ('text', 'null') AND (typeof(member) = 'integer' OR (member IS NULL "
    "AND typeof(kind) = 'text' AND typeof(provider) = 'text' AND typeof(spec_hash) = 'text' "
    "AND typeof(attempt) = 'integer')) THEN status END"
)
_SOUND_SUMMARY_COLUMNS = ", ".join(_SOUND_STATUS if f == "status" else f for f in _SUMMARY_FIELDS) + ", member"
_RECORD_COLUMNS = (
    "address, kind, provider, spec, spec_hash, status, remote_id, operation_id, attempt, error, "
    "created_at, updated_at, remote, refreshed_at, member"
)
INTENT_COLUMNS = "operation_id, provider, action, addresses, fingerprint, detail, created_at, resolved"


class Members:
    """What an intent says each of its addresses will be: heads (address, kind, provider, spec hash, attempt,
    replaced id) and, unless left unread, specs, in the intent's address order."""

    def __init__(self, heads: list[list[Any]], specs: list[dict[str, Any]] | None) -> None:
        self.heads = heads
        self.specs = specs

    @classmethod
    def read(cls, db: sqlite3.Connection, operation_id: str, *, specs: bool) -> Members | None:
        columns = "heads, specs" if specs else "heads, NULL"
        row = db.execute(f"SELECT {columns} FROM intent_members WHERE operation_id = ?", (operation_id,)).fetchone()
        if row is None:
            return None
        try:
            heads, member_specs = orjson.loads(row[0]), None if row[1] is None else orjson.loads(row[1])
        except orjson.JSONDecodeError as e:
            raise ValueError(f"the members of intent {operation_id} are not JSON ({e})") from e
        if type(heads) is not list or (specs and (type(member_specs) is not list or len(member_specs) != len(heads))):
            raise ValueError(f"the members of intent {operation_id} are not lists of one entry per address")
        return cls(heads, member_specs)


class Resolver:
    """Fills in what a member row leaves to its intent's members, decoding each intent once per read."""

    def __init__(self, db: sqlite3.Connection, *, specs: bool) -> None:
        self.db = db
        self.specs = specs
        self._read: dict[str, Members] = {}

    def members(self, operation_id: str) -> Members:
        found = self._read.get(operation_id)
        if found is None:
            found = Members.read(self.db, operation_id, specs=self.specs)
            if found is None:
                raise StateError(f"the state is damaged: intent {operation_id} has rows but no members")
            self._read[operation_id] = found
        return found

    def heads(self, operation_id: str) -> list[list[Any]]:
        return self.members(operation_id).heads

    def summaries(self, rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
        """Rows of ``SUMMARY_COLUMNS`` as summary tuples (``member`` dropped)."""
        return [row[:8] if row[8] is None else self._summary(row) for row in rows]

    def _summary(self, row: tuple[Any, ...]) -> tuple[Any, ...]:
        return row_forms.member_summary(row, self.members(row[6]).heads[row[8]])

    def record(self, row: tuple[Any, ...]) -> ResourceRecord:
        """A row of ``_RECORD_COLUMNS`` as a record."""
        if row[14] is None:
            return row_forms.record_of_row(row)
        op, i = row[7], row[14]
        members = self.members(op)
        if members.specs is None:
            raise ValueError(f"the members of intent {op} hold no specs")
        return row_forms.member_record(row, members.heads[i], members.specs[i])


class Overlay:
    """The addresses open intents are creating, laid over the rows they are newer than.

    ``wanted`` limits it to some addresses (None: all); an open intent none of them is in is not decoded
    beyond its address list. Each pending address maps to (intent seq, operation id, intent time, member);
    without ``specs`` a member's spec is None.
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
            for member in row_forms.open_members(heads, specs_text, want):
                self.pending[member[0]] = (seq, op, at, member)

    def unseen(self) -> list[str]:
        """Pending addresses no row was shown for: only open intents know them."""
        return [address for address in self.pending if address not in self._seen]

    def overrides(self, address: str, row_operation_id: str | None) -> bool:
        """Whether the open intent covering ``address`` is newer than its row (last written by
        ``row_operation_id``, None for an imported row)."""
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
        _, op, _, member = self.pending[address]
        return row_forms.pending_summary(address, op, member)

    def record(self, row: tuple[Any, ...], otherwise: Callable[[tuple[Any, ...]], ResourceRecord]) -> ResourceRecord:
        address = row[0]
        if address in self.pending and self.overrides(address, row[7]):
            return self.record_of(address, row[10])
        return otherwise(row)

    def record_of(self, address: str, created_at: str | None) -> ResourceRecord:
        _, op, at, member = self.pending[address]
        return row_forms.pending_record(address, op, at, member, created_at)


def read_summaries(db: sqlite3.Connection) -> Iterator[ResourceSummary]:
    """Every resource: rows in insertion order, then the addresses only open intents know."""
    overlay = Overlay(db, None, specs=False)
    members = Resolver(db, specs=False)
    cursor = db.execute(f"SELECT {_SOUND_SUMMARY_COLUMNS} FROM resources")
    while rows := cursor.fetchmany(FETCH_CHUNK):
        resolved = members.summaries(rows)
        if overlay.pending:
            yield from row_forms.summaries([overlay.summary(row) for row in resolved])
        else:
            yield from row_forms.summaries(resolved)
    yield from row_forms.summaries([overlay.summary_of(address) for address in overlay.unseen()])


def read_records(db: sqlite3.Connection, addresses: Iterable[str]) -> dict[str, ResourceRecord]:
    wanted = list(dict.fromkeys(addresses))
    found: dict[str, ResourceRecord] = {}
    overlay = Overlay(db, wanted)
    members = Resolver(db, specs=True)
    for start in range(0, len(wanted), IN_CHUNK):
        chunk = wanted[start : start + IN_CHUNK]
        sql = f"SELECT {_RECORD_COLUMNS} FROM resources WHERE address IN ({','.join('?' * len(chunk))})"
        rows = db.execute(sql, chunk).fetchall()
        found.update((row[0], overlay.record(row, members.record)) for row in rows)
    found.update((address, overlay.record_of(address, None)) for address in overlay.unseen())
    for record in found.values():
        _check_record(record)
    return found


#: What each field of a record read from the state must be; anything else is a damaged row.
_RECORD_TYPES: tuple[tuple[str, tuple[type, ...]], ...] = (
    ("address", (str,)),
    ("kind", (str,)),
    ("provider", (str,)),
    ("spec", (dict,)),
    ("spec_hash", (str,)),
    ("remote_id", (str, type(None))),
    ("operation_id", (str, type(None))),
    ("attempt", (int,)),
    ("error", (str, type(None))),
    ("created_at", (str,)),
    ("updated_at", (str,)),
    ("remote", (dict, type(None))),
    ("refreshed_at", (str, type(None))),
)


def _check_record(record: ResourceRecord) -> None:
    """Raise ValueError for a record with a field of the wrong type: the few records a command reads are
    checked whole, so a damaged row is reported as such, not met as a crash wherever the field is used."""
    for name, types in _RECORD_TYPES:
        value = getattr(record, name)
        if type(value) not in types:
            raise ValueError(f"the resource row {record.address!r} holds {type(value).__name__} as its {name}")


def stored_summary(db: sqlite3.Connection, address: str) -> tuple[Any, ...] | None:
    """The summary tuple of an address's row as stored (no intent laid over), or None without a row."""
    row = db.execute(f"SELECT {SUMMARY_COLUMNS} FROM resources WHERE address = ?", (address,)).fetchone()
    return None if row is None else Resolver(db, specs=False).summaries([row])[0]


def refuse_pending(db: sqlite3.Connection, address: str, what: str) -> None:
    """Raise StateError if an open intent is creating ``address``: it may exist remotely already."""
    overlay = Overlay(db, [address])
    if address not in overlay.pending:
        return
    row = db.execute("SELECT operation_id FROM resources WHERE address = ?", (address,)).fetchone()
    if row is None or overlay.overrides(address, row[0]):
        raise StateError(row_forms.pending_refusal(address, overlay.pending[address][1], what))


def intent_of_row(row: tuple[Any, ...]) -> Intent:
    """A row of ``INTENT_COLUMNS`` as an intent."""
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
