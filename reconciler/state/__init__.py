"""Where reconciler keeps what it created: the store protocol, its backends, and the lock helper.

``open_store`` is the one place that turns a ``--state`` value and a workspace into a backend; the rest of
reconciler sees only the ``StateStore`` protocol of ``reconciler.state.base``.
"""

from __future__ import annotations

import re
from pathlib import Path

from reconciler.errors import StateError
from reconciler.state.base import (
    FORMAT_VERSION,
    Intent,
    JournalEntry,
    LockInfo,
    Outcome,
    PendingResource,
    ResourceRecord,
    ResourceSummary,
    StateMeta,
    StateStore,
    Status,
)
from reconciler.state.lock import default_holder, held_lock
from reconciler.state.sqlite import SqliteStateStore

__all__ = [
    "FORMAT_VERSION",
    "Intent",
    "JournalEntry",
    "LockInfo",
    "Outcome",
    "PendingResource",
    "ResourceRecord",
    "ResourceSummary",
    "SqliteStateStore",
    "StateMeta",
    "StateStore",
    "Status",
    "default_holder",
    "held_lock",
    "open_store",
    "validate_workspace",
]

WORKSPACE_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def validate_workspace(workspace: str) -> str:
    """Workspace names become file names and database keys, so they stay short and path-safe."""
    if not WORKSPACE_PATTERN.fullmatch(workspace):
        raise StateError(
            f"invalid workspace name {workspace!r}: use 1-64 letters, digits, '_', '.' or '-', "
            "starting with a letter or digit"
        )
    return workspace


def open_store(location: str | None, *, workspace: str, root: Path) -> StateStore:
    """``None``: ``root/state/<workspace>.db``; a PostgreSQL URL: that database; anything else: a SQLite file.

    A path that is an existing directory (or ends with a slash) holds one ``<workspace>.db`` per workspace;
    any other path is the state file itself, whatever the workspace.
    """
    validate_workspace(workspace)
    if location is None:
        return SqliteStateStore(root / "state" / f"{workspace}.db")
    if location.startswith(POSTGRES_SCHEMES):
        return _open_postgres(location, workspace=workspace)
    path = Path(location).expanduser()
    if location.endswith(("/", "\\")) or path.is_dir():
        path = path / f"{workspace}.db"
    return SqliteStateStore(path)


def _open_postgres(url: str, *, workspace: str) -> StateStore:
    raise StateError("PostgreSQL state is not available yet in this version; use a SQLite path")
