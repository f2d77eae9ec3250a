"""The state store contract: what reconciler remembers between runs, whatever keeps it.

Every backend (SQLite now, PostgreSQL next) implements ``StateStore`` with exactly these meanings; the suite in
``tests/state`` (``test_store_contract.py``, ``test_lock_contract.py``, ``test_crash_contract.py``) runs
against each. A backend chooses its own tables and encodings; only what follows is promised.

What a state holds:

- **meta**: ``lineage``, a UUID fixed when the state is created (a plan made against one state is never
  applied to another); ``serial``, bumped by every committed change (a plan made before a change is stale);
  ``format_version``, the backend's layout version (``FORMAT_VERSION``).
- **resources**: what reconciler created or adopted, one per address: kind, provider, the spec sent and its
  hash, ``status`` (``created``, ``failed``, or ``pending``: see below), the remote id once known, the
  operation id of the intent that last wrote it, attempt, last error, ``created_at`` (when the address first
  appeared; kept by later writes), ``updated_at``, and the last refreshed remote view with its time.
- **intents**: one per remote call that may create objects, committed *before* the call: an operation id
  (unique forever), provider, ``action``, the addresses it covers in request order, a request fingerprint,
  ``detail`` (what the provider needs to settle the call after a crash), its time, and whether it is
  resolved. Its **members** are what each address will be if the call creates it (a ``PendingResource``:
  kind, provider, spec, spec hash, attempt, and the remote id it replaces, if any).
- **outcomes**: what became of an address of an intent (``Outcome``: created with a remote id and maybe a
  remote view, or failed with an error).
- **journal**: every change, as entries numbered 1, 2, 3, ... with no gap, never rewritten or removed.
- **lock**: at most one holder, with lock id, holder, operation, start and expiry.

Invariants:

- *Intent before call.* ``record_intent`` returns only once the intent is durable: a process killed right
  after (even by a power cut) leaves it in ``open_intents``, with its addresses pending.
- *Outcomes for the intent's addresses only.* ``record_outcomes`` refuses an address the intent does not
  cover (ValueError) and an unknown operation id (StateError). An outcome makes its address's resource say
  the outcome, with kind, provider, spec, hash and attempt as its member said, unless the resource was last
  written by a newer intent: then only the journal gets it. An intent may get outcomes in several calls.
- *A resolved intent closes.* ``resolved=True`` takes it out of ``open_intents`` for good; addresses it left
  without an outcome keep the resource they had (none, if they had none).
- *Pending.* An address is ``pending`` while an open intent covers it and that intent is newer (recorded later)
  than whatever last wrote its resource: no resource, an imported one, or one written by an older intent.
  It then reads as the newest such intent's member: status pending, that operation id, no remote id, no
  error, no remote view, ``updated_at`` the intent's time, ``created_at`` kept from the resource if there is
  one. ``forget`` and ``import_resource`` refuse a pending address (StateError saying it is pending and naming
  ``reconciler apply``): the interrupted call may have created it.
- *Serial.* Each committed call of ``record_intent``, ``record_outcomes``, ``forget``, ``import_resource``
  and ``record_refresh`` bumps ``serial`` exactly once (a call with nothing to write, such as no outcomes and
  ``resolved=False``, or no views, commits nothing). Lock methods never bump it. A refused call changes
  nothing at all, journal included.
- *One transaction per write.* Every write method above, and every lock method, is one transaction: all of
  it is committed or none. Concurrent writers (threads, processes, machines) are serialised and lose nothing.
  ``summaries`` streams one consistent snapshot without holding up writers; every other read sees one
  snapshot of committed data. Writes touch only the rows they concern, never the whole state.
- *Journal.* Append-only, in commit order. Entries (event: detail): ``intent``: ``spec_hash``, ``attempt``;
  ``replaced``: ``remote_id``; an outcome's ``created`` or ``failed``: ``remote_id`` and ``error``,
  each only if set; ``resolved``: ``{}``; ``forgotten``: ``kind``, ``provider``, ``remote_id``,
  ``status``, ``spec_hash``; ``imported``: ``kind``, ``provider``, ``remote_id``, ``spec_hash``;
  ``refreshed``: ``count`` (rows updated), ``gone`` (views that were None); ``lock_taken_over``: ``lock_id``,
  ``holder``, ``operation``, ``expired_at``; ``lock_broken``: ``lock_id``, ``holder``, ``operation``,
  ``since``. ``record_intent`` journals an ``intent`` entry per address, in the order given, then a
  ``replaced`` entry per address replacing an object; ``record_outcomes`` an entry per outcome, in the order
  given, then ``resolved`` if it resolves. Entries of one write share its time and operation id.
- *Lock.* A lease (``held_lock`` in ``reconciler.state.lock`` holds it for a run). ``acquire_lock`` takes a
  free or expired lock (journalling ``lock_taken_over`` for an expired one) or raises StateLockedError naming
  the holder. ``renew_lock`` extends our lock, even lapsed, while nobody has taken it; it raises
  StateLockedError if someone has, StateError if it was broken and is free. ``release_lock`` of a lock no
  longer ours does nothing. ``force_unlock`` breaks the lock with that id (journalling ``lock_broken``), or
  raises StateError. Expiry is judged by the store's clock.
- *Fencing.* The state keeps a lock generation: ``acquire_lock`` and ``force_unlock`` each raise it by one,
  in their own transaction, and ``acquire_lock`` returns it (``LockInfo.generation``; ``current_lock`` shows the
  current one). After ``fence(generation=g)``, every write of that store object (the lock's own methods
  excepted) first checks, inside its transaction, that the generation is still ``g``, and otherwise raises
  LeaseLostError and changes nothing: a holder suspended past its TTL, whose lock another run has taken
  since, can record nothing when it wakes. ``fence(generation=None)`` lifts the check.
- *Only a state is opened; unknown is not no.* A location that holds nothing (no file, no row, no schema) is
  no state. A command that writes creates a state there (new lineage, or the one it is given; serial 0), and
  the new state is complete and durable where a copy would find it (for SQLite: in the main file, not only its
  -wal) before anything else sees it or is written to it. A command that only reads opens the state read-only,
  never creates it (``StateAbsentError``; ``plan`` then plans against an empty state and says so) and never
  changes a byte of it (nor merges a -wal into it). Anything else that is not a complete reconciler state is
  refused with StateError saying what it is and what to do, and left untouched, never initialised over: an
  empty (0-byte) file, a database of something else, a state without its lineage, serial or format, a copy
  that lacks changes recorded elsewhere (a SQLite file copied without its -wal while a run was writing it). A
  state of a newer format is refused with StateVersionError; an older format is upgraded in place, once, in
  one transaction, keeping lineage, serial, resources, open intents and journal as they read before (read-only:
  upgraded in a copy, the stored state untouched). A row that cannot be read as the format says (undecodable
  JSON, an unknown status, a missing member) raises StateError "the state ... is damaged: ..." naming it.
- *Copies.* ``copy_to`` writes one consistent snapshot of the state to a file (a SQLite state file, whatever
  the backend). ``restore_from`` replaces the whole state by such a file, in one transaction, after checking it
  as any state is checked when opened; it refuses (StateError, nothing changed) a file of another lineage or
  an older serial, unless forced, except into an empty state (serial 0, nothing recorded). The caller holds
  the lock, which the restored state keeps; the serial becomes one more than the larger of both, so no plan
  made against either applies; the journal gets a ``pushed`` entry (``lineage``, ``serial``,
  ``replaced_lineage``, ``replaced_serial``).
- *Times* are UTC ISO 8601 text of fixed width with microseconds and a ``Z`` (``2026-01-02T03:04:05.000006Z``),
  so they sort as strings.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, NamedTuple, Protocol

FORMAT_VERSION = 4


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
    """What an intent's call will make of one address (a member of the intent); ``replaces`` is the remote id
    it supersedes, if any.

    A named tuple, as ``Outcome``: one call may cover thousands, and a frozen dataclass costs twice as much to
    build.
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

    ``addresses`` are in request order (item ``i`` of the request is ``addresses[i]``). ``action`` names the
    kind of call and ``detail`` holds what its provider needs to settle it after a crash; the store keeps both
    as given and reads neither.
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
    generation: int = 0


class StateStore(Protocol):
    """The contract of the module docstring. Every method is keyword-only past ``self``."""

    def meta(self) -> StateMeta: ...

    def summaries(self) -> Iterator[ResourceSummary]:
        """Every resource, pending ones included, streamed from one consistent snapshot, in no promised order."""

    def get(self, *, address: str) -> ResourceRecord | None: ...

    def get_many(self, *, addresses: Iterable[str]) -> dict[str, ResourceRecord]:
        """The known ones of ``addresses`` (duplicates and unknown addresses allowed), by address."""

    def record_intent(self, *, intent: Intent, resources: Sequence[PendingResource]) -> None:
        """Commit the intent, whose members are ``resources``, before its call: its addresses are pending from now.

        ``resources`` cover exactly ``intent.addresses``, once each (else ValueError); the store stamps
        ``created_at``. An operation id already recorded raises StateError: a resend reuses the open intent.
        """

    def record_outcomes(self, *, operation_id: str, outcomes: Sequence[Outcome], resolved: bool) -> None:
        """Commit what is known of some of an intent's addresses; ``resolved`` closes the intent.

        An unknown operation id raises StateError; an address outside the intent, ValueError. A resource last
        written by a newer intent is left as it is (the outcome still goes to the journal).
        """

    def open_intents(self) -> list[Intent]:
        """Unresolved intents, oldest first."""

    def forget(self, *, address: str) -> None:
        """Drop a resource from the state (the remote object stays); raises UnknownAddressError, or StateError
        for a pending address."""

    def import_resource(
        self, *, address: str, kind: str, provider: str, remote_id: str, spec: dict[str, Any], spec_hash: str
    ) -> None:
        """Adopt an existing remote object as ``created`` (attempt 0, no operation id); raises StateError if the
        address is known or pending."""

    def record_refresh(self, *, views: Sequence[tuple[str, dict[str, Any] | None]]) -> None:
        """Store the remote view of each address as last read (``None``: the object is gone); addresses not in
        the state are skipped."""

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

    def fence(self, *, generation: int | None) -> None:
        """Refuse this object's later writes (LeaseLostError) unless the lock generation is still ``generation``."""

    def copy_to(self, *, path: Path) -> StateMeta:
        """Write a consistent copy of the state to the file ``path`` (replaced if it exists); returns its meta."""

    def restore_from(self, *, path: Path, force: bool) -> tuple[StateMeta, int, StateMeta]:
        """Replace the state by the state file at ``path`` (see *Copies*); returns the replaced state's meta and
        resource count, and the meta now."""

    def close(self) -> None: ...
