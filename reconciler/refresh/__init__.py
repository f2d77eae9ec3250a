"""Reading back what the state records, and finding remote objects the state has lost.

Refresh and discovery read the remote and never write it; what they return is for ``drift`` to report, for
``plan --refresh`` to plan against and for ``state refresh`` and ``state import --discover`` to record. Each
API reads in its own way (``toloka``: a paged listing per pool, never a request per suite; ``perftest``: one
``GET`` per task, in parallel, the listing lacking the cases), so each has its module here, and this one only
sends each provider's share to its module.

Unknown is not no. An object that could not be read is reported as unreadable with the error, never as gone
and never as in sync; a listing that could not be read matches nothing, so discovery adopts nothing of it.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from reconciler.errors import ProviderError
from reconciler.resources import Resource
from reconciler.state.base import ResourceRecord

if TYPE_CHECKING:
    from reconciler.providers import ProviderClient

__all__ = ["Discovery", "Match", "Read", "discover", "read_back", "settle_matches", "unreadable"]


@dataclass(frozen=True, slots=True)
class Read:
    """What refresh learnt of one recorded object: its view, ``None`` for gone, or the ``error`` that kept it
    from being read (then ``view`` is None too, and means nothing)."""

    address: str
    kind: str
    remote_id: str
    view: dict[str, Any] | None
    error: str | None = None

    @property
    def gone(self) -> bool:
        return self.view is None and self.error is None


@dataclass(frozen=True, slots=True)
class Match:
    """A remote object that matches a declared resource exactly, and no other resource matches it."""

    address: str
    remote_id: str
    view: dict[str, Any]


@dataclass(slots=True)
class Discovery:
    """What discovery found: exact one-to-one matches; ambiguities (an address with several matching objects,
    or an object matching several addresses), adopted by neither side; and what could not be read."""

    matches: list[Match] = field(default_factory=list)
    ambiguous: dict[str, list[str]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)


def unreadable(record: ResourceRecord, err: ProviderError) -> Read:
    return Read(record.address, record.kind, record.remote_id or "", None, str(err))


def read_back(
    records: Iterable[ResourceRecord], clients: Mapping[str, ProviderClient], *, parallelism: int
) -> list[Read]:
    """A read of every record that names a remote object, of a provider in ``clients``, in record order."""
    from reconciler.providers import TolokaClient
    from reconciler.refresh import perftest, toloka

    by_provider: dict[str, list[ResourceRecord]] = {}
    for record in records:
        if record.remote_id and record.provider in clients:
            by_provider.setdefault(record.provider, []).append(record)
    reads: dict[str, Read] = {}
    for name, mine in by_provider.items():
        client = clients[name]
        if isinstance(client, TolokaClient):
            found = toloka.read_suites(client, mine)
        else:
            found = perftest.read_tasks(client, mine, parallelism=parallelism)
        reads.update((read.address, read) for read in found)
    return [reads[r.address] for rs in by_provider.values() for r in rs]


def discover(
    resources: Sequence[Resource],
    clients: Mapping[str, ProviderClient],
    *,
    taken: Collection[str],
    parallelism: int,
) -> Discovery:
    """The remote objects that match ``resources`` exactly, leaving out the remote ids in ``taken`` (objects
    the state already names for other addresses)."""
    from reconciler.providers import TolokaClient
    from reconciler.refresh import perftest, toloka

    found = Discovery()
    by_provider: dict[str, list[Resource]] = {}
    for resource in resources:
        if resource.provider in clients:
            by_provider.setdefault(resource.provider, []).append(resource)
    for name, mine in by_provider.items():
        client = clients[name]
        if isinstance(client, TolokaClient):
            toloka.discover_suites(client, mine, taken=taken, into=found)
        else:
            perftest.discover_tasks(client, mine, taken=taken, into=found, parallelism=parallelism)
    return found


def settle_matches(candidates: Mapping[str, Sequence[tuple[str, dict[str, Any]]]], into: Discovery) -> None:
    """Adopt one-to-one only: an address with several matching objects, and an object that matches several
    addresses, go to ``ambiguous`` (each address with the ids it matched) and are adopted by neither."""
    claimed: dict[str, int] = {}
    for found in candidates.values():
        for remote_id, _ in found:
            claimed[remote_id] = claimed.get(remote_id, 0) + 1
    for address, found in candidates.items():
        if len(found) == 1 and claimed[found[0][0]] == 1:
            into.matches.append(Match(address, found[0][0], found[0][1]))
        elif found:
            into.ambiguous[address] = sorted(remote_id for remote_id, _ in found)
