"""A resource row read as what the store hands out, and a row that cannot be read named as damage.

Shared by both backends because they keep the same row forms: a resource row's first columns are a record's
fields in ``ResourceRecord`` order (spec and remote view as JSON text, status as its text), a member row leaves
kind, provider, spec hash, attempt and spec to its intent's members, whose heads are (address, kind, provider,
spec hash, attempt, replaced id), and an address an open intent covers reads as that intent's member (see
``reconciler.state.sqlite.overlay``). Decoding them here once keeps a row reading the same, and a damaged one
reported in the same words, whichever backend holds it; each backend only fetches its rows.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import orjson

from reconciler.errors import StateError
from reconciler.state.base import ResourceRecord, ResourceSummary, Status

__all__ = [
    "STATUS",
    "damaged",
    "member_record",
    "member_summary",
    "open_members",
    "pending_record",
    "pending_refusal",
    "pending_summary",
    "record_of_row",
    "summaries",
]

STATUS = {s.value: s for s in Status}


def summaries(rows: list[tuple[Any, ...]]) -> Iterator[ResourceSummary]:
    """Summary tuples (a ``ResourceSummary``'s fields, status as its text) as summaries; a status of None
    stands for a row a backend found holding a value of the wrong type."""
    status = STATUS
    try:
        for a, k, p, h, s, r, o, n in rows:
            yield ResourceSummary(a, k, p, h, status[s], r, o, n)
    except KeyError:
        if s is None:
            raise ValueError(f"the resource row {a!r} holds a value of the wrong type") from None
        raise ValueError(f"resource {a} has the unknown status {s!r}") from None


def record_of_row(row: Sequence[Any], *, spec: dict[str, Any] | None = None) -> ResourceRecord:
    """A row whose first 14 columns are a record's fields (spec and remote view as JSON text; the columns after
    them are the backend's own) as a record; with ``spec`` given, that decoded spec instead of the row's."""
    address, kind, provider, spec_text, spec_hash, status, remote_id, operation_id, attempt, *rest = row
    error, created_at, updated_at, remote, refreshed_at = rest[:5]
    if status not in STATUS:
        raise ValueError(f"resource {address} has the unknown status {status!r}")
    try:
        decoded_spec = orjson.loads(spec_text) if spec is None else spec
        decoded_remote = None if remote is None else orjson.loads(remote)
    except orjson.JSONDecodeError as e:
        raise ValueError(f"resource {address}: its spec or remote view is not JSON ({e})") from e
    return ResourceRecord(
        address=address,
        kind=kind,
        provider=provider,
        spec=decoded_spec,
        spec_hash=spec_hash,
        status=STATUS[status],
        remote_id=remote_id,
        operation_id=operation_id,
        attempt=attempt,
        error=error,
        created_at=created_at,
        updated_at=updated_at,
        remote=decoded_remote,
        refreshed_at=refreshed_at,
    )


def member_summary(row: Sequence[Any], head: Sequence[Any]) -> tuple[Any, ...]:
    """A member row's summary tuple, with what it leaves to its member filled in from the member's head."""
    _, kind, provider, spec_hash, attempt, _ = head
    return (row[0], kind, provider, spec_hash, row[4], row[5], row[6], attempt)


def member_record(row: Sequence[Any], head: Sequence[Any], spec: dict[str, Any]) -> ResourceRecord:
    """A member row as a record, with what it leaves to its member filled in from the member's head and spec."""
    _, kind, provider, spec_hash, attempt, _ = head
    return record_of_row((row[0], kind, provider, None, spec_hash, *row[5:8], attempt, *row[9:]), spec=spec)


def open_members(heads: str, specs: str | None, want: set[str] | None) -> Iterator[list[Any]]:
    """An open intent's members (its JSON heads and specs) as head + spec (None if specs were left unread), of
    the addresses in ``want`` only, if given."""
    decoded = orjson.loads(heads)
    member_specs = [None] * len(decoded) if specs is None else orjson.loads(specs)
    for head, spec in zip(decoded, member_specs, strict=True):
        if want is None or head[0] in want:
            yield [*head, spec]


def pending_summary(address: str, operation_id: str, member: Sequence[Any]) -> tuple[Any, ...]:
    """The summary tuple of an address an open intent is creating (``member`` as ``open_members`` gives it)."""
    _, kind, provider, spec_hash, attempt, _, _ = member
    return (address, kind, provider, spec_hash, Status.PENDING.value, None, operation_id, attempt)


def pending_record(
    address: str, operation_id: str, at: str, member: Sequence[Any], created_at: str | None
) -> ResourceRecord:
    """The record of an address an open intent (recorded ``at``) is creating; ``created_at`` is its row's."""
    _, kind, provider, spec_hash, attempt, _, spec = member
    return ResourceRecord(
        address=address,
        kind=kind,
        provider=provider,
        spec=spec,
        spec_hash=spec_hash,
        status=Status.PENDING,
        remote_id=None,
        operation_id=operation_id,
        attempt=attempt,
        error=None,
        created_at=created_at or at,
        updated_at=at,
    )


def pending_refusal(address: str, operation_id: str, what: str) -> str:
    """Why ``what`` is refused for an address an open intent is creating: it may exist remotely already."""
    return (
        f"{address} is pending: an interrupted apply (operation {operation_id}) may have created it. Run "
        f"`reconciler apply` to find out, or `reconciler state import {address} REMOTE_ID ...` if you know "
        f"the remote object, before you {what}"
    )


def damaged(shown: object, e: Exception) -> StateError:
    """The error for a row of the state ``shown`` that cannot be read as the format says: undecodable JSON, an
    unknown status, a missing member (a ValueError says which)."""
    if isinstance(e, orjson.JSONDecodeError):
        return StateError(f"the state {shown} is damaged: a JSON column holds text that is not JSON ({e})")
    detail = str(e) if isinstance(e, ValueError) else f"a row is not as its format says ({type(e).__name__}: {e})"
    return StateError(f"the state {shown} is damaged: {detail}")
