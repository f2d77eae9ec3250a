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

from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from reconciler.drift import one_to_one
from reconciler.errors import ProviderError
from reconciler.resources import Resource

if TYPE_CHECKING:
    from reconciler.providers import ProviderClient

__all__ = ["Discovery", "Match", "ObjectRef", "Read", "Reader", "discover", "settle_matches", "unreadable"]


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


def unreadable(record: ObjectRef, err: ProviderError) -> Read:
    return Read(record.address, record.kind, record.remote_id or "", None, str(err))


class ObjectRef(Protocol):
    """What a read needs of a recorded object (a ``ResourceSummary`` or a ``ResourceRecord`` has it)."""

    @property
    def address(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def provider(self) -> str: ...
    @property
    def remote_id(self) -> str | None: ...


class Reader:
    """Reads in two steps, so that PerfTest's reads, bound by its rate limit rather than by this process, run
    while the caller does the rest: ``start`` sends them off in the background (they need only the remote ids),
    ``finish`` lists each Toloka pool (that needs the recorded specs, for the pool ids), then waits for them."""

    def __init__(self, clients: Mapping[str, ProviderClient], *, parallelism: int) -> None:
        self.clients = clients
        self.parallelism = parallelism
        self._order: list[str] = []
        self._toloka: dict[str, list[ObjectRef]] = {}
        self._pending: list[Iterator[Read]] = []
        self._pool: ThreadPoolExecutor | None = None

    def __enter__(self) -> Reader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)

    def start(self, objects: Iterable[ObjectRef]) -> None:
        from reconciler.providers import TolokaClient
        from reconciler.refresh import perftest

        by_provider: dict[str, list[ObjectRef]] = {}
        for ref in objects:
            if ref.remote_id and ref.provider in self.clients:
                by_provider.setdefault(ref.provider, []).append(ref)
                self._order.append(ref.address)
        for name, mine in by_provider.items():
            client = self.clients[name]
            if isinstance(client, TolokaClient):
                self._toloka[name] = mine
                continue
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=self.parallelism, thread_name_prefix="read")
            self._pending.append(perftest.read_tasks(client, mine, pool=self._pool))

    def finish(self, pools: Mapping[str, str], early: Callable[[list[Read]], None] | None = None) -> list[Read]:
        """Every read, in the order ``start`` was given the objects; ``pools``: each suite address's pool id.
        ``early`` gets Toloka's reads as soon as they are in, before PerfTest's are waited for."""
        from reconciler.providers import TolokaClient
        from reconciler.refresh import toloka

        reads: dict[str, Read] = {}
        for name, mine in self._toloka.items():
            client = self.clients[name]
            assert isinstance(client, TolokaClient)
            reads.update((read.address, read) for read in toloka.read_suites(client, mine, pools))
        if early is not None:
            early(list(reads.values()))
        for pending in self._pending:
            reads.update((read.address, read) for read in pending)
        return [reads[address] for address in self._order]


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
    """Adopt one to one only (``drift.one_to_one``): the rest that matched anything go to ``ambiguous``."""
    matched, ambiguous = one_to_one(candidates)
    into.matches += [Match(address, remote_id, view) for address, (remote_id, view) in matched.items()]
    into.ambiguous.update(ambiguous)
