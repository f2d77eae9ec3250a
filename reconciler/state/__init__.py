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
    "inspect_state_file",
    "open_store",
    "state_path",
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


def open_store(
    location: str | None,
    *,
    workspace: str,
    root: Path,
    read_only: bool = False,
    lineage: str | None = None,
    replace_empty: bool = False,
) -> StateStore:
    """``None``: ``root/.reconciler/<workspace>.db``; a PostgreSQL URL: that database; anything else: a SQLite file.

    A path that is an existing directory (or ends with a slash) holds one ``<workspace>.db`` per workspace;
    any other path is the state file itself, whatever the workspace.

    ``read_only``: for commands that only read; nothing is created or written, and a missing state raises
    ``StateAbsentError``. ``lineage``: the lineage a state created by this opening gets. ``replace_empty``: a
    0-byte file counts as no state (``state push`` only).
    """
    validate_workspace(workspace)
    if location is not None and location.startswith(POSTGRES_SCHEMES):
        return _open_postgres(location, workspace=workspace, read_only=read_only, lineage=lineage)
    path = state_path(location, workspace=workspace, root=root)
    return SqliteStateStore(path, read_only=read_only, lineage=lineage, replace_empty=replace_empty)


def state_path(location: str | None, *, workspace: str, root: Path) -> Path:
    """The SQLite file a ``--state`` value (not a URL) names for ``workspace``."""
    if location is None:
        return root / ".reconciler" / f"{workspace}.db"
    path = Path(location).expanduser()
    if location.endswith(("/", "\\")) or path.is_dir():
        path = path / f"{workspace}.db"
    return path


def inspect_state_file(path: Path) -> StateMeta:
    """The meta of the state file at ``path``, checked as any state is when opened (read-only, nothing written)."""
    with SqliteStateStore(path, read_only=True) as store:
        return store.meta()


def _open_postgres(url: str, *, workspace: str, read_only: bool, lineage: str | None) -> StateStore:
    """Imported here, not at the top: psycopg is an optional extra, and commands on a SQLite state never pay
    for importing it."""
    try:
        from reconciler.state.postgres.store import PostgresStateStore
    except ImportError as e:
        raise StateError(
            f"a PostgreSQL state needs psycopg, which is not installed ({e}); install reconciler with its postgres "
            "extra: pip install 'perftest-toloka-reconciler[postgres]'"
        ) from e
    return PostgresStateStore(url, workspace=workspace, read_only=read_only, lineage=lineage)
