"""Copies of a PostgreSQL workspace as SQLite state files: ``state pull`` writes one, ``state push`` reads one.

A copy is an ordinary SQLite state file of the current format (``reconciler.state.sqlite.schema``), so it opens
with ``--state FILE`` like any other and moves between backends. Both backends keep the same rows (resources with
member rows, intents with their members, the journal's compact rows), so a copy moves rows as they are: the
only column that differs is ``written_by`` (PostgreSQL's link from a row to the intent that wrote it), which
is left out of the file and rebuilt from the operation ids when one is read back.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from reconciler.errors import StateError
from reconciler.state.base import StateMeta
from reconciler.state.copy_file import copy_in_place
from reconciler.state.postgres.rows import Place
from reconciler.state.sqlite.schema import immediate, open_state_file

__all__ = ["SourceFile", "copy_to", "restore_from"]

#: The columns both backends' ``resources`` share, in the order of SQLite's table.
_RESOURCE_COLUMNS = (
    "address, kind, provider, spec_hash, status, remote_id, operation_id, attempt, error, created_at, updated_at, "
    "refreshed_at, member, spec, remote"
)
_INTENT_COLUMNS = (
    "seq, operation_id, provider, action, fingerprint, created_at, resolved, resolved_at, addresses, detail"
)
_JOURNAL_COLUMNS = "seq, at, event, address, operation_id, detail, entries"
_CHUNK = 5_000


def copy_to(place: Place, path: Path, *, shown: str) -> StateMeta:
    """Write the workspace as ``place``'s snapshot sees it to the SQLite state file ``path`` (made complete under a
    temporary name, then moved into place)."""
    row = place.one(
        "SELECT lineage, serial, created_at, lock_generation, lock_id, lock_holder, lock_operation, lock_started_at, "
        "lock_expires_at, extract(epoch FROM lock_expires) FROM {s}.workspaces WHERE workspace = %s"
    )
    if row is None:
        raise StateError(f"the state {shown} is gone: its workspace row was removed")
    lineage, serial, created_at, generation, *lock = row
    with copy_in_place(path) as temporary:
        copy = open_state_file(temporary, lineage=lineage)
        try:
            with immediate(copy):
                copy.execute("UPDATE meta SET value = ? WHERE key = 'serial'", (serial,))
                copy.execute("UPDATE meta SET value = ? WHERE key = 'created_at'", (created_at,))
                copy.execute("INSERT INTO meta (key, value) VALUES ('lock_generation', ?)", (generation,))
                if lock[0] is not None:
                    copy.execute("INSERT INTO lock VALUES (1, ?, ?, ?, ?, ?, ?)", (*lock[:5], float(lock[5])))
                _copy_rows(place, copy)
            copy.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            copy.execute("PRAGMA journal_mode = DELETE")
        finally:
            copy.close()
    return StateMeta(lineage=lineage, serial=serial)


def _copy_rows(place: Place, copy: sqlite3.Connection) -> None:
    streams = (
        (f"SELECT {_RESOURCE_COLUMNS} FROM {{s}}.resources WHERE workspace = %s", "resources", _RESOURCE_COLUMNS),
        (
            f"SELECT {_INTENT_COLUMNS} FROM {{s}}.intents WHERE workspace = %s ORDER BY seq",
            "intents",
            _INTENT_COLUMNS,
        ),
        (
            "SELECT operation_id, heads, specs FROM {s}.intents WHERE workspace = %s AND heads IS NOT NULL",
            "intent_members",
            "operation_id, heads, specs",
        ),
        (
            f"SELECT {_JOURNAL_COLUMNS} FROM {{s}}.journal WHERE workspace = %s ORDER BY seq",
            "journal",
            _JOURNAL_COLUMNS,
        ),
    )
    for query, table, columns in streams:
        insert = f"INSERT INTO {table} ({columns}) VALUES ({', '.join('?' * len(columns.split(',')))})"
        with place.cur.connection.cursor(name=f"reconciler_copy_{table}") as stream:
            stream.execute(query.format(s=place.schema), (place.workspace,))
            while rows := stream.fetchmany(_CHUNK):
                copy.executemany(insert, rows)


class SourceFile:
    """A SQLite state file to restore from, checked as any state is when opened (an older format is upgraded in
    a copy in memory, the file untouched)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.conn = open_state_file(path, read_only=True)
        try:
            values = dict(self.conn.execute("SELECT key, value FROM meta").fetchall())
            self.meta = StateMeta(lineage=values["lineage"], serial=values["serial"])
            self.created_at = str(values.get("created_at") or "")
            (last_intent,) = self.conn.execute("SELECT coalesce(max(seq), 0) FROM intents").fetchone()
            (last_entry,) = self.conn.execute(
                "SELECT coalesce((SELECT seq + entries FROM journal ORDER BY seq DESC LIMIT 1), 1)"
            ).fetchone()
        except (sqlite3.Error, KeyError) as e:
            self.conn.close()
            raise StateError(f"cannot read the state file {path}: {e}") from e
        self.next_intent = int(last_intent) + 1
        self.next_journal = int(last_entry)

    def __enter__(self) -> SourceFile:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.conn.close()

    def rows(self, sql: str) -> Iterator[tuple[Any, ...]]:
        cursor = self.conn.execute(sql)
        while chunk := cursor.fetchmany(_CHUNK):
            yield from chunk


def restore_from(place: Place, source: SourceFile, *, force: bool) -> tuple[StateMeta, int]:
    """Replace the workspace's rows by the file's, in the caller's transaction (which holds the workspace row);
    returns the state replaced (meta, resource count). The lock and its generation stay as they are (the caller
    holds the lock); the caller sets the serial past both states' and journals ``pushed``."""
    row = place.one(
        "SELECT lineage, serial, (SELECT count(*) FROM {s}.resources WHERE workspace = %s), "
        "(SELECT count(*) FROM {s}.intents WHERE workspace = %s) FROM {s}.workspaces WHERE workspace = %s",
        (place.workspace, place.workspace),
    )
    assert row is not None
    current = StateMeta(lineage=row[0], serial=row[1])
    count, intents = row[2], row[3]
    if not force:
        _check_push(source.path, source.meta, current, count, empty=current.serial == 0 and not count and not intents)
    cur, s, ws = place.cur, place.schema, place.workspace
    cur.execute("SELECT set_config('reconciler.replacing', %s, true)", (ws,))
    for table in ("journal", "resources", "intents"):
        cur.execute(f"DELETE FROM {s}.{table} WHERE workspace = %s", (ws,))
    written_by = {op: seq for seq, op in source.rows("SELECT seq, operation_id FROM intents")}
    with cur.copy(f"COPY {s}.intents (workspace, {_INTENT_COLUMNS}, heads, specs) FROM STDIN") as copy:
        for intent in source.rows(
            f"SELECT {_INTENT_COLUMNS}, heads, specs FROM intents LEFT JOIN intent_members USING (operation_id)"
        ):
            copy.write_row((ws, *intent[:6], bool(intent[6]), *intent[7:]))
    with cur.copy(f"COPY {s}.resources (workspace, {_RESOURCE_COLUMNS}, written_by) FROM STDIN") as copy:
        for resource in source.rows(f"SELECT {_RESOURCE_COLUMNS} FROM resources"):
            copy.write_row((ws, *resource, written_by.get(resource[6])))
    with cur.copy(f"COPY {s}.journal (workspace, {_JOURNAL_COLUMNS}) FROM STDIN") as copy:
        for entry in source.rows(f"SELECT {_JOURNAL_COLUMNS} FROM journal"):
            copy.write_row((ws, *entry))
    cur.execute(
        f"UPDATE {s}.workspaces SET lineage = %s, created_at = coalesce(nullif(%s, ''), created_at) "
        "WHERE workspace = %s",
        (source.meta.lineage, source.created_at, ws),
    )
    return current, count


def _check_push(path: Path, pushed: StateMeta, current: StateMeta, count: int, *, empty: bool) -> None:
    if empty:
        return
    if pushed.lineage != current.lineage:
        raise StateError(
            f"{path} is another state (lineage {pushed.lineage}) than this one (lineage {current.lineage}, serial "
            f"{current.serial}, {count} resource(s)); pushing it would lose everything this state records. Pass "
            "--force to replace it anyway"
        )
    if pushed.serial < current.serial:
        raise StateError(
            f"{path} is older than this state (serial {pushed.serial}, and this state is at serial "
            f"{current.serial}); pushing it would forget what was recorded since. Pass --force to go back anyway"
        )
