"""Putting a copy of a state (``state pull``) in place: written under a temporary name beside its path, made
durable, then renamed over it, so nobody ever finds half a copy there.

Shared by both backends because a copy is a SQLite state file whatever the backend (``base``: *Copies*), so
writing one fails, is reported and is cleaned up the same way; each backend only fills the temporary file.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path

from reconciler.errors import StateError
from reconciler.state.sqlite.schema import fsync

__all__ = ["copy_in_place"]


@contextlib.contextmanager
def copy_in_place(path: Path) -> Iterator[Path]:
    """The temporary file to write the copy to; moved to ``path`` once the block ends (StateError saying what
    failed, and nothing at ``path`` changed, if anything fails), and removed with its SQLite side files if not."""
    temporary = path.with_name(f".{path.name}.pull-{uuid.uuid4().hex[:12]}")
    try:
        yield temporary
        fsync(temporary)
        os.replace(temporary, path)
    except sqlite3.Error as e:
        raise StateError(f"cannot copy the state to {path}: {e}") from e
    except OSError as e:
        raise StateError(f"cannot write {path}: {e.strerror or e}") from e
    finally:
        for suffix in ("", "-wal", "-shm", "-journal"):
            with contextlib.suppress(FileNotFoundError):
                temporary.with_name(temporary.name + suffix).unlink()
