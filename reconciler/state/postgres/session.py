"""A store's session with the database: one connection under one mutex, and the shapes of its transactions.

``read`` is one ``REPEATABLE READ`` transaction (one snapshot). ``write`` is one ``READ COMMITTED`` transaction
that starts by holding the workspace's row (``schema``: ``hold``, which also checks the fence) and ends by
advancing the row's serial and counters; ``pipelined``, it sends ``BEGIN``, ``hold``, its statements and
``COMMIT`` together and reads their answers at the end, one round trip in all. ``statement`` is one statement
on its own (autocommit). Every driver error leaves as a StateError that names the state, never its password.

A connection that broke (the server restarted, or ended the session) fails the call it was in, and the next
call connects again.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext, suppress
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import IsolationLevel
from psycopg.pq import TransactionStatus

from reconciler.errors import LeaseLostError, StateError, UnknownAddressError
from reconciler.state.postgres import schema
from reconciler.state.postgres.journal import Appender
from reconciler.state.postgres.location import PostgresLocation
from reconciler.state.postgres.rows import Place
from reconciler.state.rows import damaged

__all__ = ["Held", "Session"]

_ADVANCE = (
    "UPDATE {s}.workspaces SET serial = serial + %s, next_intent = next_intent + %s, "
    "next_journal = next_journal + %s WHERE workspace = %s"
)


class _QuietAbandonedPipeline(logging.Filter):
    """psycopg logs a warning when a pipeline cannot be closed on a connection that broke; the StateError
    raised for that broken connection is the one line the user needs."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("error ignored terminating")


logging.getLogger("psycopg").addFilter(_QuietAbandonedPipeline())


@dataclass
class Held:
    """A write transaction in progress: where it writes, what ``hold`` said of the workspace row (``row``: the
    serial, counters, generation, time and lock, in ``hold``'s order), and what it adds to the row's counters."""

    place: Place
    journal: Appender
    row: tuple[Any, ...] | None = None
    bump: int = 0
    intents: int = 0

    @property
    def at(self) -> str:
        assert self.row is not None
        return str(self.row[4])

    def run(self, sql: str, params: Sequence[Any] | Mapping[str, Any]) -> psycopg.Cursor[Any]:
        return self.place.cur.execute(sql.format(s=self.place.schema), params)

    def advance(self) -> None:
        """Add what this write made to the workspace row's serial and counters (as part of the write)."""
        if self.bump or self.intents or self.journal.added:
            self.run(_ADVANCE, (self.bump, self.intents, self.journal.added, self.place.workspace))


class Session:
    """The connection of one store (``shown``: how messages name the state) and its transactions."""

    def __init__(self, location: PostgresLocation, workspace: str, *, read_only: bool, shown: str) -> None:
        self.location = location
        self.workspace = workspace
        self.read_only = read_only
        self.shown = shown
        self.fence: int | None = None
        self.mutex = threading.RLock()
        self._conn: psycopg.Connection[Any] | None = schema.connect(location, read_only=read_only)

    def close(self) -> None:
        with self.mutex:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def connection(self) -> psycopg.Connection[Any]:
        """The session, connected again if the last one broke (the server restarted, or ended it)."""
        conn = self._conn
        if conn is None or conn.closed or conn.broken:
            if conn is not None:
                conn.close()
            self._conn = conn = schema.connect(self.location, read_only=self.read_only)
        return conn

    def damaged(self, e: Exception) -> StateError:
        """A row that cannot be read as the format says: undecodable JSON, a member that is not there."""
        return damaged(self.shown, e)

    def error(self, e: psycopg.Error) -> StateError:
        text = self.location.hide(str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__)
        if isinstance(e, psycopg.errors.LockNotAvailable):
            return StateError(
                f"{self.shown}: the state stayed busy (another run held its row for 30s); is a process stuck?"
            )
        if isinstance(e, psycopg.OperationalError):
            return StateError(
                f"lost the connection to the PostgreSQL state {self.shown}: {text}; what was recorded before stays "
                "recorded, and `reconciler apply` run again resolves whatever was left open"
            )
        if isinstance(e, psycopg.errors.ReadOnlySqlTransaction):
            return StateError(f"{self.shown} was opened read-only; this command cannot change the state")
        return StateError(f"{self.shown}: {text}")

    def stream(self) -> psycopg.Connection[Any]:
        """A connection of its own, for a read its consumer may pause in (it holds no lock, only a snapshot)."""
        conn = schema.connect(self.location, read_only=True)
        try:
            conn.execute("SET idle_in_transaction_session_timeout = 0")
        except psycopg.Error as e:
            conn.close()
            raise self.error(e) from e
        conn.isolation_level = IsolationLevel.REPEATABLE_READ
        return conn

    @contextmanager
    def read(self) -> Iterator[Place]:
        """One ``REPEATABLE READ`` transaction: a read of several statements sees one snapshot."""
        with self.mutex:
            try:
                conn = self.connection()
                conn.isolation_level = IsolationLevel.REPEATABLE_READ
                with conn.transaction():
                    yield Place(conn.cursor(), self.location.schema, self.workspace)
            except psycopg.Error as e:
                raise self.error(e) from e
            except (ValueError, KeyError, IndexError, TypeError) as e:
                if isinstance(e, UnknownAddressError):
                    raise
                raise self.damaged(e) from e

    @contextmanager
    def statement(self) -> Iterator[psycopg.Connection[Any]]:
        """One statement in its own transaction (autocommit), for the lock's one-statement writes."""
        if self.read_only:
            raise StateError(f"{self.shown} was opened read-only; this command cannot change the state")
        with self.mutex:
            try:
                yield self.connection()
            except psycopg.Error as e:
                raise self.error(e) from e

    @contextmanager
    def write(self, *, bump: bool, fenced: bool = True, pipelined: bool = False) -> Iterator[Held]:
        """One ``READ COMMITTED`` transaction that first holds the workspace row (``schema``: ``hold``; with
        ``fenced``, the lock generation is checked there, see ``fence``), then advances its serial and counters.

        ``pipelined``: the block queues statements and reads nothing back (``held.row`` is None): ``BEGIN``,
        ``hold``, the block's statements and ``COMMIT`` are sent together, and their answers read at the end."""
        if self.read_only:
            raise StateError(f"{self.shown} was opened read-only; this command cannot change the state")
        fence = self.fence if fenced else None
        with self.mutex:
            conn = self.connection()
            try:
                with conn.pipeline() if pipelined else nullcontext():
                    cur = conn.cursor()
                    cur.execute("BEGIN ISOLATION LEVEL READ COMMITTED")
                    cur.execute(schema.HOLD.format(s=self.location.schema), (self.workspace, fence))
                    place = Place(cur, self.location.schema, self.workspace)
                    held = Held(place, Appender(place), None if pipelined else cur.fetchone(), bump=int(bump))
                    yield held
                    held.advance()
                    cur.execute("COMMIT")
            except psycopg.Error as e:
                self._abandon(conn)
                if e.sqlstate == schema.FENCED:
                    raise self._lease_lost(e.diag.message_detail or "?") from e
                if e.sqlstate == schema.NO_WORKSPACE:
                    raise StateError(f"the state {self.shown} is gone: its workspace row was removed") from e
                raise self.error(e) from e
            except BaseException:
                self._abandon(conn)
                raise

    def _abandon(self, conn: psycopg.Connection[Any]) -> None:
        """Roll back whatever a failed write left open; a connection that broke is connected again next time."""
        with suppress(psycopg.Error):
            if not conn.broken and conn.info.transaction_status != TransactionStatus.IDLE:
                conn.execute("ROLLBACK")

    def _lease_lost(self, current: object) -> LeaseLostError:
        return LeaseLostError(
            f"this run's hold on the lock of {self.shown} has ended (lock generation {self.fence}, the state is at "
            f"{current}: another run took the lock over, or it was broken); it records nothing more. Run "
            "`reconciler apply` again: it resolves whatever this run left open"
        )
