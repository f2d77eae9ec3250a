"""The journal on PostgreSQL: the very row forms of SQLite's journal (``reconciler.state.sqlite.journal``), so a
copy carries rows across unchanged and one ``expand`` reads both.

Entries are numbered per workspace from the workspace row's ``next_journal``, which every write holds locked:
numbers follow commit order with no gap, and a write that is rolled back gives its numbers back. The number and
the time are the server's (the row's counter, and the write's time as ``hold`` set it), so appending needs
nothing back from the server and goes out with the rest of its write.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from reconciler.encoding import dumps_text
from reconciler.redaction import redact
from reconciler.state.base import JournalEntry, Outcome
from reconciler.state.postgres.rows import Place
from reconciler.state.postgres.schema import AT
from reconciler.state.sqlite.journal import (
    CREATIONS,
    MEMBERS,
    SIDE_BY_SIDE,
    Entries,
    HeadsOf,
    creations_body,
    intent_entries,
    latest_entries,
    outcome_entries,
)

__all__ = ["Appender", "read_history"]

_INSERT = (
    "INSERT INTO {s}.journal (workspace, seq, entries, at, event, address, operation_id, detail) "
    f"SELECT workspace, next_journal + %s, %s, {AT}, %s, %s, %s, %s FROM {{s}}.workspaces WHERE workspace = %s"
)
_COLUMNS = "seq, at, event, address, operation_id, detail, entries"
_ROWS_OF_ADDRESS = f"""
SELECT {_COLUMNS} FROM {{s}}.journal
WHERE workspace = %s AND (address = %s OR (entries > 1 AND strpos(detail, %s) > 0)
    OR (event = '{MEMBERS}' AND operation_id IN (
        SELECT operation_id FROM {{s}}.intents WHERE workspace = %s AND strpos(addresses, %s) > 0)))
ORDER BY seq DESC
"""


class Appender:
    """Appends the journal rows of one write transaction; ``added`` entries so far, which the write adds to the
    workspace's ``next_journal`` when it ends."""

    def __init__(self, place: Place) -> None:
        self.place = place
        self.added = 0

    def row(self, event: str, address: str | None, operation_id: str | None, detail: str, entries: int) -> None:
        place = self.place
        place.cur.execute(
            _INSERT.format(s=place.schema),
            (self.added, entries, event, address, operation_id, detail, place.workspace),
        )
        self.added += entries

    def append(self, operation_id: str | None, entries: Entries) -> None:
        """Entries as one row: a lone entry as itself, several side by side; every detail redacted."""
        count = len(entries.events)
        if count == 1:
            self.row(entries.events[0], entries.addresses[0], operation_id, redact(dumps_text(entries.details[0])), 1)
        elif count:
            body = {"events": entries.events, "addresses": entries.addresses, "details": entries.details}
            self.row(SIDE_BY_SIDE, None, operation_id, redact(dumps_text(body)), count)

    def intent(self, operation_id: str, heads: Sequence[Sequence[Any]]) -> None:
        """Recording an intent: a ``members`` row standing for its entries, unless it makes one entry only."""
        count = len(heads) + sum(1 for head in heads if head[5])
        if count == 1:
            self.append(operation_id, intent_entries(heads))
        elif count:
            self.row(MEMBERS, None, operation_id, "{}", count)

    def outcomes(self, operation_id: str, outcomes: Sequence[Outcome], *, resolved: bool) -> None:
        body = creations_body(outcomes, resolved=resolved)
        if body is not None:
            self.row(CREATIONS, None, operation_id, body, len(outcomes) + resolved)
            return
        self.append(operation_id, outcome_entries(outcomes, resolved=resolved))


def read_history(place: Place, *, address: str | None, limit: int, heads_of: HeadsOf) -> list[JournalEntry]:
    """The latest ``limit`` entries (of ``address`` only, if given), oldest first, reading rows newest first."""
    cur = place.cur
    if address is None:
        sql = f"SELECT {_COLUMNS} FROM {place.schema}.journal WHERE workspace = %s ORDER BY seq DESC"
        params: tuple[Any, ...] = (place.workspace,)
    else:
        quoted = dumps_text(address)
        sql = _ROWS_OF_ADDRESS.format(s=place.schema)
        params = (place.workspace, address, quoted, place.workspace, quoted)
    with cur.connection.cursor(name="reconciler_history") as rows_cursor:
        rows_cursor.execute(sql, params)
        return latest_entries(rows_cursor.fetchmany, address=address, limit=limit, heads_of=heads_of)
