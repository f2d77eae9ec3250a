"""The state store: what reconciler remembers between runs, and the one protocol every backend implements.

What a store holds (every backend, same meaning):

- ``meta``: ``lineage``, a UUID fixed when the state is created (a plan made against one state can never be
  applied to another), ``serial``, incremented by every committed change (a plan made before a change is
  stale), and ``format_version``.
- ``resources``: one row per address: kind, provider, the spec that was sent and its hash, ``status``
  (``pending`` while an intent is unresolved, ``created``, ``failed``), the remote id once known, the
  operation id of the last intent, the attempt number, the last error, timestamps, and the last refreshed
  remote view.
- ``intents``: one row per remote call that may create something (a Toloka batch or one PerfTest task),
  committed *before* the call: operation id, provider, the ordered addresses it covers, the request
  fingerprint, provider-specific detail needed to resolve it after a crash, and whether it is resolved.
- ``journal``: append-only; every intent, outcome, import, forget and replacement, for audit and recovery.
- ``lock``: at most one holder, with operation, start time and expiry; a heartbeat keeps it alive, so a
  killed run blocks the next one only until its lock expires.

Every write method is one transaction and bumps ``serial`` once; writes are incremental (only the rows an
intent or outcome touches), never a rewrite of the whole state.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, NamedTuple, Protocol

FORMAT_VERSION = 3


class Status(StrEnum):
    PENDING = "pending"
    CREATED = "created"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class StateMeta:
    lineage: str
    serial: int
    format_version: int = FORMAT_VERSION


@dataclass(frozen=True, slots=True)
class ResourceSummary:
    """The few columns the planner needs for every resource; cheap to read for a million rows."""

    address: str
    kind: str
    provider: str
    spec_hash: str
    status: Status
    remote_id: str | None
    operation_id: str | None
    attempt: int


@dataclass(frozen=True, slots=True)
class ResourceRecord:
    address: str
    kind: str
    provider: str
    spec: dict[str, Any]
    spec_hash: str
    status: Status
    remote_id: str | None
    operation_id: str | None
    attempt: int
    error: str | None
    created_at: str
    updated_at: str
    remote: dict[str, Any] | None = None
    refreshed_at: str | None = None


class PendingResource(NamedTuple):
    """A resource an intent is about to create; ``replaces`` is the remote id it supersedes, if any.

    A named tuple, as ``Outcome``: a batch makes thousands, and a frozen dataclass costs twice as much to build.
    """

    address: str
    kind: str
    provider: str
    spec: dict[str, Any]
    spec_hash: str
    attempt: int
    replaces: str | None = None


@dataclass(frozen=True, slots=True)
class Intent:
    """A remote call that may create objects, recorded before it is sent.

    ``action`` is ``toloka_batch`` or ``perftest_create``; ``addresses`` are in request order (item ``i`` of
    a Toloka batch is ``addresses[i]``); ``detail`` holds what recovery needs (query options, the ids of
    same-named PerfTest tasks that existed before the call, ...).
    """

    operation_id: str
    provider: str
    action: str
    addresses: tuple[str, ...]
    fingerprint: str
    detail: dict[str, Any] = field(default_factory=dict)
    created_at: str = ""
    resolved: bool = False


class Outcome(NamedTuple):
    """What became of one address of an intent: ``created`` with a remote id, or ``failed`` and why."""

    address: str
    status: Status
    remote_id: str | None = None
    error: str | None = None
    remote: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class JournalEntry:
    seq: int
    at: str
    event: str
    address: str | None
    operation_id: str | None
    detail: dict[str, Any]


@dataclass(frozen=True, slots=True)
class LockInfo:
    lock_id: str
    holder: str
    operation: str
    started_at: str
    expires_at: str


class StateStore(Protocol):
    """Every method is keyword-only past ``self``; every write is one transaction that bumps ``serial``."""

    def meta(self) -> StateMeta: ...

    def summaries(self) -> Iterator[ResourceSummary]:
        """Every resource, streamed from one consistent snapshot, in no promised order."""

    def get(self, *, address: str) -> ResourceRecord | None: ...

    def get_many(self, *, addresses: Iterable[str]) -> dict[str, ResourceRecord]: ...

    def record_intent(self, *, intent: Intent, resources: Sequence[PendingResource]) -> None:
        """Commit the intent and mark its resources ``pending`` with its operation id, before any call.

        ``resources`` are exactly ``intent.addresses``; the store stamps ``created_at``. An operation id that
        is already recorded raises StateError: a resend reuses the open intent, it does not record another.
        """

    def record_outcomes(self, *, operation_id: str, outcomes: Sequence[Outcome], resolved: bool) -> None:
        """Commit what is known of an intent's addresses; ``resolved`` closes the intent.

        An unknown operation id raises StateError. A row whose latest intent is another one is left as it is
        (the outcome still goes to the journal).
        """

    def update_intent_detail(self, *, operation_id: str, detail: dict[str, Any]) -> None:
        """Replace an open intent's detail (e.g. once the request was sent), without bumping the serial."""

    def open_intents(self) -> list[Intent]: ...

    def forget(self, *, address: str) -> None:
        """Drop a resource from the state (the remote object stays); raises UnknownAddressError."""

    def import_resource(
        self, *, address: str, kind: str, provider: str, remote_id: str, spec: dict[str, Any], spec_hash: str
    ) -> None:
        """Adopt an existing remote object as ``created``; raises StateError if the address is known."""

    def record_refresh(self, *, views: Sequence[tuple[str, dict[str, Any] | None]]) -> None:
        """Store the remote view of each address as last read (``None``: the object is gone)."""

    def history(self, *, address: str | None = None, limit: int = 100) -> list[JournalEntry]:
        """The latest ``limit`` journal entries (of ``address`` only, if given), oldest first."""

    def acquire_lock(self, *, holder: str, operation: str, ttl: float) -> LockInfo:
        """Take the lock, or raise StateLockedError naming the holder; an expired lock is taken over."""

    def renew_lock(self, *, lock_id: str, ttl: float) -> None:
        """Extend our lock; raises StateLockedError if it was broken and taken by someone else, StateError if
        it was broken and nobody holds it."""

    def release_lock(self, *, lock_id: str) -> None: ...

    def force_unlock(self, *, lock_id: str) -> None:
        """Break a lock by id (``state unlock``); raises StateError if no lock has that id."""

    def current_lock(self) -> LockInfo | None: ...

    def close(self) -> None: ...
