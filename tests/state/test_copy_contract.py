"""Copies of a state (``state pull`` / ``state push``): consistent, checked, and never silently older."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers.state_backends import Backend
from helpers.state_builders import create, record

from reconciler.errors import StateError
from reconciler.state import StateStore


def test_a_copy_restores_resources_open_intents_and_journal(
    backend: Backend, store: StateStore, tmp_path: Path
) -> None:
    create(store, "TolokaTaskSuite/a", "TolokaTaskSuite/b")
    open_intent = record(store, "TolokaTaskSuite/c")
    copied = store.copy_to(path=tmp_path / "copy.db")
    assert copied == store.meta()
    create(store, "TolokaTaskSuite/d")

    before, count, after = store.restore_from(path=tmp_path / "copy.db", force=True)
    assert (before.serial, count) == (copied.serial + 2, 3)
    assert after.lineage == copied.lineage and after.serial == before.serial + 1
    reopened = backend.open()
    assert sorted(s.address for s in reopened.summaries()) == [
        "TolokaTaskSuite/a",
        "TolokaTaskSuite/b",
        "TolokaTaskSuite/c",
    ]
    assert [i.operation_id for i in reopened.open_intents()] == [open_intent.operation_id]
    assert reopened.history(limit=1)[-1].event == "pushed"


def test_an_older_copy_is_refused_unless_forced(store: StateStore, tmp_path: Path) -> None:
    create(store, "TolokaTaskSuite/a")
    store.copy_to(path=tmp_path / "old.db")
    create(store, "TolokaTaskSuite/b")
    serial = store.meta().serial
    with pytest.raises(StateError, match="older"):
        store.restore_from(path=tmp_path / "old.db", force=False)
    assert store.meta().serial == serial
    assert store.get(address="TolokaTaskSuite/b") is not None


def test_a_copy_of_another_lineage_is_refused_unless_the_state_is_empty(
    backend: Backend, store: StateStore, tmp_path: Path
) -> None:
    create(store, "TolokaTaskSuite/a")
    other = backend.open_other(tmp_path / "other")
    create(other, "TolokaTaskSuite/x")
    other.copy_to(path=tmp_path / "foreign.db")
    with pytest.raises(StateError, match="lineage"):
        store.restore_from(path=tmp_path / "foreign.db", force=False)
    empty = backend.open_other(tmp_path / "empty")
    _, _, after = empty.restore_from(path=tmp_path / "foreign.db", force=False)
    assert after.lineage == other.meta().lineage


def test_restoring_keeps_the_lock_and_its_generation(store: StateStore, tmp_path: Path) -> None:
    create(store, "TolokaTaskSuite/a")
    store.copy_to(path=tmp_path / "copy.db")
    lock = store.acquire_lock(holder="pusher", operation="state push", ttl=30)
    store.fence(generation=lock.generation)
    store.restore_from(path=tmp_path / "copy.db", force=True)
    assert store.current_lock() == lock
    create(store, "TolokaTaskSuite/b")  # still fenced with a generation that matches
