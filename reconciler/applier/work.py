"""The unit of apply's work: one remote call under one intent, and what became of it.

A provider's module turns actions (or an intent an earlier run left open) into ``Call``s; the core records each
call's intent, runs the call on a worker thread, and records the ``Settlement`` the call returns. A call never
touches the state: that keeps every state write on the core's thread, in the order the rule needs (intent
committed, then the call sent, then its outcome committed).

Operation ids are deterministic (UUIDv5 of the lineage, the addresses, their spec hashes and attempts), so a
call resent after a crash carries the very id it carried the first time.
"""

from __future__ import annotations

import functools
import hashlib
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from reconciler.applier.events import ApplyEvent
from reconciler.plan import Action, ActionType
from reconciler.state.base import Intent, Outcome, PendingResource

#: Namespace of operation ids: UUIDv5(namespace, lineage|address|spec hash|attempt).
OPERATION_NAMESPACE = uuid.UUID("5b0f3f0e-6a43-4c1e-9d4e-2f1f7e3a9c11")


def operation_id(lineage: str, address: str, spec_hash: str, attempt: int) -> str:
    """The id of a call that creates one address."""
    return str(uuid.uuid5(OPERATION_NAMESPACE, f"{lineage}|{address}|{spec_hash}|{attempt}"))


def update_operation_id(lineage: str, address: str, written_by: str | None, spec_hash: str) -> str:
    """The id of a call that changes an existing object in place. Made from the intent that last wrote the
    resource (``written_by``), which every recorded update changes, so that changing a resource back to an
    earlier spec never reuses an id; a crash before the outcome leaves the intent open, and its resolution
    sends under the same id."""
    return str(uuid.uuid5(OPERATION_NAMESPACE, f"{lineage}|update|{address}|{written_by or 'imported'}|{spec_hash}"))


def delete_operation_id(lineage: str, address: str, written_by: str | None) -> str:
    """The id of a call that deletes (or retires) an existing object, made from the intent that last wrote it."""
    return str(uuid.uuid5(OPERATION_NAMESPACE, f"{lineage}|delete|{address}|{written_by or 'imported'}"))


class Member(Protocol):
    """What names an address's part in a call: an ``Action``, or a ``PendingResource`` an intent recorded."""

    @property
    def address(self) -> str: ...

    @property
    def spec_hash(self) -> str | None: ...

    @property
    def attempt(self) -> int: ...


def batch_operation_id(lineage: str, actions: Sequence[Member]) -> str:
    """The id of a call that creates several addresses at once. Its members name it, so a batch split in
    two gets two new ids, and a batch is never cut again with the same members once its intent is recorded
    (an address leaves an intent only with an outcome, or to a newer intent)."""
    members = "|".join([f"{a.address}@{a.spec_hash}#{a.attempt}" for a in actions])
    digest = hashlib.sha256(members.encode("utf-8")).hexdigest()
    return str(uuid.uuid5(OPERATION_NAMESPACE, f"{lineage}|batch|{digest}"))


def batch_fingerprint(spec_hashes: Sequence[str]) -> str:
    """Identifies a batch request: its items are a pure function of the members' specs, in order."""
    return hashlib.sha256("\n".join(spec_hashes).encode("ascii")).hexdigest()


def update_call(
    lineage: str, action: Action, *, intent_action: str, detail: dict[str, Any], run: Callable[[Intent], Settlement]
) -> Call:
    """An in-place update of one address under its own intent: the member is the resource as it will be."""
    intent = Intent(
        operation_id=update_operation_id(lineage, action.address, action.operation_id, action.spec_hash or ""),
        provider=action.provider,
        action=intent_action,
        addresses=(action.address,),
        fingerprint=action.spec_hash or "",
        detail=detail,
    )
    member = PendingResource(
        action.address, action.kind, action.provider, action.spec or {}, action.spec_hash or "", action.attempt
    )
    return Call(intent, [member], functools.partial(run, intent))


def delete_call(
    lineage: str, action: Action, *, intent_action: str, detail: dict[str, Any], run: Callable[[Intent], Settlement]
) -> Call:
    """A delete (or retirement) of one address under its own intent. Its member gets no outcome: once the call
    is done the intent is resolved and the address dropped (``Settlement.forget``), so a crash in between leaves
    the resource recorded, and the next ``--prune`` sends the delete again (gone is done)."""
    intent = Intent(
        operation_id=delete_operation_id(lineage, action.address, action.operation_id),
        provider=action.provider,
        action=intent_action,
        addresses=(action.address,),
        fingerprint=action.spec_hash or "",
        detail=detail,
    )
    member = PendingResource(action.address, action.kind, action.provider, {}, action.spec_hash or "", action.attempt)
    return Call(intent, [member], functools.partial(run, intent))


def pending_resources(actions: Sequence[Action]) -> list[PendingResource]:
    """What an intent will create, one per action; a replacement names the remote id it supersedes."""
    replace = ActionType.REPLACE
    return [
        PendingResource(
            a.address,
            a.kind,
            a.provider,
            a.spec or {},
            a.spec_hash or "",
            a.attempt,
            a.remote_id if a.type is replace else None,
        )
        for a in actions
    ]


@dataclass
class Settlement:
    """What became of a call: ``outcomes`` to record (``resolved`` closes the intent), addresses whose outcome
    is still unknown (``unresolved``, with ``why``), the remote id of an object adopted after an interrupted
    create, events to show, and ``stop`` when nothing more should be sent.

    ``then``: calls that take all the call's addresses over, when it is known to have created nothing and its
    addresses are better sent otherwise (a batch Toloka refused as too large, in two halves). The core records
    their intents, then closes this one, and sends them; when it stops first, the rest of the settlement is
    what it records, so it says what holds without them (the addresses unresolved, the intent open).
    """

    outcomes: list[Outcome] = field(default_factory=list)
    resolved: bool = False
    unresolved: Sequence[str] = ()
    why: str = ""
    adopted: str | None = None
    events: list[ApplyEvent] = field(default_factory=list)
    stop: str | None = None
    then: list[Call] = field(default_factory=list)
    #: The outcomes are in-place updates of existing objects, not creations.
    updated: bool = False
    #: Addresses the API refused to change, which keep the resource they had.
    refused: list[tuple[str, str]] = field(default_factory=list)
    #: Addresses whose object is gone (deleted, retired, or found gone): dropped from the state once resolved.
    forget: list[str] = field(default_factory=list)


@dataclass
class Call:
    """One remote call under ``intent``. ``resources`` is what the core records with the intent first; None
    when the intent is already recorded (an earlier run left it open). ``run`` happens on a worker thread."""

    intent: Intent
    resources: list[PendingResource] | None
    run: Callable[[], Settlement]

    @property
    def size(self) -> int:
        return len(self.intent.addresses)


@dataclass
class NotSent:
    """Actions refused before any intent: nothing was sent, and the state is left as it was."""

    addresses: list[str]
    why: str
