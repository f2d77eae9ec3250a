"""The checks a write of an intent or of outcomes makes, and the rows outcomes are written as.

Shared by both backends because the contract's refusals (``record_intent`` with resources that are not its
addresses, ``record_outcomes`` for an address its intent does not cover) must say the same on each, and
because both upsert outcomes from the same two JSON arrays of rows (plain creations, then the others), so the
rows are shaped, and errors redacted, once.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from reconciler.encoding import dumps_text
from reconciler.redaction import redact
from reconciler.state.base import Intent, Outcome, PendingResource, Status

__all__ = ["check_covers", "check_outcomes_covered", "outcome_rows"]


def check_covers(intent: Intent, resources: Sequence[PendingResource]) -> None:
    """Raise ValueError unless ``resources`` are exactly the intent's addresses, once each."""
    addresses = [r.address for r in resources]
    if len(set(addresses)) != len(addresses) or set(addresses) != set(intent.addresses):
        raise ValueError(f"the resources of intent {intent.operation_id} must be exactly its addresses, once each")


def check_outcomes_covered(operation_id: str, outcomes: Sequence[Outcome], covered: Iterable[str]) -> None:
    """Raise ValueError naming the first few outcomes for addresses outside ``covered`` (the intent's)."""
    addresses = set(covered)
    strays = [o[0] for o in outcomes if o[0] not in addresses]
    if strays:
        raise ValueError(f"outcomes for addresses outside intent {operation_id}: {strays[:5]}")


def outcome_rows(
    outcomes: Sequence[Outcome], member: dict[str, int]
) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """The rows of each store's ``_UPSERT_OUTCOMES``: plain creations, then the others; an address without a
    member is left out (its outcome is journalled only). A Status is a str (StrEnum): it encodes as its text."""
    ok = Status.CREATED
    created = [(a, r, member[a]) for a, s, r, e, v in outcomes if s is ok and e is None and v is None and a in member]
    if len(created) == len(outcomes):
        return created, []
    others = [
        (a, s, r, member[a], None if e is None else redact(e), None if v is None else dumps_text(v))
        for a, s, r, e, v in outcomes
        if not (s is ok and e is None and v is None) and a in member
    ]
    return created, others
