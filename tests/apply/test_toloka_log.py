"""What an operation's log says became of each suite of a batch, read from the entries as Toloka sends them."""

from __future__ import annotations

from typing import Any

import pytest

from reconciler.applier.toloka import read_toloka_log
from reconciler.providers.toloka import LogEntry, Operation
from reconciler.state.base import Intent, Outcome, Status

ADDRESSES = ("TaskSuite/a", "TaskSuite/b", "TaskSuite/c")


def intent() -> Intent:
    return Intent(operation_id="op", provider="toloka", action="toloka_batch", addresses=ADDRESSES, fingerprint="f")


def operation(status: str = "SUCCESS") -> Operation:
    return Operation("op", status, "TASK_SUITE.BATCH_CREATE", None, None, None, {}, {})


def created(index: Any, suite_id: Any = None) -> dict[str, Any]:
    return {
        "type": "TASK_SUITE_CREATE",
        "success": True,
        "input": {"pool_id": "1", "__item_idx": index},
        "output": {"task_suite_id": f"suite-{index}" if suite_id is None else suite_id},
    }


def refused(index: int) -> dict[str, Any]:
    problem = {"code": "VALUE_REQUIRED", "message": "Value must be set"}
    return {"success": False, "input": {"__item_idx": index}, "output": {"pool_id": problem}}


def test_a_log_of_created_suites_in_any_order_maps_each_to_its_address() -> None:
    read = read_toloka_log(intent(), operation(), [created(2), created(0), created(1)])
    assert read.outcomes == [Outcome(a, Status.CREATED, f"suite-{n}") for n, a in enumerate(ADDRESSES)]
    assert (read.missing, read.status) == ([], "SUCCESS")


def test_log_entry_without_item_index_leaves_suite_unresolved() -> None:
    entry = created(2)
    del entry["input"]["__item_idx"]
    read = read_toloka_log(intent(), operation(), [created(0), created(1), entry])
    assert [o.address for o in read.outcomes] == ["TaskSuite/a", "TaskSuite/b"]
    assert read.missing == ["TaskSuite/c"]


def test_created_entry_without_a_suite_id_leaves_suite_unresolved() -> None:
    read = read_toloka_log(intent(), operation(), [created(0), created(1, ""), created(2)])
    assert read.missing == ["TaskSuite/b"]


def test_refused_suite_fails_with_toloka_validation_message() -> None:
    read = read_toloka_log(intent(), operation(), [created(0), refused(1), created(2)])
    assert read.outcomes[1] == Outcome("TaskSuite/b", Status.FAILED, error="pool_id: VALUE_REQUIRED Value must be set")
    assert read.missing == []


def test_failed_operation_fails_the_suites_its_log_leaves_out() -> None:
    read = read_toloka_log(intent(), operation("FAIL"), [refused(1)])
    reason = "the batch failed because other suites in it were invalid (skip_invalid_items is false)"
    assert [(o.address, o.error) for o in read.outcomes] == [
        ("TaskSuite/b", "pool_id: VALUE_REQUIRED Value must be set"),
        ("TaskSuite/a", reason),
        ("TaskSuite/c", reason),
    ]


@pytest.mark.parametrize(
    "log",
    [
        [created(0), created(1), created(2)],
        [created(0), created(1), created(1, "later")],
        [created(0), created(1), created(2), created(2, "again")],
        [created(0), created(1), created(3)],
        [created(0), created(1), created(-1)],
        [created(0), created(1), created("2")],
        [created(0), created(1), created(True)],
        [created(0), created(1), {**created(2), "success": "true"}],
        [created(0), created(1), {**created(2), "output": ["suite-2"]}],
        [created(0), created(1), {**created(2), "input": ["suite-2"]}],
        [created(0), created(1), {"success": True}],
        [created(0), created(1), "suite-2"],
        [created(0), created(1), created(2, 7)],
        [created(0), created(1)],
    ],
)
def test_log_as_sent_reads_as_its_log_entries_do(log: list[Any]) -> None:
    entries = [LogEntry.from_json(entry) for entry in log]
    assert read_toloka_log(intent(), operation(), log) == read_toloka_log(intent(), operation(), entries)
