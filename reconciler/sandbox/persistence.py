"""Where the sandbox world is kept between runs: nowhere (memory) or a SQLite file.

The world always lives in memory, indexed for the API's queries; a store only mirrors each change, one
transaction per change, so a sandbox killed at any moment and restarted on the same file finds every object,
operation and id counter it had acknowledged. Records are JSON documents keyed by (kind, id); nothing in the
store knows what a task suite is.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Protocol

Row = tuple[str, str, Any]  # (kind, id, JSON-able document)
Key = tuple[str, str]  # (kind, id)


class StoreError(RuntimeError):
    """The data file cannot be opened or is not a sandbox data file."""


class Store(Protocol):
    #: False when writes go nowhere, so the world can skip preparing them.
    durable: bool

    def load(self) -> dict[str, dict[str, Any]]:
        """Every record, as {kind: {id: document}}."""
        ...

    def write(self, puts: Iterable[Row] = (), deletes: Iterable[Key] = ()) -> None:
        """Apply puts and deletes atomically."""
        ...

    def clear(self, kinds: Iterable[str]) -> None: ...

    def close(self) -> None: ...


class MemoryStore:
    """Keeps nothing: the in-memory world is the only copy."""

    durable = False

    def load(self) -> dict[str, dict[str, Any]]:
        return {}

    def write(self, puts: Iterable[Row] = (), deletes: Iterable[Key] = ()) -> None:
        return None

    def clear(self, kinds: Iterable[str]) -> None:
        return None

    def close(self) -> None:
        return None


# A rowid table on purpose: operation jobs and logs are rows of hundreds of kilobytes, and in a WITHOUT ROWID
# table they sit in the primary-key b-tree itself, where replacing a small neighbour (the id counters) cost a
# millisecond and a half per commit. Here the key index stays small and big rows live apart.
_SCHEMA = """
CREATE TABLE IF NOT EXISTS sandbox_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS records (
    kind TEXT NOT NULL,
    id TEXT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (kind, id)
);
"""
_FORMAT = "reconciler-sandbox/1"


class SqliteStore:
    """One SQLite file in WAL mode.

    ``synchronous=OFF``: a committed change is in the operating system's hands, so it survives a killed
    sandbox (what crash tests do) but not a power cut, and commits and checkpoints cost no fsync.
    """

    durable = True

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=OFF")
            self._db.executescript(_SCHEMA)
            found = self._db.execute("SELECT value FROM sandbox_meta WHERE key = 'format'").fetchone()
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"{self.path}: cannot open the sandbox data file: {exc}") from None
        if found is None:
            self._db.execute("INSERT INTO sandbox_meta (key, value) VALUES ('format', ?)", (_FORMAT,))
        elif found[0] != _FORMAT:
            raise StoreError(f"{self.path}: written by another sandbox version ({found[0]}), expected {_FORMAT}")

    def load(self) -> dict[str, dict[str, Any]]:
        records: dict[str, dict[str, Any]] = {}
        with self._lock:
            for kind, key, body in self._db.execute("SELECT kind, id, body FROM records"):
                records.setdefault(kind, {})[key] = json.loads(body)
        return records

    def write(self, puts: Iterable[Row] = (), deletes: Iterable[Key] = ()) -> None:
        rows = [(kind, key, json.dumps(doc, separators=(",", ":"))) for kind, key, doc in puts]
        gone = list(deletes)
        if not rows and not gone:
            return
        with self._lock:
            self._db.execute("BEGIN")
            try:
                if gone:
                    self._db.executemany("DELETE FROM records WHERE kind = ? AND id = ?", gone)
                if rows:
                    self._db.executemany("INSERT OR REPLACE INTO records (kind, id, body) VALUES (?, ?, ?)", rows)
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def clear(self, kinds: Iterable[str]) -> None:
        with self._lock:
            self._db.execute("BEGIN")
            self._db.executemany("DELETE FROM records WHERE kind = ?", [(k,) for k in kinds])
            self._db.execute("COMMIT")

    def close(self) -> None:
        with self._lock:
            self._db.close()
