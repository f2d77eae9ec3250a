"""Toloka's asynchronous operations: accepted at once, finished later, each with a log of what its items became.

An operation is a record with a start and a finish time rather than work running in the background: the Toloka
world catches up with its clock before answering anything, taking the jobs that are ``due`` and turning their
items into suites. That keeps the timeline exact and lets a restarted sandbox finish operations it accepted
before it stopped. Nothing here takes the lock: ``TolokaWorld`` holds it around every call.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from typing import Any

from .ledger import LogArchived, MissingObject
from .persistence import Row
from .toloka_suites import SuiteOptions, toloka_time
from .validation import FieldErrors

OPERATION_TYPE = "TASK_SUITE.BATCH_CREATE"

#: A log entry without its input, by the input's index: (index, entry).
Outcome = tuple[int, dict[str, Any]]


class Operations:
    """Operation records, the jobs not yet finished (by finish time), and the logs of those that are.

    ``durable``: whether the store keeps anything, so the stored form of a log is only built when it does.
    """

    def __init__(self, *, base_s: float, per_item_s: float, durable: bool) -> None:
        self.base_s = base_s
        self.per_item_s = per_item_s
        self._durable = durable
        self.forget()

    def forget(self) -> None:
        self.records: dict[str, dict[str, Any]] = {}
        self.jobs: dict[str, dict[str, Any]] = {}
        self.logs: dict[str, list[dict[str, Any]]] = {}
        self.archived: set[str] = set()
        self._due: list[tuple[float, int, str]] = []

    def load(self, records: dict[str, dict[str, Any]]) -> None:
        self.records.update(records.get("operations", {}))
        outcomes = records.get("operation_logs", {})
        for op_id, job in records.get("operation_jobs", {}).items():
            if op_id in outcomes:
                self.logs[op_id] = [{**entry, "input": job["items"][entry.pop("index")]} for entry in outcomes[op_id]]
            else:
                self._schedule(op_id, job)

    def __contains__(self, op_id: str) -> bool:
        return op_id in self.records

    def _schedule(self, op_id: str, job: dict[str, Any]) -> None:
        self.jobs[op_id] = job
        heapq.heappush(self._due, (job["finish_at"], len(self.jobs), op_id))

    def accept(
        self, op_id: str, items: list[Any], errors: dict[int, FieldErrors], options: SuiteOptions, now: float
    ) -> list[Row]:
        """Record a new pending operation and schedule its job; the rows that keep both."""
        start = now + min(0.01, self.base_s)
        job = {
            "items": items,
            "errors": {str(i): e for i, e in errors.items()},
            "options": options.as_parameters(),
            "start_at": start,
            "finish_at": start + self.base_s + self.per_item_s * len(items),
        }
        operation = {
            "id": op_id,
            "type": OPERATION_TYPE,
            "status": "PENDING",
            "submitted": toloka_time(now),
            "parameters": options.as_parameters(),
            "progress": 0,
            "details": {"total_count": len(items)},
        }
        self.records[op_id] = operation
        self._schedule(op_id, job)
        return [("operations", op_id, operation), ("operation_jobs", op_id, job)]

    def due(self, now: float) -> Iterator[tuple[str, dict[str, Any]]]:
        """The jobs whose finish time has come, earliest first, each handed out once."""
        while self._due and self._due[0][0] <= now:
            _, _, op_id = heapq.heappop(self._due)
            job = self.jobs.pop(op_id, None)
            if job is not None:
                yield op_id, job

    def finish(
        self, op_id: str, job: dict[str, Any], outcomes: list[Outcome], succeeded: int, failed: bool
    ) -> list[Row]:
        """Record how a due job ended; the rows to store with the suites it created (none if nothing is kept)."""
        items: list[Any] = job["items"]
        invalid = len(job["errors"])
        operation = {
            **self.records[op_id],
            "status": "FAIL" if failed else "SUCCESS",
            "started": toloka_time(job["start_at"]),
            "finished": toloka_time(job["finish_at"]),
            "progress": 100,
            "details": {
                "total_count": len(items),
                "valid_count": len(items) - invalid,
                "not_valid_count": invalid,
                "success_count": succeeded,
                "failed_count": len(items) - succeeded,
            },
        }
        self.records[op_id] = operation
        self.logs[op_id] = [{**entry, "input": items[index]} for index, entry in outcomes]
        if not self._durable:
            return []
        # The stored log leaves the inputs out: the job record, kept, already holds one copy of each item.
        stored_log = [{**entry, "index": index} for index, entry in outcomes]
        return [("operations", op_id, operation), ("operation_logs", op_id, stored_log)]

    def view(self, operation: dict[str, Any], now: float) -> dict[str, Any]:
        """An operation as ``GET /operations/{id}`` shows it: running, with progress, between start and finish."""
        job = self.jobs.get(operation["id"])
        if job is None or now < job["start_at"]:
            return dict(operation)
        span = max(job["finish_at"] - job["start_at"], 1e-9)
        progress = min(99, int(100 * (now - job["start_at"]) / span))
        return {
            **operation,
            "status": "RUNNING",
            "started": toloka_time(job["start_at"]),
            "progress": progress,
        }

    def get(self, op_id: str, now: float) -> dict[str, Any]:
        operation = self.records.get(op_id)
        if operation is None:
            raise MissingObject("operation", op_id)
        return self.view(operation, now)

    def log(self, op_id: str) -> list[dict[str, Any]]:
        if op_id not in self.records:
            raise MissingObject("operation", op_id)
        if op_id in self.archived:
            raise LogArchived(op_id)
        return self.logs.get(op_id, [])

    def archive_log(self, op_id: str) -> None:
        """Age a finished operation's log past the month Toloka keeps it (in memory: a restart brings it back)."""
        if op_id not in self.records or op_id in self.jobs:
            raise MissingObject("finished operation", op_id)
        self.archived.add(op_id)

    def snapshot(self, now: float) -> list[dict[str, Any]]:
        return [self.view(op, now) for op in self.records.values()]
