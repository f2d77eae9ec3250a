"""The default state backend: one SQLite file per workspace, private to its owner.

``schema`` owns the file (its tables, opening it, upgrading an older format), ``store`` the public methods,
``overlay`` reading resources with open intents laid over them, ``journal`` the journal's compact row forms.
"""

from __future__ import annotations

from reconciler.state.sqlite.store import SqliteStateStore

__all__ = ["SqliteStateStore"]
