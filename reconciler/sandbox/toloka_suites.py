"""Toloka's pools and task suites: how suites are checked against their pool, named, and searched.

A suite id is the pool id in hex, the creation second and a counter, so ids sort by pool and then by creation
and a search by pool and id bounds is a binary search in one sorted list per pool. Nothing here takes the
lock: ``TolokaWorld`` holds it around every call.

A suite's progress is what its overlap has used so far: ``overlap - remaining_overlap`` (workers make
``remaining_overlap`` fall; in the sandbox only an admin patch does). A change never gives back what was used:
a patched ``overlap`` below it is refused, and ``set-overlap-or-min`` sets the overlap to the larger of the
value asked and what was used, so ``remaining_overlap`` is the new overlap less what was used. An infinite
suite keeps no count, so it has used nothing when it is made finite again.
"""

from __future__ import annotations

import functools
import json
import zlib
from bisect import bisect_left, bisect_right, insort
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from .ledger import Ledger
from .persistence import Row
from .seed import PoolSeed
from .validation import FieldErrors, check_suite, suite_document


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


def input_values_bytes(items: list[Any]) -> int:
    """The input values a create request carries, counted as the sandbox counts Toloka's "1 MiB of input values"
    a request: each task's ``input_values`` written as compact JSON (no spaces, keys in their order, non-ASCII
    characters as their UTF-8 bytes, not escaped), the lengths summed over every task of every suite. What is
    counted is the values, so how the request spells them (spaces, ``\\uXXXX`` escapes) makes no difference;
    neither the ``input_values`` key nor anything else of a task or suite counts."""
    values = []
    for item in items:
        tasks = item.get("tasks") if isinstance(item, dict) else None
        for task in tasks if isinstance(tasks, list) else ():
            if isinstance(task, dict) and "input_values" in task:
                values.append(task["input_values"])
    if not values:
        return 0
    try:
        encoded = orjson.dumps(values)
    except TypeError:  # integers beyond 64 bits, lone surrogates
        encoded = json.dumps(values, ensure_ascii=False, separators=(",", ":")).encode("utf-8", "surrogatepass")
    return len(encoded) - 2 - (len(values) - 1)  # the list's brackets and commas


def toloka_time(moment: float) -> str:
    """UTC with milliseconds and no zone, as Toloka writes it."""
    return datetime.fromtimestamp(moment, UTC).replace(tzinfo=None).isoformat(timespec="milliseconds")


def used_overlap(doc: dict[str, Any]) -> int:
    """How much of a suite's overlap its progress has used (0 for an infinite suite, which keeps no count)."""
    overlap, remaining = doc.get("overlap"), doc.get("remaining_overlap")
    if doc.get("infinite_overlap") or not isinstance(overlap, int) or not isinstance(remaining, int):
        return 0
    return max(0, overlap - remaining)


def patched_suite(doc: dict[str, Any], changes: dict[str, Any]) -> tuple[dict[str, Any], FieldErrors]:
    """The suite with checked patch ``changes`` applied (``None`` values count as absent), or what is wrong
    with them given the suite's progress; ``doc`` itself is not changed."""
    new = dict(doc)
    overlap, infinite = changes.get("overlap"), changes.get("infinite_overlap")
    if infinite is True:
        new["infinite_overlap"] = True
        new.pop("overlap", None)
        new.pop("remaining_overlap", None)
    elif overlap is not None:
        used = used_overlap(doc)
        if overlap < used:
            message = f"The suite has already used {used} of its overlap: the overlap cannot go below it"
            return doc, {"overlap": {"code": "VALUE_LESS_THAN_MIN", "message": message, "params": [used]}}
        new.update(overlap=overlap, infinite_overlap=False, remaining_overlap=overlap - used)
    elif infinite is False and doc.get("infinite_overlap"):
        return doc, {"overlap": {"code": "VALUE_REQUIRED", "message": "A finite overlap needs an overlap value"}}
    if changes.get("issuing_order_override") is not None:
        new["issuing_order_override"] = changes["issuing_order_override"]
    return new, {}


def overlap_or_min(doc: dict[str, Any], overlap: int) -> dict[str, Any]:
    """The suite with its overlap set to ``overlap``, or to what its progress has used if that is more."""
    used = used_overlap(doc)
    kept = max(overlap, used)
    return {**doc, "overlap": kept, "infinite_overlap": False, "remaining_overlap": kept - used}


def creation_stamp(moment: float) -> tuple[str, str]:
    """The ``created`` text of suites made at ``moment`` and the second part of their ids."""
    return toloka_time(moment), f"{int(moment) & 0xFFFFFFFF:08x}"


@functools.lru_cache(maxsize=4096)
def pool_prefix(pool_id: str) -> str:
    """The first part of a suite id: the pool id in hex, padded to 10 (a hash for non-numeric pool ids)."""
    if pool_id.isdigit() and int(pool_id) < 16**10:
        return f"{int(pool_id):010x}"
    return f"{zlib.crc32(pool_id.encode('utf-8')):010x}"


class Suites:
    """Pools, and task suites indexed by id and, in id order, by pool."""

    def __init__(self, ledger: Ledger, *, auto_create: bool = False) -> None:
        self.auto_create = auto_create
        self._ledger = ledger
        ledger.start_counter("suite", 0)
        self.forget()

    def forget(self) -> None:
        self.pools: dict[str, dict[str, Any]] = {}
        self.by_id: dict[str, dict[str, Any]] = {}
        self.by_pool: dict[str, list[str]] = {}

    def load(self, records: dict[str, dict[str, Any]]) -> None:
        for doc in records.get("pools", {}).values():
            self.put_pool(doc)
        for doc in records.get("task_suites", {}).values():
            self.index(doc)

    # --- pools ---------------------------------------------------------------------------------------------

    def put_pool(self, doc: dict[str, Any]) -> Row:
        self.pools[doc["id"]] = doc
        return ("pools", doc["id"], doc)

    def pool_or_create(self, pool_id: str, rows: list[Row]) -> dict[str, Any] | None:
        pool = self.pools.get(pool_id)
        if pool is None and self.auto_create:
            rows.append(self.put_pool(PoolSeed(id=pool_id, default_overlap=1, status="CLOSED").as_record()))
            pool = self.pools[pool_id]
        return pool

    def open_pools(self, suites: list[dict[str, Any]], rows: list[Row]) -> None:
        for pool_id in {s["pool_id"] for s in suites}:
            pool = self.pools[pool_id]
            if pool["status"] == "CLOSED":
                rows.append(self.put_pool({**pool, "status": "OPEN"}))

    # --- creating suites -----------------------------------------------------------------------------------

    def check_items(self, items: list[Any], options: SuiteOptions, rows: list[Row]) -> dict[int, FieldErrors]:
        """Field errors by input index; a pool that ``auto_create`` makes up on the way adds its row."""
        errors: dict[int, FieldErrors] = {}
        for index, item in enumerate(items):
            pool_id = item.get("pool_id") if isinstance(item, dict) else None
            pool = self.pool_or_create(pool_id, rows) if isinstance(pool_id, str) and pool_id else None
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

    def index(self, doc: dict[str, Any]) -> None:
        self.by_id[doc["id"]] = doc
        insort(self.by_pool.setdefault(doc["pool_id"], []), doc["id"])

    def unindex(self, suite_id: str) -> dict[str, Any]:
        doc = self.by_id.pop(suite_id)
        ids = self.by_pool.get(doc["pool_id"], [])
        at = bisect_left(ids, suite_id)
        if at < len(ids) and ids[at] == suite_id:
            del ids[at]
        return doc

    def new_suites(self, items: list[dict[str, Any]], created: float) -> list[dict[str, Any]]:
        """Suites created at one moment (a sync request, or an operation finishing), in input order."""
        created_text, second = creation_stamp(created)
        return [self.new_suite(item, created_text, second) for item in items]

    def new_suite(self, item: dict[str, Any], created: str, second: str) -> dict[str, Any]:
        pool = self.pools[item["pool_id"]]
        doc = suite_document(item, default_overlap=pool["default_overlap"])
        counter = self._ledger.next_id("suite")
        doc["id"] = f"{pool_prefix(doc['pool_id'])}--{second}{counter:016x}"
        doc["created"] = created
        if not doc["infinite_overlap"]:
            doc["remaining_overlap"] = doc["overlap"]
        doc["automerged"] = False
        self.index(doc)
        return doc

    # --- searching -----------------------------------------------------------------------------------------

    def find(self, query: SuiteQuery) -> tuple[list[dict[str, Any]], bool]:
        """One page of suites and whether more match."""
        matches = (self.by_id[i] for i in self._candidates(query))
        matches = (doc for doc in matches if self._matches(doc, query))
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

    def _candidates(self, query: SuiteQuery) -> Iterator[str]:
        """Suite ids in id order, narrowed by pool and id bounds with binary search."""
        if query.pool_id is not None:
            pools = [query.pool_id] if query.pool_id in self.by_pool else []
        else:
            pools = sorted(self.by_pool, key=lambda p: (pool_prefix(p), p))
        for pool_id in pools:
            ids = self.by_pool[pool_id]
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
    def _matches(doc: dict[str, Any], q: SuiteQuery) -> bool:
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
