"""The emulated CodeArts PerfTest: test projects and the tasks in them, with CPTS's ids and time format.

Task names are not unique in CPTS, so duplicates are created and stay countable: that is what the
exactly-once tests look for. With ``auto_create`` any test project a request names exists, as if a tester had
made it in the console beforehand.

A task is changed in place by a full body (``PUT /v3``): the id and ``create_time`` stay, ``update_time`` moves,
and a new ``project_id`` moves the task to that test project. ``enable_full_link``, which the SDK's update model
lacks, keeps its value when the body leaves it out. A deleted task is gone for good: its id is never handed out
again, and every route answers for it as for an id that never existed.
"""

from __future__ import annotations

import functools
from bisect import insort
from datetime import UTC, datetime
from typing import Any, ClassVar

from .ledger import Ledger, MissingObject
from .persistence import Row
from .seed import SandboxSeed

FIRST_TASK_ID = 100001
FIRST_TEST_PROJECT_ID = 1001


@functools.lru_cache(maxsize=4)
def _cpts_second(second: int) -> str:
    return datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def cpts_time(moment: float) -> str:
    """UTC to the second with a ``Z``; cached because a busy second formats the same string many times."""
    return _cpts_second(int(moment))


class PerfTestWorld:
    #: What this part keeps in the store; a reset forgets all of it.
    KINDS: ClassVar[tuple[str, ...]] = ("perftest_tasks", "test_projects")
    #: Kinds that ``/_sandbox/objects/{kind}/{id}`` can change behind the tools' back.
    ADMIN_KINDS: ClassVar[tuple[str, ...]] = ("perftest_tasks", "test_projects")

    def __init__(self, ledger: Ledger, seed: SandboxSeed, *, auto_create: bool = False) -> None:
        self.auto_create = auto_create
        self.clock = ledger.clock
        self._ledger = ledger
        self._lock = ledger.lock
        self._store = ledger.store
        self._seed = seed.test_projects
        ledger.start_counter("task", FIRST_TASK_ID - 1)
        ledger.start_counter("test_project", FIRST_TEST_PROJECT_ID - 1)
        self.forget()

    # --- what the world asks of each API's part, with the lock held -----------------------------------------

    def forget(self) -> None:
        self.tasks: dict[int, dict[str, Any]] = {}
        self.tasks_by_project: dict[int, list[int]] = {}
        self.test_projects: dict[int, dict[str, Any]] = {}

    def load(self, records: dict[str, dict[str, Any]]) -> None:
        for doc in records.get("test_projects", {}).values():
            self.test_projects[doc["id"]] = doc
        for doc in records.get("perftest_tasks", {}).values():
            self._index_task(doc)

    def seed_rows(self) -> list[Row]:
        now = self.clock()
        return [
            self._put_test_project(project.id, project.name, project.description, now)
            for project in self._seed
            if project.id not in self.test_projects
        ]

    def catch_up(self, now: float) -> None:
        """Nothing in CPTS happens later than the request that asked for it."""

    def snapshot(self, now: float) -> dict[str, list[dict[str, Any]]]:
        return {
            "perftest_tasks": [self.tasks[i] for i in sorted(self.tasks)],
            "test_projects": [self.test_projects[p] for p in sorted(self.test_projects)],
        }

    def delete_object(self, kind: str, key: str) -> None:
        ident = self._admin_key(kind, key)
        if kind == "perftest_tasks":
            self._unindex_task(ident)
        else:
            del self.test_projects[ident]
        self._store.write(deletes=[(kind, str(ident))])

    def patch_object(self, kind: str, key: str, changes: dict[str, Any]) -> dict[str, Any]:
        ident = self._admin_key(kind, key)
        if kind == "perftest_tasks":
            doc = {**self._unindex_task(ident), **changes}
            self._index_task(doc)
        else:
            doc = {**self.test_projects[ident], **changes}
            self.test_projects[ident] = doc
        self._store.write([(kind, str(ident), doc)])
        return doc

    def _admin_key(self, kind: str, key: str) -> int:
        """The id of an existing object of ``kind``, from the text of an admin route's path."""
        table = self.tasks if kind == "perftest_tasks" else self.test_projects
        if not key.isdigit() or int(key) not in table:
            raise MissingObject(kind, key)
        return int(key)

    # --- test projects -------------------------------------------------------------------------------------

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
        self._ledger.raise_counter("test_project", project_id)
        return ("test_projects", str(project_id), doc)

    def add_test_project(self, project_id: int | None, name: str, description: str = "") -> dict[str, Any]:
        with self._lock:
            if project_id is None:
                project_id = self._ledger.next_id("test_project")
            row = self._put_test_project(project_id, name, description, self.clock())
            self._store.write([row, self._ledger.counter_row("test_project")])
            return dict(row[2])

    def _test_project_or_create(self, project_id: int, now: float, rows: list[Row]) -> dict[str, Any]:
        project = self.test_projects.get(project_id)
        if project is None:
            if not self.auto_create:
                raise MissingObject("test project", project_id)
            rows.append(self._put_test_project(project_id, f"project-{project_id}", "", now))
            rows.append(self._ledger.counter_row("test_project"))
            project = self.test_projects[project_id]
        return project

    def get_test_project(self, project_id: int) -> dict[str, Any]:
        with self._lock:
            rows: list[Row] = []
            project = self._test_project_or_create(project_id, self.clock(), rows)
            self._store.write(rows)
            return dict(project)

    # --- tasks ---------------------------------------------------------------------------------------------

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
            task_id = self._ledger.next_id("task")
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
            rows += [("perftest_tasks", str(task_id), doc), self._ledger.counter_row("task")]
            self._store.write(rows)
            return dict(doc)

    def get_task(self, task_id: int) -> dict[str, Any]:
        with self._lock:
            doc = self.tasks.get(task_id)
            if doc is None:
                raise MissingObject("task", task_id)
            return dict(doc)

    def update_task(self, task_id: int, fields: dict[str, Any], *, full_link_given: bool) -> dict[str, Any]:
        """Replace a task's fields with checked body fields; ``MissingObject`` for the task or its new test project
        (the task is looked for first, as CPTS answers for the object in the path before the body's)."""
        with self._lock:
            old = self.tasks.get(task_id)
            if old is None:
                raise MissingObject("task", task_id)
            now = self.clock()
            rows: list[Row] = []
            self._test_project_or_create(fields["project_id"], now, rows)
            kept = {} if full_link_given else {"enable_full_link": old.get("enable_full_link", False)}
            doc = {**old, **fields, **kept, "update_time": cpts_time(now)}
            self._unindex_task(task_id)
            self._index_task(doc)
            rows.append(("perftest_tasks", str(task_id), doc))
            self._store.write(rows)
            return dict(doc)

    def delete_task(self, task_id: int) -> None:
        with self._lock:
            if task_id not in self.tasks:
                raise MissingObject("task", task_id)
            self._unindex_task(task_id)
            self._store.write(deletes=[("perftest_tasks", str(task_id))])

    def list_tasks(self, project_id: int, offset: int, limit: int) -> list[dict[str, Any]]:
        with self._lock:
            rows: list[Row] = []
            self._test_project_or_create(project_id, self.clock(), rows)
            self._store.write(rows)
            ids = self.tasks_by_project.get(project_id, [])[offset : offset + limit]
            return [dict(self.tasks[i]) for i in ids]
