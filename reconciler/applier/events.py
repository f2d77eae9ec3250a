"""What apply tells a person or a pipeline while it runs, and what it reports at the end."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import NamedTuple


class EventType(StrEnum):
    """Every event apply emits; ``--json`` prints them as ``apply_<value>``."""

    RESOLVING = "resolving"  #: an intent an earlier apply left open is being looked into
    INTENT = "intent"  #: an intent was committed; its call is about to be sent
    CREATED = "created"  #: an address (or, for a large batch, ``size`` of them) was created
    UPDATED = "updated"  #: an address's remote object was changed in place
    DELETED = "deleted"  #: an address's remote object was deleted (or retired) and the address dropped
    ADOPTED = "adopted"  #: the object an interrupted create made was found and recorded
    FAILED = "failed"  #: the API refused an address, or it was not sent
    UNRESOLVED = "unresolved"  #: what became of an address is still unknown; the next apply looks again
    WARNING = "warning"  #: something worth a person's attention that changes nothing


class ApplyEvent(NamedTuple):
    """One event; ``size`` is how many addresses it stands for (a batch's ``created`` may stand for 5,000)."""

    type: EventType
    address: str | None = None
    operation_id: str | None = None
    remote_id: str | None = None
    message: str | None = None
    size: int = 1


@dataclass
class ApplyResult:
    """Counts of what apply did, and the addresses that need a person or another run."""

    created: int = 0
    updated: int = 0
    deleted: int = 0
    adopted: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    unresolved: list[tuple[str, str]] = field(default_factory=list)
    skipped: int = 0
    interrupted: bool = False
    stopped_by: str | None = None

    @property
    def ok(self) -> bool:
        return not self.failed and not self.unresolved and not self.interrupted and not self.stopped_by
