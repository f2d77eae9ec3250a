"""Reading a workspace's rows as the store promises them: member rows filled in, open intents laid over.

The same two steps as SQLite's ``overlay`` (whose docstring says why rows are not yet what a reader sees), on
this backend's tables: ``Members`` fetches an intent's members once per read, and ``Overlay`` lays the open
intents over the rows they are newer than, which here is one comparison, since every row names the ``seq`` of
the intent that wrote it (``written_by``).

Every function takes a ``Place`` (a cursor in a transaction, the schema and the workspace); nothing here
writes.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import psycopg

from reconciler.state.base import Intent, ResourceRecord, ResourceSummary, Status

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
_STATUS = {s.value: s for s in Status}

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
        address, kind, provider, spec_hash, status, remote_id, op, attempt, member, _ = row
        if member is not None:
            _, kind, provider, spec_hash, attempt, _ = self.heads(op)[member]
        return (address, kind, provider, spec_hash, status, remote_id, op, attempt)

    def record(self, row: tuple[Any, ...]) -> ResourceRecord:
        """A row of ``_RECORD_COLUMNS`` as a record."""
        if row[14] is None:
            return _record(row)
        heads, specs = self.of(row[7])
        assert specs is not None
        i = row[14]
        _, kind, provider, spec_hash, attempt, _ = heads[i]
        return _record((row[0], kind, provider, None, spec_hash, *row[5:8], attempt, *row[9:]), spec=specs[i])


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
            decoded = orjson.loads(heads)
            member_specs = [None] * len(decoded) if specs_text is None else orjson.loads(specs_text)
            for head, spec in zip(decoded, member_specs, strict=True):
                if want is None or head[0] in want:
                    self.pending[head[0]] = (seq, op, at, [*head, spec])

    def unseen(self) -> list[str]:
        return [address for address in self.pending if address not in self._seen]

    def overrides(self, address: str, written_by: int | None) -> bool:
        """Whether the open intent covering ``address`` is newer than its row (None: imported)."""
        self._seen.add(address)
        return written_by is None or written_by < self.pending[address][0]

    def summary_of(self, address: str) -> tuple[Any, ...]:
        _, op, _, (_, kind, provider, spec_hash, attempt, _, _) = self.pending[address]
        return (address, kind, provider, spec_hash, Status.PENDING.value, None, op, attempt)

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
            yield from _summaries(resolved)
    yield from _summaries([overlay.summary_of(address) for address in overlay.unseen()])


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
    op = overlay.pending[address][1]
    return (
        f"{address} is pending: an interrupted apply (operation {op}) may have created it. Run `reconciler apply` "
        f"to find out, or `reconciler state import {address} REMOTE_ID ...` if you know the remote object, before "
        f"you {what}"
    )


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


def _summaries(rows: list[tuple[Any, ...]]) -> Iterator[ResourceSummary]:
    status = _STATUS
    try:
        for a, k, p, h, s, r, o, n in rows:
            yield ResourceSummary(a, k, p, h, status[s], r, o, n)
    except KeyError:
        raise ValueError(f"resource {a} has the unknown status {s!r}") from None


def _record(row: tuple[Any, ...], *, spec: dict[str, Any] | None = None) -> ResourceRecord:
    address, kind, provider, spec_text, spec_hash, status, remote_id, operation_id, attempt, *rest = row
    error, created_at, updated_at, remote, refreshed_at, _, _ = rest
    if status not in _STATUS:
        raise ValueError(f"resource {address} has the unknown status {status!r}")
    try:
        decoded_spec = orjson.loads(spec_text) if spec is None else spec
        decoded_remote = None if remote is None else orjson.loads(remote)
    except orjson.JSONDecodeError as e:
        raise ValueError(f"resource {address}: its spec or remote view is not JSON ({e})") from e
    return ResourceRecord(
        address=address,
        kind=kind,
        provider=provider,
        spec=decoded_spec,
        spec_hash=spec_hash,
        status=_STATUS[status],
        remote_id=remote_id,
        operation_id=operation_id,
        attempt=attempt,
        error=error,
        created_at=created_at,
        updated_at=updated_at,
        remote=decoded_remote,
        refreshed_at=refreshed_at,
    )
