"""Toloka's share of refresh and discovery: one paged listing per pool (``iter_pool_suites``), never a request
per suite, so reading back 100,000 suites costs about a hundred requests.

A suite the state names that a complete listing of its pool lacks is gone. Toloka keeps no id of ours on a
suite, so discovery recognises a suite by its content (``drift.matching_suites``), as recovery without an
operation's log does.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping, Sequence

from reconciler.drift import matching_suites
from reconciler.errors import ProviderError
from reconciler.providers.toloka import TolokaClient
from reconciler.refresh import Discovery, ObjectRef, Read, settle_matches, unreadable
from reconciler.resources import Resource


def read_suites(client: TolokaClient, records: Sequence[ObjectRef], pools: Mapping[str, str]) -> Iterator[Read]:
    """A read of each recorded suite, from one listing of each pool the records name (``pools``: each
    address's pool id, from the spec the state records)."""
    by_pool: dict[str, list[ObjectRef]] = {}
    for record in records:
        by_pool.setdefault(pools[record.address], []).append(record)
    for pool_id, mine in by_pool.items():
        wanted = {record.remote_id for record in mine}
        try:
            listed = {s["id"]: s for s in client.iter_pool_suites(pool_id) if s["id"] in wanted}
        except ProviderError as err:
            yield from (unreadable(record, err) for record in mine)
            continue
        for record in mine:
            yield Read(record.address, record.kind, record.remote_id or "", listed.get(record.remote_id or ""))


def discover_suites(
    client: TolokaClient, resources: Sequence[Resource], *, taken: Collection[str], into: Discovery
) -> None:
    """Match each resource with the suites of its pool that hold exactly its content; a pool whose listing
    cannot be read adopts nothing (its error goes to ``into.errors``)."""
    by_pool: dict[str, list[Resource]] = {}
    for resource in resources:
        by_pool.setdefault(str(resource.spec.get("pool_id")), []).append(resource)
    for pool_id, mine in by_pool.items():
        try:
            listed = (s for s in client.iter_pool_suites(pool_id) if s["id"] not in taken)
            candidates = matching_suites(((r.address, r.kind, r.spec) for r in mine), listed)
        except ProviderError as err:
            into.errors.append(f"the suites of pool {pool_id} could not be listed, so none was adopted: {err}")
            continue
        settle_matches(candidates, into)
