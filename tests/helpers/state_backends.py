"""Backends the state contract suite runs against.

Each backend is a factory of handles on one fresh state: ``open()`` gives another handle on the same state
(what a second process, or the same one after a restart, would see), and ``location`` is what ``--state``
would say, for tests that start real processes. A new backend is one more entry in ``BACKENDS``.

PostgreSQL is the server at ``postgresql://127.0.0.1:5432/test`` (trust authentication; user ``postgres``,
else the current user), or the one ``RECONCILER_TEST_POSTGRES`` names. Each test gets a schema of its own,
dropped afterwards. A machine without it skips those tests, saying why, unless ``RECONCILER_REQUIRE_POSTGRES=1``
(as in CI): then they fail.
"""

from __future__ import annotations

import functools
import getpass
import os
import sqlite3
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import pytest

from reconciler.state import SqliteStateStore, StateStore, open_store


class Backend(Protocol):
    name: str

    @property
    def location(self) -> str: ...

    def open(self) -> StateStore: ...

    def open_other(self, where: Path) -> StateStore:
        """A handle on another, new state of this backend (``where`` is a fresh folder it may use)."""

    def set_format_version(self, version: int) -> None:
        """Make the state look as if a newer reconciler wrote it."""

    def close(self) -> None: ...


class SqliteBackend:
    name = "sqlite"

    def __init__(self, tmp_path: Path) -> None:
        self.path = tmp_path / "state" / "default.db"
        self._opened: list[StateStore] = []

    @property
    def location(self) -> str:
        return str(self.path)

    def open(self) -> StateStore:
        store = SqliteStateStore(self.path)
        self._opened.append(store)
        return store

    def open_other(self, where: Path) -> StateStore:
        store = SqliteStateStore(where / "default.db")
        self._opened.append(store)
        return store

    def set_format_version(self, version: int) -> None:
        with sqlite3.connect(self.path) as db:
            db.execute("UPDATE meta SET value = ? WHERE key = 'format_version'", (version,))

    def close(self) -> None:
        for store in self._opened:
            store.close()


POSTGRES_SERVER = "postgresql://127.0.0.1:5432/test"


#: Why no server could be reached, for the skip (or failure) message.
_why: list[str] = []


@functools.cache
def postgres_server() -> str | None:
    """The URL of a reachable PostgreSQL server (without a schema), or None, with the reasons in ``_why``."""
    try:
        import psycopg
    except ImportError as e:
        _why.append(f"psycopg is not installed ({e})")
        return None
    given = os.environ.get("RECONCILER_TEST_POSTGRES")
    candidates = (
        [given]
        if given
        else [POSTGRES_SERVER.replace("://", f"://{user}@") for user in ("postgres", getpass.getuser())]
    )
    for url in candidates:
        try:
            psycopg.connect(url, connect_timeout=3).close()
        except psycopg.Error as e:
            _why.append(f"{url}: {str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__}")
            continue
        return url
    return None


def require_postgres() -> str:
    """The server's URL; skips the test without one, or fails it if ``RECONCILER_REQUIRE_POSTGRES=1``."""
    server = postgres_server()
    if server is None:
        reason = "no PostgreSQL server to test against: " + "; ".join(_why)
        if os.environ.get("RECONCILER_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"{reason} (and RECONCILER_REQUIRE_POSTGRES=1)")
        pytest.skip(reason)
    return server


def postgres_admin(server: str) -> Any:
    """A connection to the server in autocommit mode, for setting up and taking down what a test made; it waits
    for a lock 10 s at most, so a test that left a session holding one fails instead of hanging the suite."""
    import psycopg

    return psycopg.connect(server, autocommit=True, options="-c lock_timeout=10s")


class PostgresBackend:
    """A schema of its own per test; ``open_other`` opens another workspace in it."""

    name = "postgres"

    def __init__(self, tmp_path: Path) -> None:
        self.server = require_postgres()
        self.schema = f"test_{uuid.uuid4().hex[:16]}"
        self._opened: list[StateStore] = []

    @property
    def location(self) -> str:
        return f"{self.server}?schema={self.schema}"

    def open(self) -> StateStore:
        return self._open("default")

    def open_other(self, where: Path) -> StateStore:
        return self._open(where.name)

    def _open(self, workspace: str) -> StateStore:
        store = open_store(self.location, workspace=workspace, root=Path.cwd())
        self._opened.append(store)
        return store

    def set_format_version(self, version: int) -> None:
        with postgres_admin(self.server) as db:
            db.execute(f"UPDATE {self.schema}.reconciler_schema SET version = %s", (version,))

    def close(self) -> None:
        for store in self._opened:
            store.close()
        with postgres_admin(self.server) as db:
            db.execute(f"DROP SCHEMA IF EXISTS {self.schema} CASCADE")


BACKENDS: dict[str, Callable[[Path], Backend]] = {"sqlite": SqliteBackend, "postgres": PostgresBackend}
