"""``AbsentState``: what a command that only reads plans against when no state exists yet (a first run).

It reads as an empty state and writes nothing, ever. Its lineage is made up once, random but for its last 12 hex
digits, which are a digest of where the state would be (``--state`` as given, and the workspace): a plan saved
against it (``plan --out``) names the lineage that the state its ``apply`` creates at that same place gets
(``lineage_for_new_state``), and is refused as any plan of another state is anywhere else.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from reconciler.errors import StateError
from reconciler.state.base import (
    Intent,
    JournalEntry,
    LockInfo,
    Outcome,
    PendingResource,
    ResourceRecord,
    ResourceSummary,
    StateMeta,
)

__all__ = ["AbsentState", "lineage_for_new_state"]


def _place_digest(place: str) -> bytes:
    return hashlib.sha256(place.encode()).digest()[:6]


def lineage_for_new_state(planned: str, *, place: str) -> str | None:
    """``planned`` (a saved plan's lineage, made against no state) if it was made for ``place``, else None."""
    try:
        made = uuid.UUID(planned)
    except ValueError:
        return None
    return planned if made.bytes[10:] == _place_digest(place) else None


class AbsentState:
    """No state at ``path`` (``place``: where, as the user named it): every read is empty, every write refused."""

    read_only = True

    def __init__(self, path: Path, *, place: str) -> None:
        self.path = path
        lineage = uuid.UUID(bytes=os.urandom(10) + _place_digest(place), version=4)
        self._meta = StateMeta(lineage=str(lineage), serial=0)

    def meta(self) -> StateMeta:
        return self._meta

    def summaries(self) -> Iterator[ResourceSummary]:
        return iter(())

    def get(self, *, address: str) -> ResourceRecord | None:
        return None

    def get_many(self, *, addresses: Iterable[str]) -> dict[str, ResourceRecord]:
        return {}

    def open_intents(self) -> list[Intent]:
        return []

    def history(self, *, address: str | None = None, limit: int = 100) -> list[JournalEntry]:
        return []

    def current_lock(self) -> LockInfo | None:
        return None

    def fence(self, *, generation: int | None) -> None:
        pass

    def copy_to(self, *, path: Path) -> StateMeta:
        raise self._refused()

    def restore_from(self, *, path: Path, force: bool) -> tuple[StateMeta, int, StateMeta]:
        raise self._refused()

    def record_intent(self, *, intent: Intent, resources: Sequence[PendingResource]) -> None:
        raise self._refused()

    def record_outcomes(self, *, operation_id: str, outcomes: Sequence[Outcome], resolved: bool) -> None:
        raise self._refused()

    def forget(self, *, address: str) -> None:
        raise self._refused()

    def import_resource(
        self, *, address: str, kind: str, provider: str, remote_id: str, spec: dict[str, Any], spec_hash: str
    ) -> None:
        raise self._refused()

    def record_refresh(self, *, views: Sequence[tuple[str, dict[str, Any] | None]]) -> None:
        raise self._refused()

    def acquire_lock(self, *, holder: str, operation: str, ttl: float) -> LockInfo:
        raise self._refused()

    def renew_lock(self, *, lock_id: str, ttl: float) -> None:
        raise self._refused()

    def release_lock(self, *, lock_id: str) -> None:
        raise self._refused()

    def force_unlock(self, *, lock_id: str) -> None:
        raise self._refused()

    def close(self) -> None:
        pass

    def _refused(self) -> StateError:
        return StateError(f"there is no state at {self.path}, and this command only reads")
