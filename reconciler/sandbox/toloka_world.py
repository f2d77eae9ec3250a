"""The emulated Toloka: pools, task suites, and the asynchronous operations that create suites later.

``TolokaWorld`` is what the Toloka routes talk to. It keeps ``Suites`` and ``Operations`` consistent with each
other and with the store: every public method holds the ledger's lock, first finishes the operations that are
due by the clock, and mirrors its change to the store in one transaction.
"""

from __future__ import annotations

from typing import Any, ClassVar

from .ledger import Ledger, MissingObject, WorldError
from .persistence import Row
from .seed import PoolSeed, SandboxSeed
from .toloka_operations import Operations, Outcome
from .toloka_suites import SuiteOptions, SuiteQuery, Suites, creation_stamp, overlap_or_min, patched_suite
from .validation import FieldErrors


class OperationExists(WorldError):
    def __init__(self, operation_id: str) -> None:
        self.operation_id = operation_id
        super().__init__(f"Operation with id {operation_id} already exists")


class SuitesInvalid(WorldError):
    """``skip_invalid_items=false`` and at least one suite is invalid: nothing was created."""

    def __init__(self, errors: dict[int, FieldErrors]) -> None:
        self.errors = errors
        super().__init__("Validation failed")


class SuitePatchInvalid(WorldError):
    """A patch the suite's progress does not allow (an overlap below what it used): nothing was changed."""

    def __init__(self, errors: FieldErrors) -> None:
        self.errors = errors
        super().__init__("Validation failed")


class TolokaWorld:
    #: What this part keeps in the store; a reset forgets all of it.
    KINDS: ClassVar[tuple[str, ...]] = ("pools", "task_suites", "operations", "operation_jobs", "operation_logs")
    #: Kinds that ``/_sandbox/objects/{kind}/{id}`` can change behind the tools' back.
    ADMIN_KINDS: ClassVar[tuple[str, ...]] = ("task_suites", "pools")

    def __init__(
        self,
        ledger: Ledger,
        seed: SandboxSeed,
        *,
        auto_create: bool = False,
        operation_base_s: float = 0.03,
        operation_per_item_s: float = 0.00001,
    ) -> None:
        self.clock = ledger.clock
        self._ledger = ledger
        self._lock = ledger.lock
        self._store = ledger.store
        self._seed = seed.pools
        self.suites = Suites(ledger, auto_create=auto_create)
        self.operations = Operations(
            base_s=operation_base_s, per_item_s=operation_per_item_s, durable=ledger.store.durable
        )

    # --- what the world asks of each API's part, with the lock held -----------------------------------------

    def forget(self) -> None:
        self.suites.forget()
        self.operations.forget()

    def load(self, records: dict[str, dict[str, Any]]) -> None:
        self.suites.load(records)
        self.operations.load(records)

    def seed_rows(self) -> list[Row]:
        return [self.suites.put_pool(pool.as_record()) for pool in self._seed if pool.id not in self.suites.pools]

    def catch_up(self, now: float) -> None:
        for op_id, job in self.operations.due(now):
            self._finish(op_id, job)

    def snapshot(self, now: float) -> dict[str, list[dict[str, Any]]]:
        suites, pools = self.suites.by_id, self.suites.pools
        return {
            "task_suites": [suites[i] for i in sorted(suites)],
            "operations": self.operations.snapshot(now),
            "pools": [pools[p] for p in sorted(pools)],
        }

    def delete_object(self, kind: str, key: str) -> None:
        self._check_admin_key(kind, key)
        if kind == "task_suites":
            self.suites.unindex(key)
        else:
            del self.suites.pools[key]
        self._store.write(deletes=[(kind, key)])

    def patch_object(self, kind: str, key: str, changes: dict[str, Any]) -> dict[str, Any]:
        self._check_admin_key(kind, key)
        if kind == "task_suites":
            doc = {**self.suites.unindex(key), **changes}
            self.suites.index(doc)
        else:
            doc = {**self.suites.pools[key], **changes}
            self.suites.pools[key] = doc
        self._store.write([(kind, key, doc)])
        return doc

    def _check_admin_key(self, kind: str, key: str) -> None:
        table = self.suites.by_id if kind == "task_suites" else self.suites.pools
        if key not in table:
            raise MissingObject(kind, key)

    # --- pools and suites ----------------------------------------------------------------------------------

    def add_pool(self, pool: PoolSeed) -> dict[str, Any]:
        with self._lock:
            row = self.suites.put_pool(pool.as_record())
            self._store.write([row])
            return dict(row[2])

    def create_suites(self, items: list[Any], options: SuiteOptions) -> tuple[dict[int, Any], dict[int, FieldErrors]]:
        """A synchronous create: {input index: suite} and {input index: field errors}."""
        with self._lock:
            now = self.clock()
            self.catch_up(now)
            rows: list[Row] = []
            errors = self.suites.check_items(items, options, rows)
            if errors and not options.skip_invalid_items:
                self._store.write(rows)
                raise SuitesInvalid(errors)
            valid = [i for i in range(len(items)) if i not in errors]
            created = dict(zip(valid, self.suites.new_suites([items[i] for i in valid], now), strict=True))
            if self._store.durable:
                rows += [("task_suites", s["id"], s) for s in created.values()]
            if options.open_pool:
                self.suites.open_pools(list(created.values()), rows)
            rows.append(self._ledger.counter_row("suite"))
            self._store.write(rows)
            return created, errors

    def get_suite(self, suite_id: str) -> dict[str, Any]:
        with self._lock:
            self.catch_up(self.clock())
            doc = self.suites.by_id.get(suite_id)
            if doc is None:
                raise MissingObject("task suite", suite_id)
            return doc

    def patch_suite(self, suite_id: str, changes: dict[str, Any], *, open_pool: bool = False) -> dict[str, Any]:
        """Change a suite in place (checked ``changes``: ``validation.check_suite_patch``); ``MissingObject`` or
        ``SuitePatchInvalid``. ``open_pool`` opens its pool if closed, as on create."""
        with self._lock:
            self.catch_up(self.clock())
            old = self._existing_suite(suite_id)
            doc, errors = patched_suite(old, changes)
            if errors:
                raise SuitePatchInvalid(errors)
            return self._replace_suite(doc, open_pool)

    def set_overlap_or_min(self, suite_id: str, overlap: int, *, open_pool: bool = False) -> dict[str, Any]:
        """Set a suite's overlap to ``overlap`` or to the least its progress allows (``overlap_or_min``)."""
        with self._lock:
            self.catch_up(self.clock())
            return self._replace_suite(overlap_or_min(self._existing_suite(suite_id), overlap), open_pool)

    def _existing_suite(self, suite_id: str) -> dict[str, Any]:
        doc = self.suites.by_id.get(suite_id)
        if doc is None:
            raise MissingObject("task suite", suite_id)
        return doc

    def _replace_suite(self, doc: dict[str, Any], open_pool: bool) -> dict[str, Any]:
        """A changed suite (same id and pool, so the pool's id order stands) and its row, in one transaction."""
        self.suites.by_id[doc["id"]] = doc
        rows: list[Row] = [("task_suites", doc["id"], doc)]
        if open_pool and doc["pool_id"] in self.suites.pools:
            self.suites.open_pools([doc], rows)
        self._store.write(rows)
        return doc

    def find_suites(self, query: SuiteQuery) -> tuple[list[dict[str, Any]], bool]:
        """One page of suites and whether more match."""
        with self._lock:
            self.catch_up(self.clock())
            return self.suites.find(query)

    # --- asynchronous operations ---------------------------------------------------------------------------

    def submit_suites(self, op_id: str, items: list[Any], options: SuiteOptions) -> dict[str, Any]:
        """Accept an asynchronous create; the suites appear when the operation finishes."""
        with self._lock:
            now = self.clock()
            self.catch_up(now)
            if op_id in self.operations:
                raise OperationExists(op_id)
            rows: list[Row] = []
            errors = self.suites.check_items(items, options, rows)
            rows += self.operations.accept(op_id, items, errors, options, now)
            self._store.write(rows)
            return self.operations.get(op_id, now)

    def _finish(self, op_id: str, job: dict[str, Any]) -> None:
        """Turn a due operation's valid items into suites and write its log, in one store transaction."""
        items: list[Any] = job["items"]
        errors: dict[str, FieldErrors] = job["errors"]
        options = SuiteOptions(**job["options"])
        rows: list[Row] = []
        outcomes: list[Outcome] = []
        created: list[dict[str, Any]] = []
        rejected = bool(errors) and not options.skip_invalid_items
        created_text, second = creation_stamp(job["finish_at"])
        for index, item in enumerate(items):
            problem = errors.get(str(index))
            if problem is not None:
                outcomes.append((index, {"type": "TASK_SUITE_VALIDATE", "success": False, "output": problem}))
            elif not rejected:
                if item["pool_id"] not in self.suites.pools:  # deleted behind our back since submission
                    self.suites.pool_or_create(item["pool_id"], rows)
                suite = self.suites.new_suite(item, created_text, second)
                created.append(suite)
                output = {"task_suite_id": suite["id"]}
                outcomes.append((index, {"type": "TASK_SUITE_CREATE", "success": True, "output": output}))
        if options.open_pool:
            self.suites.open_pools(created, rows)
        failed = rejected or (not created and bool(errors))
        finished = self.operations.finish(op_id, job, outcomes, len(created), failed)
        if self._store.durable:
            rows += [("task_suites", s["id"], s) for s in created]
            self._store.write([*rows, *finished, self._ledger.counter_row("suite")])

    def has_operation(self, op_id: str) -> bool:
        with self._lock:
            return op_id in self.operations

    def get_operation(self, op_id: str) -> dict[str, Any]:
        with self._lock:
            now = self.clock()
            self.catch_up(now)
            return self.operations.get(op_id, now)

    def get_operation_log(self, op_id: str) -> list[dict[str, Any]]:
        with self._lock:
            self.catch_up(self.clock())
            return self.operations.log(op_id)

    def archive_operation_log(self, op_id: str) -> None:
        with self._lock:
            self.catch_up(self.clock())
            self.operations.archive_log(op_id)
