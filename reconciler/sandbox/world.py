"""The emulated remote world: one part per API over a shared ledger, and what spans both parts.

The world is the one place that decides what exists. It knows nothing of HTTP: each API's route module talks
to its own part (``world.perftest``, ``world.toloka``) and translates requests into calls there and results
into that API's answers. What spans both APIs lives here: loading from the store and seeding, reset, and the
admin view that lists or changes objects of any kind.

Every change is mirrored to the store in the same transaction as the id counters it used, and every part
takes its time from the ledger's clock, so a sandbox killed at any moment and restarted on the same file finds
every object, operation and counter it had acknowledged, and finishes the operations it had accepted.
"""

from __future__ import annotations

import time
from typing import Any, ClassVar, Protocol

from .ledger import Clock, Ledger, MissingObject
from .perftest_world import PerfTestWorld
from .persistence import MemoryStore, Row, Store
from .seed import SandboxSeed
from .toloka_world import TolokaWorld

#: The kinds ``GET /_sandbox/objects`` lists, in its order.
OBJECT_KINDS = ("perftest_tasks", "task_suites", "operations", "pools", "test_projects")


class ApiWorld(Protocol):
    """What the world asks of each API's part; it holds the ledger's lock around every call."""

    #: What the part keeps in the store; a reset forgets all of it.
    KINDS: ClassVar[tuple[str, ...]]
    #: Kinds that ``/_sandbox/objects/{kind}/{id}`` can change behind the tools' back.
    ADMIN_KINDS: ClassVar[tuple[str, ...]]

    def forget(self) -> None: ...

    def load(self, records: dict[str, dict[str, Any]]) -> None: ...

    def seed_rows(self) -> list[Row]:
        """Put the seed's objects that are not there yet; their rows for the store."""
        ...

    def catch_up(self, now: float) -> None:
        """Do what had to happen by ``now``, before anything is answered."""
        ...

    def snapshot(self, now: float) -> dict[str, list[dict[str, Any]]]: ...

    def delete_object(self, kind: str, key: str) -> None: ...

    def patch_object(self, kind: str, key: str, changes: dict[str, Any]) -> dict[str, Any]: ...


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
        self._ledger = Ledger(store or MemoryStore(), clock)
        self.perftest = PerfTestWorld(self._ledger, self.seed, auto_create=auto_create)
        self.toloka = TolokaWorld(
            self._ledger,
            self.seed,
            auto_create=auto_create,
            operation_base_s=operation_base_s,
            operation_per_item_s=operation_per_item_s,
        )
        self._parts: tuple[ApiWorld, ...] = (self.perftest, self.toloka)
        self._owners = {kind: part for part in self._parts for kind in part.ADMIN_KINDS}
        records = self._ledger.store.load()
        self._ledger.load_counters(records)
        for part in self._parts:
            part.load(records)
        self._write_seed()

    def _write_seed(self) -> None:
        self._ledger.store.write([row for part in self._parts for row in part.seed_rows()])

    def reset(self) -> None:
        """Forget everything the APIs created and return pools and test projects to the seed.

        Id counters keep counting, so an id seen before a reset never names a different object after it.
        """
        with self._ledger.lock:
            for part in self._parts:
                part.forget()
            self._ledger.store.clear([kind for part in self._parts for kind in part.KINDS])
            self._write_seed()

    def close(self) -> None:
        with self._ledger.lock:
            self._ledger.store.close()

    def _catch_up(self) -> float:
        now = self.clock()
        for part in self._parts:
            part.catch_up(now)
        return now

    def _owner(self, kind: str) -> ApiWorld:
        part = self._owners.get(kind)
        if part is None:
            raise MissingObject("kind", kind)
        return part

    def snapshot(self) -> dict[str, list[dict[str, Any]]]:
        """Everything, for ``GET /_sandbox/objects``: tests count duplicates here."""
        with self._ledger.lock:
            now = self._catch_up()
            found: dict[str, list[dict[str, Any]]] = {}
            for part in self._parts:
                found.update(part.snapshot(now))
            return {kind: found[kind] for kind in OBJECT_KINDS}

    def delete_object(self, kind: str, key: str) -> None:
        with self._ledger.lock:
            self._catch_up()
            self._owner(kind).delete_object(kind, key)

    def patch_object(self, kind: str, key: str, fields: dict[str, Any]) -> dict[str, Any]:
        """Merge fields into an object (its id stays), as a person editing it in the console would."""
        with self._ledger.lock:
            self._catch_up()
            changes = {k: v for k, v in fields.items() if k != "id"}
            return self._owner(kind).patch_object(kind, key, changes)
