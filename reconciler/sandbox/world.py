"""The emulated remote state: test projects, tasks, pools, task suites and asynchronous operations.

The world is the one place that decides what exists. It knows nothing of HTTP: the route modules translate
requests into calls here and results into each API's answers. Every method takes the current time from the
world's clock, so an asynchronous operation is simply a record with a start and a finish time; the world
catches up with the clock (``advance``) before answering anything, which is when finished operations turn
their items into task suites. That keeps the timeline exact and lets a restarted sandbox finish operations
that were accepted before it stopped.

All public methods hold one lock: the server answers from a single event loop, but a test or the CLI may look
at the world from another thread.
"""

from __future__ import annotations

import functools
import heapq
import threading
import time
import zlib
from bisect import bisect_left, bisect_right, insort
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from .seed import PoolSeed, SandboxSeed
from .store import MemoryStore, Row, Store
from .validation import FieldErrors, check_suite, suite_document

Clock = Callable[[], float]

OPERATION_TYPE = "TASK_SUITE.BATCH_CREATE"
FIRST_TASK_ID = 100001
FIRST_TEST_PROJECT_ID = 1001
#: What a reset forgets (everything but the id counters).
_RESETTABLE_KINDS = (
    "perftest_tasks",
    "test_projects",
    "pools",
    "task_suites",
    "operations",
    "operation_jobs",
    "operation_logs",
)
#: Kinds that ``/_sandbox/objects/{kind}/{id}`` can change behind the tools' back.
ADMIN_KINDS = ("perftest_tasks", "task_suites", "pools", "test_projects")


class WorldError(Exception):
    """Base of what the world refuses; route modules turn these into each API's error answers."""


class MissingObject(WorldError):
    def __init__(self, kind: str, key: object) -> None:
        self.kind = kind
        self.key = key
        super().__init__(f"{kind} {key} does not exist")


class OperationExists(WorldError):
    def __init__(self, operation_id: str) -> None:
        self.operation_id = operation_id
        super().__init__(f"Operation with id {operation_id} already exists")


class SuitesInvalid(WorldError):
    """``skip_invalid_items=false`` and at least one suite is invalid: nothing was created."""

    def __init__(self, errors: dict[int, FieldErrors]) -> None:
        self.errors = errors
        super().__init__("Validation failed")


@dataclass(frozen=True)
class SuiteOptions:
    """The query parameters of ``POST /api/v1/task-suites`` that change what gets created."""

    allow_defaults: bool = False
    open_pool: bool = False
    skip_invalid_items: bool = False

    def as_parameters(self) -> dict[str, bool]:
        return {
            "skip_invalid_items": self.skip_invalid_items,
            "allow_defaults": self.allow_defaults,
            "open_pool": self.open_pool,
        }


@dataclass(frozen=True)
class SuiteQuery:
    """Filters of ``GET /api/v1/task-suites``; string bounds compare as the API's own id and time formats."""

    pool_id: str | None = None
    task_id: str | None = None
    overlap: int | None = None
    id_lt: str | None = None
    id_lte: str | None = None
    id_gt: str | None = None
    id_gte: str | None = None
    created_lt: str | None = None
    created_lte: str | None = None
    created_gt: str | None = None
    created_gte: str | None = None
    overlap_lt: int | None = None
    overlap_lte: int | None = None
    overlap_gt: int | None = None
    overlap_gte: int | None = None
    sort: str = "id"  # id | -id | created | -created
    limit: int = 50


def toloka_time(moment: float) -> str:
    """UTC with milliseconds and no zone, as Toloka writes it."""
    return datetime.fromtimestamp(moment, UTC).replace(tzinfo=None).isoformat(timespec="milliseconds")


@functools.lru_cache(maxsize=4)
def _cpts_second(second: int) -> str:
    return datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def cpts_time(moment: float) -> str:
    """UTC to the second with a ``Z``; cached because a busy second formats the same string many times."""
    return _cpts_second(int(moment))


@functools.lru_cache(maxsize=4096)
def pool_prefix(pool_id: str) -> str:
    """The first part of a suite id: the pool id in hex, padded to 10 (a hash for non-numeric pool ids)."""
    if pool_id.isdigit() and int(pool_id) < 16**10:
        return f"{int(pool_id):010x}"
    return f"{zlib.crc32(pool_id.encode('utf-8')):010x}"


class World:
    def __init__(
        self,
        seed: SandboxSeed | None = None,
        *,
        auto_create: bool = False,
        store: Store | None = None,
        clock: Clock = time.time,
        operation_base_s: float = 0.03,
        operation_per_item_s: float = 0.00001,
    ) -> None:
        self.seed = seed or SandboxSeed()
        self.credentials = self.seed.credentials
        self.auto_create = auto_create
        self.clock = clock
        self.operation_base_s = operation_base_s
        self.operation_per_item_s = operation_per_item_s
        self._store: Store = store or MemoryStore()
        self._lock = threading.RLock()
        self._reset_memory()
        self._counters = {"task": FIRST_TASK_ID - 1, "test_project": FIRST_TEST_PROJECT_ID - 1, "suite": 0}
        self._load(self._store.load())

    # --- setup, reset, persistence -------------------------------------------------------------------------

    def _reset_memory(self) -> None:
        self.tasks: dict[int, dict[str, Any]] = {}
        self.tasks_by_project: dict[int, list[int]] = {}
        self.test_projects: dict[int, dict[str, Any]] = {}
        self.pools: dict[str, dict[str, Any]] = {}
        self.suites: dict[str, dict[str, Any]] = {}
        self.suites_by_pool: dict[str, list[str]] = {}
        self.operations: dict[str, dict[str, Any]] = {}
        self.jobs: dict[str, dict[str, Any]] = {}
        self.logs: dict[str, list[dict[str, Any]]] = {}
        self._due: list[tuple[float, int, str]] = []

    def _seed_rows(self) -> list[Row]:
        rows: list[Row] = []
        for pool in self.seed.pools:
            if pool.id not in self.pools:
                rows.append(self._put_pool(pool.as_record()))
        now = self.clock()
        for project in self.seed.test_projects:
            if project.id not in self.test_projects:
                rows.append(self._put_test_project(project.id, project.name, project.description, now))
        return rows

    def _load(self, records: dict[str, dict[str, Any]]) -> None:
        for name, value in records.get("counters", {}).items():
            self._counters[name] = max(self._counters.get(name, 0), int(value))
        for doc in records.get("pools", {}).values():
            self._put_pool(doc)
        for doc in records.get("test_projects", {}).values():
            self.test_projects[doc["id"]] = doc
        for doc in records.get("perftest_tasks", {}).values():
            self._index_task(doc)
        for doc in records.get("task_suites", {}).values():
            self._index_suite(doc)
        self.operations.update(records.get("operations", {}))
        outcomes = records.get("operation_logs", {})
        for op_id, job in records.get("operation_jobs", {}).items():
            if op_id in outcomes:
                self.logs[op_id] = [{**entry, "input": job["items"][entry.pop("index")]} for entry in outcomes[op_id]]
            else:
                self._schedule(op_id, job)
        self._store.write(self._seed_rows())

    def reset(self) -> None:
        """Forget everything the APIs created and return pools and test projects to the seed.

        Id counters keep counting, so an id seen before a reset never names a different object after it.
        """
        with self._lock:
            self._reset_memory()
            self._store.clear(_RESETTABLE_KINDS)
            self._store.write(self._seed_rows())

    def close(self) -> None:
        with self._lock:
            self._store.close()

    def _next(self, counter: str) -> int:
        self._counters[counter] += 1
        return self._counters[counter]

    def _counter_row(self, counter: str) -> Row:
        return ("counters", counter, self._counters[counter])

    # --- pools and test projects ---------------------------------------------------------------------------

    def _put_pool(self, doc: dict[str, Any]) -> Row:
        self.pools[doc["id"]] = doc
        return ("pools", doc["id"], doc)

    def _put_test_project(self, project_id: int, name: str, description: str, now: float) -> Row:
        doc = {
            "id": project_id,
            "name": name,
            "description": description,
            "group": "",
            "source": 0,
            "create_time": cpts_time(now),
            "update_time": cpts_time(now),
        }
        self.test_projects[project_id] = doc
        self._counters["test_project"] = max(self._counters["test_project"], project_id)
        return ("test_projects", str(project_id), doc)

    def add_pool(self, pool: PoolSeed) -> dict[str, Any]:
        with self._lock:
            row = self._put_pool(pool.as_record())
            self._store.write([row])
            return dict(row[2])

    def add_test_project(self, project_id: int | None, name: str, description: str = "") -> dict[str, Any]:
        with self._lock:
            if project_id is None:
                project_id = self._next("test_project")
            row = self._put_test_project(project_id, name, description, self.clock())
            self._store.write([row, self._counter_row("test_project")])
            return dict(row[2])

    def _test_project_or_create(self, project_id: int, now: float, rows: list[Row]) -> dict[str, Any]:
        project = self.test_projects.get(project_id)
        if project is None:
            if not self.auto_create:
                raise MissingObject("test project", project_id)
            rows.append(self._put_test_project(project_id, f"project-{project_id}", "", now))
            rows.append(self._counter_row("test_project"))
            project = self.test_projects[project_id]
        return project

    def get_test_project(self, project_id: int) -> dict[str, Any]:
        with self._lock:
            rows: list[Row] = []
            project = self._test_project_or_create(project_id, self.clock(), rows)
            self._store.write(rows)
            return dict(project)

    # --- PerfTest tasks ------------------------------------------------------------------------------------

    def _index_task(self, doc: dict[str, Any]) -> None:
        self.tasks[doc["id"]] = doc
        insort(self.tasks_by_project.setdefault(doc["project_id"], []), doc["id"])

    def _unindex_task(self, task_id: int) -> dict[str, Any]:
        doc = self.tasks.pop(task_id)
        ids = self.tasks_by_project.get(doc["project_id"], [])
        if task_id in ids:
            ids.remove(task_id)
        return doc

    def create_task(self, fields: dict[str, Any]) -> dict[str, Any]:
        """Create a CPTS task from checked body fields; names are not unique, so duplicates stay countable."""
        with self._lock:
            now = self.clock()
            rows: list[Row] = []
            self._test_project_or_create(fields["project_id"], now, rows)
            task_id = self._next("task")
            doc = {
                "id": task_id,
                **fields,
                "bench_concurrent": 0,
                "description": "",
                "run_status": 0,
                "create_time": cpts_time(now),
                "update_time": cpts_time(now),
            }
            self._index_task(doc)
            rows += [("perftest_tasks", str(task_id), doc), self._counter_row("task")]
            self._store.write(rows)
            return dict(doc)

    def get_task(self, task_id: int) -> dict[str, Any]:
        with self._lock:
            doc = self.tasks.get(task_id)
            if doc is None:
                raise MissingObject("task", task_id)
            return dict(doc)

    def list_tasks(self, project_id: int, offset: int, limit: int) -> list[dict[str, Any]]:
        with self._lock:
            rows: list[Row] = []
            self._test_project_or_create(project_id, self.clock(), rows)
            self._store.write(rows)
            ids = self.tasks_by_project.get(project_id, [])[offset : offset + limit]
            return [dict(self.tasks[i]) for i in ids]

    # --- Toloka pools and suites ---------------------------------------------------------------------------

    def _pool_or_create(self, pool_id: str, rows: list[Row]) -> dict[str, Any] | None:
        pool = self.pools.get(pool_id)
        if pool is None and self.auto_create:
            rows.append(self._put_pool(PoolSeed(id=pool_id, default_overlap=1, status="CLOSED").as_record()))
            pool = self.pools[pool_id]
        return pool

    def _check_items(self, items: list[Any], options: SuiteOptions, rows: list[Row]) -> dict[int, FieldErrors]:
        errors: dict[int, FieldErrors] = {}
        for index, item in enumerate(items):
            pool_id = item.get("pool_id") if isinstance(item, dict) else None
            pool = self._pool_or_create(pool_id, rows) if isinstance(pool_id, str) and pool_id else None
            found = check_suite(
                item,
                default_overlap=pool["default_overlap"] if pool else None,
                allow_defaults=options.allow_defaults,
            )
            if "pool_id" not in found and isinstance(pool_id, str) and pool_id:
                if pool is None:
                    found["pool_id"] = {"code": "DOES_NOT_EXIST", "message": f"Pool {pool_id} does not exist"}
                elif pool["status"] in ("ARCHIVED", "LOCKED"):
                    found["pool_id"] = {
                        "code": "CONFLICT_STATE",
                        "message": f"Pool {pool_id} is {pool['status'].lower()}: no task suites can be added",
                    }
            if found:
                errors[index] = dict(sorted(found.items()))
        return errors

    def _index_suite(self, doc: dict[str, Any]) -> None:
        self.suites[doc["id"]] = doc
        insort(self.suites_by_pool.setdefault(doc["pool_id"], []), doc["id"])

    def _unindex_suite(self, suite_id: str) -> dict[str, Any]:
        doc = self.suites.pop(suite_id)
        ids = self.suites_by_pool.get(doc["pool_id"], [])
        at = bisect_left(ids, suite_id)
        if at < len(ids) and ids[at] == suite_id:
            del ids[at]
        return doc

    def _new_suites(self, items: list[dict[str, Any]], created: float) -> list[dict[str, Any]]:
        """Suites created at one moment (a sync request, or an operation finishing), in input order."""
        created_text = toloka_time(created)
        second = f"{int(created) & 0xFFFFFFFF:08x}"
        return [self._new_suite(item, created_text, second) for item in items]

    def _new_suite(self, item: dict[str, Any], created: str, second: str) -> dict[str, Any]:
        pool = self.pools[item["pool_id"]]
        doc = suite_document(item, default_overlap=pool["default_overlap"])
        counter = self._next("suite")
        doc["id"] = f"{pool_prefix(doc['pool_id'])}--{second}{counter:016x}"
        doc["created"] = created
        if not doc["infinite_overlap"]:
            doc["remaining_overlap"] = doc["overlap"]
        doc["automerged"] = False
        self._index_suite(doc)
        return doc

    def _open_pools(self, suites: list[dict[str, Any]], rows: list[Row]) -> None:
        for pool_id in {s["pool_id"] for s in suites}:
            pool = self.pools[pool_id]
            if pool["status"] == "CLOSED":
                rows.append(self._put_pool({**pool, "status": "OPEN"}))

    def create_suites(self, items: list[Any], options: SuiteOptions) -> tuple[dict[int, Any], dict[int, FieldErrors]]:
        """A synchronous create: {input index: suite} and {input index: field errors}."""
        with self._lock:
            now = self.clock()
            self._advance(now)
            rows: list[Row] = []
            errors = self._check_items(items, options, rows)
            if errors and not options.skip_invalid_items:
                self._store.write(rows)
                raise SuitesInvalid(errors)
            valid = [i for i in range(len(items)) if i not in errors]
            created = dict(zip(valid, self._new_suites([items[i] for i in valid], now), strict=True))
            if self._store.durable:
                rows += [("task_suites", s["id"], s) for s in created.values()]
            if options.open_pool:
                self._open_pools(list(created.values()), rows)
            rows.append(self._counter_row("suite"))
            self._store.write(rows)
            return created, errors

    def get_suite(self, suite_id: str) -> dict[str, Any]:
        with self._lock:
            self._advance(self.clock())
            doc = self.suites.get(suite_id)
            if doc is None:
                raise MissingObject("task suite", suite_id)
            return doc

    def _suite_candidates(self, query: SuiteQuery) -> Iterator[str]:
        """Suite ids in id order, narrowed by pool and id bounds with binary search."""
        if query.pool_id is not None:
            pools = [query.pool_id] if query.pool_id in self.suites_by_pool else []
        else:
            pools = sorted(self.suites_by_pool, key=lambda p: (pool_prefix(p), p))
        for pool_id in pools:
            ids = self.suites_by_pool[pool_id]
            start, stop = 0, len(ids)
            if query.id_gt is not None:
                start = max(start, bisect_right(ids, query.id_gt))
            if query.id_gte is not None:
                start = max(start, bisect_left(ids, query.id_gte))
            if query.id_lt is not None:
                stop = min(stop, bisect_left(ids, query.id_lt))
            if query.id_lte is not None:
                stop = min(stop, bisect_right(ids, query.id_lte))
            yield from ids[start:stop]

    @staticmethod
    def _suite_matches(doc: dict[str, Any], q: SuiteQuery) -> bool:
        created = doc["created"]
        overlap = doc.get("overlap")
        checks = (
            q.created_lt is None or created < q.created_lt,
            q.created_lte is None or created <= q.created_lte,
            q.created_gt is None or created > q.created_gt,
            q.created_gte is None or created >= q.created_gte,
            q.overlap is None or overlap == q.overlap,
            q.overlap_lt is None or (overlap is not None and overlap < q.overlap_lt),
            q.overlap_lte is None or (overlap is not None and overlap <= q.overlap_lte),
            q.overlap_gt is None or (overlap is not None and overlap > q.overlap_gt),
            q.overlap_gte is None or (overlap is not None and overlap >= q.overlap_gte),
            q.task_id is None or any(t.get("id") == q.task_id for t in doc["tasks"]),
        )
        return all(checks)

    def find_suites(self, query: SuiteQuery) -> tuple[list[dict[str, Any]], bool]:
        """One page of suites and whether more match."""
        with self._lock:
            self._advance(self.clock())
            matches = (self.suites[i] for i in self._suite_candidates(query))
            matches = (doc for doc in matches if self._suite_matches(doc, query))
            if query.sort == "id":
                page = []
                for doc in matches:
                    page.append(doc)
                    if len(page) > query.limit:
                        break
            else:
                key = "created" if query.sort.lstrip("-") == "created" else "id"
                page = sorted(matches, key=lambda d: (d[key], d["id"]), reverse=query.sort.startswith("-"))
            return page[: query.limit], len(page) > query.limit

    # --- asynchronous operations ---------------------------------------------------------------------------

    def _schedule(self, op_id: str, job: dict[str, Any]) -> None:
        self.jobs[op_id] = job
        heapq.heappush(self._due, (job["finish_at"], len(self.jobs), op_id))

    def submit_suites(self, op_id: str, items: list[Any], options: SuiteOptions) -> dict[str, Any]:
        """Accept an asynchronous create; the suites appear when the operation finishes."""
        with self._lock:
            now = self.clock()
            self._advance(now)
            if op_id in self.operations:
                raise OperationExists(op_id)
            rows: list[Row] = []
            errors = self._check_items(items, options, rows)
            start = now + min(0.01, self.operation_base_s)
            job = {
                "items": items,
                "errors": {str(i): e for i, e in errors.items()},
                "options": options.as_parameters(),
                "start_at": start,
                "finish_at": start + self.operation_base_s + self.operation_per_item_s * len(items),
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
            self.operations[op_id] = operation
            self._schedule(op_id, job)
            rows += [("operations", op_id, operation), ("operation_jobs", op_id, job)]
            self._store.write(rows)
            return self._operation_view(operation, now)

    def _advance(self, now: float) -> None:
        while self._due and self._due[0][0] <= now:
            _, _, op_id = heapq.heappop(self._due)
            if op_id in self.jobs:
                self._finish(op_id)

    def _finish(self, op_id: str) -> None:
        """Turn a due operation's valid items into suites and write its log, in one store transaction."""
        job = self.jobs.pop(op_id)
        items: list[Any] = job["items"]
        errors: dict[str, FieldErrors] = job["errors"]
        options = SuiteOptions(**job["options"])
        finished = job["finish_at"]
        rows: list[Row] = []
        outcomes: list[tuple[int, dict[str, Any]]] = []  # (input index, log entry without its input)
        created: list[dict[str, Any]] = []
        rejected = bool(errors) and not options.skip_invalid_items
        created_text = toloka_time(finished)
        second = f"{int(finished) & 0xFFFFFFFF:08x}"
        for index, item in enumerate(items):
            problem = errors.get(str(index))
            if problem is not None:
                outcomes.append((index, {"type": "TASK_SUITE_VALIDATE", "success": False, "output": problem}))
            elif not rejected:
                if item["pool_id"] not in self.pools:  # deleted behind our back since submission
                    self._pool_or_create(item["pool_id"], rows)
                suite = self._new_suite(item, created_text, second)
                created.append(suite)
                output = {"task_suite_id": suite["id"]}
                outcomes.append((index, {"type": "TASK_SUITE_CREATE", "success": True, "output": output}))
        if options.open_pool:
            self._open_pools(created, rows)
        failed = rejected or (not created and bool(errors))
        operation = {
            **self.operations[op_id],
            "status": "FAIL" if failed else "SUCCESS",
            "started": toloka_time(job["start_at"]),
            "finished": toloka_time(finished),
            "progress": 100,
            "details": {
                "total_count": len(items),
                "valid_count": len(items) - len(errors),
                "not_valid_count": len(errors),
                "success_count": len(created),
                "failed_count": len(items) - len(created),
            },
        }
        self.operations[op_id] = operation
        self.logs[op_id] = [{**entry, "input": items[index]} for index, entry in outcomes]
        if self._store.durable:
            # The stored log leaves the inputs out: the job record, kept, already holds one copy of each item.
            stored_log = [{**entry, "index": index} for index, entry in outcomes]
            rows += [("task_suites", s["id"], s) for s in created]
            rows += [("operations", op_id, operation), ("operation_logs", op_id, stored_log)]
            self._store.write([*rows, self._counter_row("suite")])

    def _operation_view(self, operation: dict[str, Any], now: float) -> dict[str, Any]:
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

    def has_operation(self, op_id: str) -> bool:
        with self._lock:
            return op_id in self.operations

    def get_operation(self, op_id: str) -> dict[str, Any]:
        with self._lock:
            now = self.clock()
            self._advance(now)
            operation = self.operations.get(op_id)
            if operation is None:
                raise MissingObject("operation", op_id)
            return self._operation_view(operation, now)

    def get_operation_log(self, op_id: str) -> list[dict[str, Any]]:
        with self._lock:
            self._advance(self.clock())
            if op_id not in self.operations:
                raise MissingObject("operation", op_id)
            return self.logs.get(op_id, [])

    # --- the admin view ------------------------------------------------------------------------------------

    def snapshot(self) -> dict[str, list[dict[str, Any]]]:
        """Everything, for ``GET /_sandbox/objects``: tests count duplicates here."""
        with self._lock:
            now = self.clock()
            self._advance(now)
            return {
                "perftest_tasks": [self.tasks[i] for i in sorted(self.tasks)],
                "task_suites": [self.suites[i] for i in sorted(self.suites)],
                "operations": [self._operation_view(op, now) for op in self.operations.values()],
                "pools": [self.pools[p] for p in sorted(self.pools)],
                "test_projects": [self.test_projects[p] for p in sorted(self.test_projects)],
            }

    def _admin_key(self, kind: str, key: str) -> Any:
        if kind not in ADMIN_KINDS:
            raise MissingObject("kind", kind)
        if kind in ("perftest_tasks", "test_projects"):
            if not key.isdigit():
                raise MissingObject(kind, key)
            return int(key)
        return key

    def delete_object(self, kind: str, key: str) -> None:
        with self._lock:
            self._advance(self.clock())
            ident = self._admin_key(kind, key)
            table: dict[Any, Any] = getattr(self, _TABLES[kind])
            if ident not in table:
                raise MissingObject(kind, key)
            if kind == "perftest_tasks":
                self._unindex_task(ident)
            elif kind == "task_suites":
                self._unindex_suite(ident)
            else:
                del table[ident]
            self._store.write(deletes=[(kind, str(ident))])

    def patch_object(self, kind: str, key: str, fields: dict[str, Any]) -> dict[str, Any]:
        """Merge fields into an object (its id stays), as a person editing it in the console would."""
        with self._lock:
            self._advance(self.clock())
            ident = self._admin_key(kind, key)
            table: dict[Any, Any] = getattr(self, _TABLES[kind])
            if ident not in table:
                raise MissingObject(kind, key)
            changes = {k: v for k, v in fields.items() if k != "id"}
            if kind == "perftest_tasks":
                doc = {**self._unindex_task(ident), **changes}
                self._index_task(doc)
            elif kind == "task_suites":
                doc = {**self._unindex_suite(ident), **changes}
                self._index_suite(doc)
            else:
                doc = {**table[ident], **changes}
                table[ident] = doc
            self._store.write([(kind, str(ident), doc)])
            return doc


_TABLES = {
    "perftest_tasks": "tasks",
    "task_suites": "suites",
    "pools": "pools",
    "test_projects": "test_projects",
}
