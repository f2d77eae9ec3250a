"""Backends the state contract suite runs against.

Each backend is a factory of handles on one fresh state: ``open()`` gives another handle on the same state
(what a second process, or the same one after a restart, would see), and ``location`` is what ``--state``
would say, for tests that start real processes. A new backend is one more entry in ``BACKENDS``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from reconciler.state import SqliteStateStore, StateStore


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


BACKENDS: dict[str, Callable[[Path], Backend]] = {"sqlite": SqliteBackend}
