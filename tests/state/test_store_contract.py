"""What every state store promises, whatever keeps the data; runs once per backend of ``BACKENDS``."""

from __future__ import annotations

import threading

import pytest
from helpers.state_backends import Backend
from helpers.state_builders import create, intent_for, pending, record

from reconciler.errors import StateError, StateVersionError, UnknownAddressError
from reconciler.state import FORMAT_VERSION, Intent, Outcome, StateStore, Status


def test_new_state_has_a_lineage_and_serial_zero(store: StateStore) -> None:
    meta = store.meta()
    assert meta.serial == 0
    assert len(meta.lineage) == 36
    assert meta.format_version == FORMAT_VERSION


def test_reopened_state_keeps_its_lineage(backend: Backend, store: StateStore) -> None:
    create(store, "TaskSuite/a")
    assert backend.open().meta() == store.meta()


def test_every_committed_change_bumps_the_serial_once(store: StateStore) -> None:
    def serial() -> int:
        return store.meta().serial

    intent = record(store, "TaskSuite/a", "TaskSuite/b")
    assert serial() == 1
    store.record_outcomes(
        operation_id=intent.operation_id,
        outcomes=[Outcome("TaskSuite/a", Status.CREATED, "1")],
        resolved=False,
    )
    assert serial() == 2
    store.record_outcomes(
        operation_id=intent.operation_id,
        outcomes=[Outcome("TaskSuite/b", Status.FAILED, error="no")],
        resolved=True,
    )
    assert serial() == 3
    store.import_resource(
        address="TaskSuite/c", kind="TaskSuite", provider="toloka", remote_id="9", spec={}, spec_hash="h"
    )
    assert serial() == 4
    store.record_refresh(views=[("TaskSuite/a", {"id": "1"}), ("TaskSuite/c", None)])
    assert serial() == 5
    store.forget(address="TaskSuite/c")
    assert serial() == 6


def test_locks_leave_the_serial_alone(store: StateStore) -> None:
    record(store, "TaskSuite/a")
    lock = store.acquire_lock(holder="me", operation="apply", ttl=30)
    store.renew_lock(lock_id=lock.lock_id, ttl=30)
    store.release_lock(lock_id=lock.lock_id)
    assert store.meta().serial == 1


def test_a_refused_write_changes_nothing(store: StateStore) -> None:
    create(store, "TaskSuite/a")
    before = (store.meta(), store.history())
    with pytest.raises(UnknownAddressError):
        store.forget(address="TaskSuite/nope")
    with pytest.raises(StateError):
        store.import_resource(
            address="TaskSuite/a", kind="TaskSuite", provider="toloka", remote_id="2", spec={}, spec_hash="h"
        )
    assert (store.meta(), store.history()) == before


def test_intent_is_durable_before_outcome(backend: Backend, store: StateStore) -> None:
    intent = record(store, "TaskSuite/a", "TaskSuite/b")
    other = backend.open()
    [seen] = other.open_intents()
    assert seen.operation_id == intent.operation_id
    assert seen.addresses == intent.addresses
    assert seen.created_at.endswith("Z")
    for address in intent.addresses:
        row = other.get(address=address)
        assert row is not None
        assert (row.status, row.operation_id, row.remote_id) == (Status.PENDING, intent.operation_id, None)


def test_outcome_closes_intent(store: StateStore) -> None:
    intent = record(store, "TaskSuite/a", "TaskSuite/b")
    store.record_outcomes(
        operation_id=intent.operation_id,
        outcomes=[
            Outcome("TaskSuite/a", Status.CREATED, remote_id="r-a"),
            Outcome("TaskSuite/b", Status.FAILED, error="quota"),
        ],
        resolved=True,
    )
    assert store.open_intents() == []
    created, failed = store.get(address="TaskSuite/a"), store.get(address="TaskSuite/b")
    assert created is not None and failed is not None
    assert (created.status, created.remote_id, created.error) == (Status.CREATED, "r-a", None)
    assert (failed.status, failed.remote_id, failed.error) == (Status.FAILED, None, "quota")
    assert created.updated_at >= created.created_at


def test_partial_outcomes_leave_the_intent_open(store: StateStore) -> None:
    intent = record(store, "TaskSuite/a", "TaskSuite/b")
    store.record_outcomes(
        operation_id=intent.operation_id,
        outcomes=[Outcome("TaskSuite/a", Status.CREATED, "r-a")],
        resolved=False,
    )
    assert [i.operation_id for i in store.open_intents()] == [intent.operation_id]
    assert store.get(address="TaskSuite/b").status == Status.PENDING  # type: ignore[union-attr]


def test_outcome_with_remote_view_stores_it(store: StateStore) -> None:
    intent = record(store, "PerfTestTask/a")
    view = {"id": 7, "name": "a"}
    store.record_outcomes(
        operation_id=intent.operation_id,
        outcomes=[Outcome("PerfTestTask/a", Status.CREATED, "7", remote=view)],
        resolved=True,
    )
    row = store.get(address="PerfTestTask/a")
    assert row is not None and row.remote == view and row.refreshed_at is not None


def test_outcomes_of_every_kind_in_one_call_reach_their_own_addresses(store: StateStore) -> None:
    resources = [pending(f"TaskSuite/{x}", attempt=i, spec={"n": i}) for i, x in enumerate("abcde")]
    intent = intent_for(resources)
    store.record_intent(intent=intent, resources=list(reversed(resources)))
    outcomes = [
        Outcome("TaskSuite/d", Status.CREATED, "r-d"),
        Outcome("TaskSuite/b", Status.FAILED, error="quota"),
        Outcome("TaskSuite/e", Status.CREATED, "r-e", remote={"id": "r-e"}),
        Outcome("TaskSuite/a", Status.CREATED, "r-a"),
    ]
    store.record_outcomes(operation_id=intent.operation_id, outcomes=outcomes, resolved=False)
    found = store.get_many(addresses=intent.addresses)
    assert {a: (r.status, r.remote_id, r.error, r.remote) for a, r in found.items()} == {
        "TaskSuite/a": (Status.CREATED, "r-a", None, None),
        "TaskSuite/b": (Status.FAILED, None, "quota", None),
        "TaskSuite/c": (Status.PENDING, None, None, None),
        "TaskSuite/d": (Status.CREATED, "r-d", None, None),
        "TaskSuite/e": (Status.CREATED, "r-e", None, {"id": "r-e"}),
    }
    for r in resources:
        row = found[r.address]
        assert (row.kind, row.provider, row.spec, row.spec_hash, row.attempt) == (
            r.kind,
            r.provider,
            r.spec,
            r.spec_hash,
            r.attempt,
        )
    assert [(e.event, e.address) for e in store.history(limit=4)] == [(o.status, o.address) for o in outcomes]


def test_an_intent_over_no_address_leaves_the_journal_usable(store: StateStore) -> None:
    intent = Intent("op-empty", "toloka", "toloka_batch", (), "f")
    store.record_intent(intent=intent, resources=[])
    store.record_outcomes(operation_id=intent.operation_id, outcomes=[], resolved=True)
    create(store, "TaskSuite/a")
    events = [(1, "resolved"), (2, "intent"), (3, "created"), (4, "resolved")]
    assert [(e.seq, e.event) for e in store.history()] == events
    assert store.open_intents() == [] and store.meta().serial == 4


def test_open_intents_keep_creation_order_and_address_order(store: StateStore) -> None:
    first = record(store, "TaskSuite/z", "TaskSuite/a", "TaskSuite/m")
    second = record(store, "TaskSuite/b")
    third = record(store, "TaskSuite/c", "TaskSuite/0")
    store.record_outcomes(operation_id=second.operation_id, outcomes=[], resolved=True)
    assert [(i.operation_id, i.addresses) for i in store.open_intents()] == [
        (first.operation_id, ("TaskSuite/z", "TaskSuite/a", "TaskSuite/m")),
        (third.operation_id, ("TaskSuite/c", "TaskSuite/0")),
    ]


def test_intent_keeps_what_recovery_needs(store: StateStore) -> None:
    resources = [pending("PerfTestTask/a")]
    intent = intent_for(resources, detail={"existing_ids": ["1", "2"], "project_id": 5})
    store.record_intent(intent=intent, resources=resources)
    [seen] = store.open_intents()
    assert (seen.provider, seen.action, seen.fingerprint, seen.detail) == (
        intent.provider,
        intent.action,
        intent.fingerprint,
        intent.detail,
    )
    assert seen.resolved is False


def test_retry_after_failure_keeps_first_creation_time(store: StateStore) -> None:
    first = record(store, "TaskSuite/a")
    store.record_outcomes(
        operation_id=first.operation_id,
        outcomes=[Outcome("TaskSuite/a", Status.FAILED, error="500")],
        resolved=True,
    )
    before = store.get(address="TaskSuite/a")
    retry = [pending("TaskSuite/a", attempt=1, spec={"changed": True})]
    again = intent_for(retry)
    store.record_intent(intent=again, resources=retry)
    after = store.get(address="TaskSuite/a")
    assert before is not None and after is not None
    assert after.created_at == before.created_at
    assert (after.status, after.attempt, after.error, after.operation_id) == (
        Status.PENDING,
        1,
        None,
        again.operation_id,
    )
    assert (after.spec, after.spec_hash) == ({"changed": True}, retry[0].spec_hash)


def test_replacement_keeps_the_old_remote_id_in_the_journal(store: StateStore) -> None:
    create(store, "TaskSuite/a")
    resources = [pending("TaskSuite/a", attempt=0, replaces="remote-TaskSuite/a", spec={"v": 2})]
    intent = intent_for(resources)
    store.record_intent(intent=intent, resources=resources)
    [replaced] = [e for e in store.history(address="TaskSuite/a") if e.event == "replaced"]
    assert replaced.detail == {"remote_id": "remote-TaskSuite/a"}
    assert replaced.operation_id == intent.operation_id
    assert store.get(address="TaskSuite/a").remote_id is None  # type: ignore[union-attr]


def test_replacements_in_a_batch_are_journalled_after_its_intents(store: StateStore) -> None:
    create(store, "TaskSuite/a")
    resources = [pending("TaskSuite/a", attempt=1, replaces="remote-TaskSuite/a"), pending("TaskSuite/b")]
    intent = intent_for(resources)
    store.record_intent(intent=intent, resources=resources)
    assert [(e.event, e.address, e.operation_id, e.detail) for e in store.history(limit=3)] == [
        ("intent", "TaskSuite/a", intent.operation_id, {"spec_hash": resources[0].spec_hash, "attempt": 1}),
        ("intent", "TaskSuite/b", intent.operation_id, {"spec_hash": resources[1].spec_hash, "attempt": 0}),
        ("replaced", "TaskSuite/a", intent.operation_id, {"remote_id": "remote-TaskSuite/a"}),
    ]
    assert [e.event for e in store.history(address="TaskSuite/b")] == ["intent"]
    assert [e.event for e in store.history(address="TaskSuite/a")] == ["intent", "created", "intent", "replaced"]


def test_recording_an_operation_id_twice_is_refused(store: StateStore) -> None:
    intent = record(store, "TaskSuite/a")
    with pytest.raises(StateError, match=intent.operation_id):
        store.record_intent(intent=intent, resources=[pending("TaskSuite/a")])
    assert store.meta().serial == 1


def test_intent_must_cover_exactly_its_resources(store: StateStore) -> None:
    resources = [pending("TaskSuite/a"), pending("TaskSuite/b")]
    with pytest.raises(ValueError):
        store.record_intent(intent=intent_for(resources[:1]), resources=resources)
    assert store.meta().serial == 0


def test_outcome_for_unknown_intent_is_an_error(store: StateStore) -> None:
    with pytest.raises(StateError, match="no intent"):
        store.record_outcomes(
            operation_id="nope", outcomes=[Outcome("TaskSuite/a", Status.CREATED, "1")], resolved=True
        )


def test_outcome_for_an_address_outside_the_intent_is_refused(store: StateStore) -> None:
    intent = record(store, "TaskSuite/a")
    with pytest.raises(ValueError):
        store.record_outcomes(
            operation_id=intent.operation_id,
            outcomes=[Outcome("TaskSuite/b", Status.CREATED, "1")],
            resolved=True,
        )


def test_late_outcome_of_a_superseded_intent_only_reaches_the_journal(store: StateStore) -> None:
    old = record(store, "TaskSuite/a")
    new = record(store, "TaskSuite/a", attempt=1)
    store.record_outcomes(
        operation_id=old.operation_id, outcomes=[Outcome("TaskSuite/a", Status.CREATED, "old")], resolved=True
    )
    row = store.get(address="TaskSuite/a")
    assert row is not None and (row.status, row.operation_id) == (Status.PENDING, new.operation_id)
    assert store.history(address="TaskSuite/a")[-1].detail == {"remote_id": "old"}


def test_summaries_carry_what_the_planner_compares(store: StateStore) -> None:
    create(store, "TaskSuite/a")
    record(store, "PerfTestTask/b")
    summaries = {s.address: s for s in store.summaries()}
    assert set(summaries) == {"TaskSuite/a", "PerfTestTask/b"}
    for address, summary in summaries.items():
        row = store.get(address=address)
        assert row is not None
        assert (summary.kind, summary.provider, summary.spec_hash, summary.status, summary.remote_id) == (
            row.kind,
            row.provider,
            row.spec_hash,
            row.status,
            row.remote_id,
        )
        assert (summary.operation_id, summary.attempt) == (row.operation_id, row.attempt)
    assert isinstance(summaries["TaskSuite/a"].status, Status)


def test_summaries_read_one_snapshot_while_others_write(store: StateStore) -> None:
    create(store, *(f"TaskSuite/{i}" for i in range(3000)))
    stream = store.summaries()
    first = next(stream)
    create(store, "TaskSuite/late")
    store.forget(address="TaskSuite/2999")
    rest = list(stream)
    assert len(rest) + 1 == 3000
    assert "TaskSuite/late" not in {s.address for s in rest} | {first.address}


def test_get_many_reads_more_addresses_than_one_query_holds(store: StateStore) -> None:
    addresses = [f"TaskSuite/{i}" for i in range(2500)]
    create(store, *addresses)
    found = store.get_many(addresses=iter([*addresses, "TaskSuite/unknown", addresses[0]]))
    assert sorted(found) == sorted(addresses)
    assert found["TaskSuite/7"].remote_id == "remote-TaskSuite/7"


def test_unknown_address_reads_as_none(store: StateStore) -> None:
    assert store.get(address="TaskSuite/nope") is None
    assert store.get_many(addresses=[]) == {}


def test_forget_unknown_address_is_an_error(store: StateStore) -> None:
    with pytest.raises(UnknownAddressError, match="TaskSuite/nope"):
        store.forget(address="TaskSuite/nope")


def test_address_an_open_intent_is_creating_cannot_be_forgotten_or_imported_over(store: StateStore) -> None:
    create(store, "TaskSuite/a")
    replacing = [pending("TaskSuite/a", replaces="remote-TaskSuite/a", spec={"v": 2})]
    store.record_intent(intent=intent_for(replacing), resources=replacing)
    record(store, "TaskSuite/b")
    for address in ("TaskSuite/a", "TaskSuite/b"):
        with pytest.raises(StateError, match="pending.*reconciler apply"):
            store.forget(address=address)
        with pytest.raises(StateError, match="pending"):
            store.import_resource(
                address=address, kind="TaskSuite", provider="toloka", remote_id="x", spec={}, spec_hash="h"
            )
    assert {s.address: s.status for s in store.summaries()} == {
        "TaskSuite/a": Status.PENDING,
        "TaskSuite/b": Status.PENDING,
    }


def test_forget_drops_the_resource_but_not_its_history(store: StateStore) -> None:
    create(store, "TaskSuite/a")
    store.forget(address="TaskSuite/a")
    assert store.get(address="TaskSuite/a") is None
    forgotten = store.history(address="TaskSuite/a")[-1]
    assert forgotten.event == "forgotten"
    assert forgotten.detail["remote_id"] == "remote-TaskSuite/a"


def test_import_adopts_a_remote_object_as_created(store: StateStore) -> None:
    store.import_resource(
        address="PerfTestTask/a",
        kind="PerfTestTask",
        provider="perftest",
        remote_id="42",
        spec={"name": "a"},
        spec_hash="h",
    )
    row = store.get(address="PerfTestTask/a")
    assert row is not None
    assert (row.status, row.remote_id, row.spec, row.spec_hash, row.operation_id) == (
        Status.CREATED,
        "42",
        {"name": "a"},
        "h",
        None,
    )
    assert store.history(address="PerfTestTask/a")[-1].event == "imported"


def test_import_over_a_known_address_is_refused(store: StateStore) -> None:
    create(store, "TaskSuite/a")
    with pytest.raises(StateError, match="forget"):
        store.import_resource(
            address="TaskSuite/a", kind="TaskSuite", provider="toloka", remote_id="2", spec={}, spec_hash="h"
        )


def test_refresh_stores_the_remote_view_and_objects_gone(store: StateStore) -> None:
    create(store, "TaskSuite/a", "TaskSuite/b")
    store.record_refresh(views=[("TaskSuite/a", {"id": "1", "overlap": 3}), ("TaskSuite/b", None), ("TaskSuite/x", {})])
    a, b = store.get(address="TaskSuite/a"), store.get(address="TaskSuite/b")
    assert a is not None and b is not None
    assert (a.remote, b.remote) == ({"id": "1", "overlap": 3}, None)
    assert a.refreshed_at is not None and b.refreshed_at is not None
    assert store.get(address="TaskSuite/x") is None
    assert store.history()[-1].event == "refreshed"


def test_history_of_one_address_in_a_large_batch_is_its_own_entries(store: StateStore) -> None:
    addresses = [f"TaskSuite/s{i}" for i in range(2000)]
    intent = create(store, *addresses)
    mine = store.history(address="TaskSuite/s1234")
    assert [(e.event, e.address, e.operation_id) for e in mine] == [
        ("intent", "TaskSuite/s1234", intent.operation_id),
        ("created", "TaskSuite/s1234", intent.operation_id),
    ]
    assert mine[1].detail == {"remote_id": "remote-TaskSuite/s1234"}
    assert store.history(address="TaskSuite/s123") != mine
    everything = store.history(limit=10_000)
    assert len(everything) == 2 * 2000 + 1
    assert [e.seq for e in everything] == list(range(everything[0].seq, everything[0].seq + len(everything)))
    assert all(entry in everything for entry in mine)


def test_journal_is_append_only_and_in_order(store: StateStore) -> None:
    intent = create(store, "TaskSuite/a", "TaskSuite/b")
    store.forget(address="TaskSuite/a")
    entries = store.history()
    assert [(e.event, e.address) for e in entries] == [
        ("intent", "TaskSuite/a"),
        ("intent", "TaskSuite/b"),
        ("created", "TaskSuite/a"),
        ("created", "TaskSuite/b"),
        ("resolved", None),
        ("forgotten", "TaskSuite/a"),
    ]
    assert [e.seq for e in entries] == sorted({e.seq for e in entries})
    assert [e.at for e in entries] == sorted(e.at for e in entries)
    assert all(e.at.endswith("Z") for e in entries)
    assert {e.operation_id for e in entries[:5]} == {intent.operation_id}
    create(store, "TaskSuite/c")
    assert store.history()[: len(entries)] == entries


def test_history_shows_the_latest_entries_oldest_first(store: StateStore) -> None:
    for i in range(5):
        create(store, f"TaskSuite/{i}")
    latest = store.history(limit=4)
    assert [(e.event, e.address) for e in latest] == [
        ("resolved", None),
        ("intent", "TaskSuite/4"),
        ("created", "TaskSuite/4"),
        ("resolved", None),
    ]
    assert latest == store.history()[-4:]
    assert [e.event for e in store.history(address="TaskSuite/1")] == ["intent", "created"]


def test_concurrent_writers_from_threads_lose_nothing(store: StateStore) -> None:
    errors: list[BaseException] = []

    def work(worker: int) -> None:
        try:
            for n in range(15):
                create(store, *(f"TaskSuite/w{worker}-{n}-{i}" for i in range(10)))
                assert store.meta().serial > 0
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert store.meta().serial == 8 * 15 * 2
    summaries = list(store.summaries())
    assert len(summaries) == 8 * 15 * 10
    assert {s.status for s in summaries} == {Status.CREATED}
    assert store.open_intents() == []
    entries = store.history(limit=100_000)
    assert len(entries) == 8 * 15 * (10 + 10 + 1)
    assert [e.seq for e in entries] == sorted(e.seq for e in entries)


def test_state_from_newer_version_is_refused(backend: Backend, store: StateStore) -> None:
    store.close()
    backend.set_format_version(FORMAT_VERSION + 1)
    with pytest.raises(StateVersionError, match="upgrade reconciler"):
        backend.open()
