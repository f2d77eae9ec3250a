"""Fencing: a run whose lock was taken over (it was suspended past its TTL) records nothing when it wakes."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from helpers.state_backends import Backend
from helpers.state_builders import create, record

from reconciler.errors import LeaseLostError, StateError
from reconciler.state import Outcome, StateStore, Status, held_lock
from reconciler.state.lock import Lease, _clock


def test_every_lock_taken_or_broken_has_a_new_generation(backend: Backend, store: StateStore) -> None:
    first = store.acquire_lock(holder="a", operation="apply", ttl=30)
    store.release_lock(lock_id=first.lock_id)
    second = store.acquire_lock(holder="b", operation="apply", ttl=30)
    assert second.generation > first.generation
    assert store.current_lock() == second
    backend.open().force_unlock(lock_id=second.lock_id)
    third = backend.open().acquire_lock(holder="c", operation="apply", ttl=30)
    assert third.generation > second.generation + 1  # breaking the lock fenced out its holder too


WRITES: dict[str, Callable[[StateStore], object]] = {
    "record_intent": lambda s: record(s, "TolokaTaskSuite/late"),
    "forget": lambda s: s.forget(address="TolokaTaskSuite/kept"),
    "import_resource": lambda s: s.import_resource(
        address="TolokaTaskSuite/imported",
        kind="TolokaTaskSuite",
        provider="toloka",
        remote_id="r-1",
        spec={"name": "imported"},
        spec_hash="0" * 64,
    ),
    "record_refresh": lambda s: s.record_refresh(views=[("TolokaTaskSuite/kept", {"name": "x"})]),
}


@pytest.mark.parametrize("write", sorted(WRITES))
def test_a_holder_whose_lock_was_taken_over_can_record_nothing(backend: Backend, write: str) -> None:
    sleeper = backend.open()
    create(sleeper, "TolokaTaskSuite/kept")
    lock = sleeper.acquire_lock(holder="suspended run", operation="apply", ttl=0.2)
    sleeper.fence(generation=lock.generation)
    time.sleep(0.3)
    waker = backend.open()
    waker.acquire_lock(holder="next run", operation="apply", ttl=30)
    before = waker.meta().serial, len(waker.history(limit=1000))

    with pytest.raises(LeaseLostError, match="records nothing more"):
        WRITES[write](sleeper)
    assert (waker.meta().serial, len(waker.history(limit=1000))) == before


def test_outcomes_of_a_call_sent_before_the_takeover_are_refused_too(backend: Backend) -> None:
    sleeper = backend.open()
    lock = sleeper.acquire_lock(holder="suspended run", operation="apply", ttl=0.2)
    sleeper.fence(generation=lock.generation)
    intent = record(sleeper, "TolokaTaskSuite/a")
    time.sleep(0.3)
    backend.open().acquire_lock(holder="next run", operation="apply", ttl=30)
    with pytest.raises(LeaseLostError):
        sleeper.record_outcomes(
            operation_id=intent.operation_id,
            outcomes=[Outcome("TolokaTaskSuite/a", Status.CREATED, remote_id="r-a")],
            resolved=True,
        )
    assert [i.operation_id for i in backend.open().open_intents()] == [intent.operation_id]


def test_an_unfenced_store_and_a_current_holder_write_as_before(backend: Backend, store: StateStore) -> None:
    lock = store.acquire_lock(holder="a", operation="apply", ttl=30)
    store.fence(generation=lock.generation)
    create(store, "TolokaTaskSuite/a")
    store.fence(generation=None)
    store.release_lock(lock_id=lock.lock_id)
    backend.open().acquire_lock(holder="b", operation="apply", ttl=30)
    create(store, "TolokaTaskSuite/b")  # no fence: the lock is advisory for writers that hold none
    assert store.get(address="TolokaTaskSuite/b") is not None


def test_held_lock_fences_the_store_for_the_length_of_the_block(backend: Backend, store: StateStore) -> None:
    with pytest.raises(StateError), held_lock(store, holder="a", operation="apply", ttl=30) as lease:
        backend.open().force_unlock(lock_id=lease.lock_id)
        with pytest.raises(LeaseLostError):
            record(store, "TolokaTaskSuite/a")
    record(store, "TolokaTaskSuite/b")  # after the block the store is unfenced again


def test_a_lease_not_renewed_for_most_of_its_ttl_is_no_longer_trusted(store: StateStore) -> None:
    info = store.acquire_lock(holder="a", operation="apply", ttl=10)
    fresh = Lease(info, 10, taken_at=_clock() - 7)
    fresh.check()
    stale = Lease(info, 10, taken_at=_clock() - 8)
    with pytest.raises(LeaseLostError, match="may have lapsed: it was last renewed 8s ago and its TTL is 10s"):
        stale.check()
    stale.renewed(_clock())
    stale.check()


def test_the_heartbeat_keeps_the_lease_trusted_past_its_ttl(store: StateStore) -> None:
    with held_lock(store, holder="a", operation="apply", ttl=1.0) as lease:
        time.sleep(1.5)
        lease.check()
