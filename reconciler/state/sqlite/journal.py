"""The journal's row forms: appending entries compactly, and expanding rows back into entries.

The journal is a sequence of entries (``JournalEntry``: seq, time, event, address, operation id, detail),
append-only. One write may add thousands of entries: recording an intent over 5,000 addresses adds an
``intent`` entry per address, and its outcomes a ``created`` entry per address. Written one row per entry,
those inserts cost more than everything else the write does, so a row may hold ``entries`` consecutive
entries, numbered from its ``seq`` (the next row starts at ``seq + entries``). Its ``event`` says how:

- any event but the three below, ``entries`` 1: the row is the entry; ``detail`` is its detail.
- ``batch`` (of entries): several entries of one write, side by side:
  ``{"events": [...], "addresses": [...], "details": [...]}``.
- ``created``: the outcomes of one intent, every one a plain creation (a remote id, no error, no remote view):
  ``{"addresses": [...], "remote_ids": [...], "resolved": true|false}``. Each address is a ``created`` entry
  ``{"remote_id": ID}`` (``{}`` for a null id), followed by a ``resolved`` entry ``{}`` when ``resolved``.
- ``members``: ``detail`` is ``{}``; the entries are those of recording the intent ``operation_id``, which its
  ``intent_members`` heads already say in full: an ``intent`` entry ``{"spec_hash": H, "attempt": N}`` per
  member, in member order, then a ``replaced`` entry ``{"remote_id": ID}`` per member that replaces an object.

A row of one entry is always the plain form. Every entry of a compact row has the row's time and operation
id. ``read_history`` expands rows, so no reader ever sees these forms.

A detail may quote what a server said (an outcome's error), and a server may echo the credentials it was sent:
``append`` passes every detail through ``reconciler.redaction`` on its way into the state. The two compact
forms above are written without it: they hold addresses, hashes and remote ids only.
"""

from __future__ import annotations

import dataclasses
import sqlite3
from collections.abc import Callable, Sequence
from typing import Any

import orjson

from reconciler.encoding import dumps_text
from reconciler.redaction import redact
from reconciler.state.base import JournalEntry, Outcome, Status

__all__ = [
    "Entries",
    "HeadsOf",
    "append",
    "append_intent",
    "append_outcomes",
    "creations_body",
    "latest_entries",
    "outcome_entries",
    "read_history",
]

SIDE_BY_SIDE = "batch"
CREATIONS = "created"
MEMBERS = "members"

#: The heads of an intent's members, by operation id (``members`` rows are expanded from them).
HeadsOf = Callable[[str], list[list[Any]]]

_APPEND = (
    "INSERT INTO journal (seq, at, event, address, operation_id, detail, entries) VALUES "
    "(coalesce((SELECT seq + entries FROM journal ORDER BY seq DESC LIMIT 1), 1), ?, ?, ?, ?, ?, ?)"
)
_COLUMNS = "seq, at, event, address, operation_id, detail, entries"

#: The rows that may hold entries of one address: its own, compact rows whose detail names it (as JSON text),
#: and ``members`` rows of intents that cover it.
_ROWS_OF_ADDRESS = f"""
SELECT {_COLUMNS} FROM journal
WHERE address = ?1 OR (entries > 1 AND instr(detail, ?2) > 0)
    OR (event = '{MEMBERS}' AND operation_id IN (SELECT operation_id FROM intents WHERE instr(addresses, ?2) > 0))
ORDER BY seq DESC
"""


@dataclasses.dataclass
class Entries:
    """Journal entries of one write, side by side (as the ``batch`` form stores them)."""

    events: list[str]
    addresses: list[str | None]
    details: list[dict[str, Any]]

    @classmethod
    def one(cls, event: str, address: str | None, detail: dict[str, Any]) -> Entries:
        return cls([event], [address], [detail])

    def add(self, event: str, address: str | None, detail: dict[str, Any]) -> None:
        self.events.append(event)
        self.addresses.append(address)
        self.details.append(detail)


def append(db: sqlite3.Connection, at: str, operation_id: str | None, entries: Entries) -> None:
    """Append entries as one row: a lone entry as itself, several side by side."""
    count = len(entries.events)
    if count == 1:
        detail = redact(dumps_text(entries.details[0]))
        db.execute(_APPEND, (at, entries.events[0], entries.addresses[0], operation_id, detail, 1))
    elif count:
        text = redact(
            dumps_text({"events": entries.events, "addresses": entries.addresses, "details": entries.details})
        )
        db.execute(_APPEND, (at, SIDE_BY_SIDE, None, operation_id, text, count))


def append_intent(db: sqlite3.Connection, at: str, operation_id: str, heads: Sequence[Sequence[Any]]) -> None:
    """The entries of recording an intent whose members are ``heads``: a ``members`` row, unless there is one
    entry only (nothing at all for an intent over no address)."""
    count = len(heads) + sum(1 for head in heads if head[5])
    if count == 1:
        append(db, at, operation_id, intent_entries(heads))
    elif count:
        db.execute(_APPEND, (at, MEMBERS, None, operation_id, "{}", count))


def append_outcomes(
    db: sqlite3.Connection, at: str, operation_id: str, outcomes: Sequence[Outcome], *, resolved: bool
) -> None:
    """An intent's outcomes (then its ``resolved``); several plain creations as addresses and remote ids."""
    body = creations_body(outcomes, resolved=resolved)
    if body is not None:
        db.execute(_APPEND, (at, CREATIONS, None, operation_id, body, len(outcomes) + resolved))
        return
    append(db, at, operation_id, outcome_entries(outcomes, resolved=resolved))


def creations_body(outcomes: Sequence[Outcome], *, resolved: bool) -> str | None:
    """The detail of the one ``CREATIONS`` row that stands for ``outcomes`` (then ``resolved``) if they are
    several plain creations (a remote id, no error, no remote view), else None."""
    created = Status.CREATED
    if len(outcomes) > 1 and all(o.status is created and o.error is None and o.remote is None for o in outcomes):
        addresses, remote_ids = [o.address for o in outcomes], [o.remote_id for o in outcomes]
        return dumps_text({"addresses": addresses, "remote_ids": remote_ids, "resolved": resolved})
    return None


def outcome_entries(outcomes: Sequence[Outcome], *, resolved: bool) -> Entries:
    """An entry per outcome, in the order given, then ``resolved`` if the intent resolves."""
    entries = Entries(
        [o.status for o in outcomes], [o.address for o in outcomes], [_outcome_detail(o) for o in outcomes]
    )
    if resolved:
        entries.add("resolved", None, {})
    return entries


def intent_entries(heads: Sequence[Sequence[Any]]) -> Entries:
    """The ``intent`` entry of each member, then a ``replaced`` entry for each member replacing an object."""
    entries = Entries(
        ["intent"] * len(heads),
        [head[0] for head in heads],
        [{"spec_hash": head[3], "attempt": head[4]} for head in heads],
    )
    for head in heads:
        if head[5]:
            entries.add("replaced", head[0], {"remote_id": head[5]})
    return entries


def read_history(db: sqlite3.Connection, *, address: str | None, limit: int, heads_of: HeadsOf) -> list[JournalEntry]:
    """The latest ``limit`` entries (of ``address`` only, if given), oldest first. Rows are read newest
    first, so a long journal is not read whole unless an address is asked for."""
    if address is None:
        cursor = db.execute(f"SELECT {_COLUMNS} FROM journal ORDER BY seq DESC")
    else:
        cursor = db.execute(_ROWS_OF_ADDRESS, (address, dumps_text(address)))
    return latest_entries(cursor.fetchmany, address=address, limit=limit, heads_of=heads_of)


def latest_entries(
    fetchmany: Callable[[int], Sequence[tuple[Any, ...]]], *, address: str | None, limit: int, heads_of: HeadsOf
) -> list[JournalEntry]:
    """The latest ``limit`` entries (of ``address`` only, if given), oldest first, from journal rows that
    ``fetchmany`` hands out newest first (an empty batch at the end); it stops fetching once it has enough."""
    newest_first: list[JournalEntry] = []
    while len(newest_first) < limit and (rows := fetchmany(64)):
        for row in rows:
            entries = expand(row, heads_of)
            if address is not None:
                entries = [e for e in entries if e.address == address]
            newest_first.extend(reversed(entries))
    return list(reversed(newest_first[:limit]))


def expand(row: tuple[Any, ...], heads_of: HeadsOf) -> list[JournalEntry]:
    """The entries one journal row holds, in order."""
    seq, at, event, address, operation_id, detail, count = row
    if count == 1:
        return [JournalEntry(seq, at, event, address, operation_id, orjson.loads(detail))]
    if event == MEMBERS:
        entries = intent_entries(heads_of(operation_id))
    elif event == CREATIONS:
        body = orjson.loads(detail)
        entries = Entries(
            [CREATIONS] * len(body["addresses"]),
            body["addresses"],
            [{} if remote_id is None else {"remote_id": remote_id} for remote_id in body["remote_ids"]],
        )
        if body["resolved"]:
            entries.add("resolved", None, {})
    else:
        body = orjson.loads(detail)
        entries = Entries(body["events"], body["addresses"], body["details"])
    return [
        JournalEntry(seq + i, at, e, a, operation_id, d)
        for i, (e, a, d) in enumerate(zip(entries.events, entries.addresses, entries.details, strict=True))
    ]


def _outcome_detail(outcome: Outcome) -> dict[str, Any]:
    if outcome.error is None:
        return {} if outcome.remote_id is None else {"remote_id": outcome.remote_id}
    return {k: v for k, v in (("remote_id", outcome.remote_id), ("error", outcome.error)) if v is not None}
