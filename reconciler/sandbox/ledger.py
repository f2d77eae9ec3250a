"""What every API's part of the world shares: one lock, one clock, the id counters and the store.

Both APIs' parts write through the same ledger so that one lock orders every change, whichever API or admin
call makes it, and each change reaches the store in one transaction with the counters it advanced: a restarted
sandbox never hands out an id it had already acknowledged. The errors are here because every part raises them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from .persistence import Row, Store

Clock = Callable[[], float]


class WorldError(Exception):
    """Base of what the world refuses; route modules turn these into each API's error answers."""


class LogArchived(WorldError):
    """The log of an operation older than Toloka keeps logs for (a month): the operation stays readable."""

    def __init__(self, operation_id: str) -> None:
        self.operation_id = operation_id
        super().__init__(f"the log of operation {operation_id} is archived")


class MissingObject(WorldError):
    def __init__(self, kind: str, key: object) -> None:
        self.kind = kind
        self.key = key
        super().__init__(f"{kind} {key} does not exist")


class Ledger:
    """The lock every public method of the world holds, its clock, its store, and the last id of each counter.

    One lock for both APIs: the server answers from a single event loop, but a test or the CLI may look at the
    world from another thread, and an admin call spans both APIs' parts.
    """

    def __init__(self, store: Store, clock: Clock = time.time) -> None:
        self.store = store
        self.clock = clock
        self.lock = threading.RLock()
        self._counters: dict[str, int] = {}

    def start_counter(self, name: str, last: int) -> None:
        """Declare a counter; ``last`` is the id before the first one handed out."""
        self._counters[name] = last

    def raise_counter(self, name: str, at_least: int) -> None:
        """Never hand out ``at_least`` or below: it is taken (by a seed, the console, or before a restart)."""
        self._counters[name] = max(self._counters.get(name, 0), at_least)

    def load_counters(self, records: dict[str, dict[str, Any]]) -> None:
        for name, value in records.get("counters", {}).items():
            self.raise_counter(name, int(value))

    def next_id(self, name: str) -> int:
        self._counters[name] += 1
        return self._counters[name]

    def counter_row(self, name: str) -> Row:
        return ("counters", name, self._counters[name])
