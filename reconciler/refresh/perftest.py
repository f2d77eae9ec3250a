"""PerfTest's share of refresh and discovery: a ``GET`` per task, in parallel within the provider's rate limit
(the HTTP client's limiter is shared by the threads), because the listing carries no case list to compare.

CPTS answers a deleted task with 403 ``SVCSTG.CPTS.4032002``, read as gone (``PerfTestClient.get_task``);
every other failure leaves the task unreadable. Discovery lists each test project once, keeps the tasks of a
resource's name, and reads each of those to compare its body.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from reconciler.drift import remote_diff
from reconciler.errors import ProviderError
from reconciler.providers.perftest import PerfTestClient
from reconciler.refresh import Discovery, ObjectRef, Read, settle_matches, unreadable
from reconciler.resources import Resource

T = TypeVar("T")
R = TypeVar("R")


def _in_parallel(work: Callable[[T], R], items: Sequence[T], parallelism: int) -> Iterator[R]:
    if len(items) <= 1:
        yield from map(work, items)
        return
    with ThreadPoolExecutor(max_workers=max(1, min(parallelism, len(items))), thread_name_prefix="read") as pool:
        yield from pool.map(work, items)


def read_tasks(client: PerfTestClient, records: Sequence[ObjectRef], *, pool: ThreadPoolExecutor) -> Iterator[Read]:
    """Sent to ``pool`` at once (before the first result is asked for): the reads go on while the caller works."""

    def read(record: ObjectRef) -> Read:
        remote_id = record.remote_id or ""
        if not (remote_id.isascii() and remote_id.isdigit()):
            why = f"the state names {remote_id!r}, which is not a PerfTest task id"
            return Read(record.address, record.kind, remote_id, None, why)
        try:
            view = client.get_task(int(remote_id))
        except ProviderError as err:
            return unreadable(record, err)
        return Read(record.address, record.kind, remote_id, view)

    return pool.map(read, records)


def discover_tasks(
    client: PerfTestClient,
    resources: Sequence[Resource],
    *,
    taken: Collection[str],
    into: Discovery,
    parallelism: int,
) -> None:
    named = _named_candidates(client, resources, taken=taken, into=into)
    wanted = sorted({task_id for ids in named.values() for task_id in ids}, key=int)

    def read(task_id: str) -> tuple[str, dict[str, Any] | None | ProviderError]:
        try:
            return task_id, client.get_task(int(task_id))
        except ProviderError as err:
            return task_id, err

    views = dict(_in_parallel(read, wanted, parallelism))
    candidates: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for resource in resources:
        ids = named.get(resource.address)
        if ids is None:
            continue
        failed = [(i, v) for i in ids if isinstance(v := views[i], ProviderError)]
        if failed:
            task_id, err = failed[0]
            into.errors.append(f"{resource.address}: task {task_id}, of the same name, could not be read: {err}")
            continue
        candidates[resource.address] = [
            (i, view)
            for i in ids
            if isinstance(view := views[i], dict)
            and not remote_diff(resource.kind, resource.address, resource.spec, view)
        ]
    settle_matches(candidates, into)


def _named_candidates(
    client: PerfTestClient, resources: Sequence[Resource], *, taken: Collection[str], into: Discovery
) -> dict[str, list[str]]:
    """The ids of each resource's same-named tasks in its test project, from one listing per project."""
    by_project: dict[int, list[Resource]] = {}
    for resource in resources:
        by_project.setdefault(int(resource.spec["project_id"]), []).append(resource)
    named: dict[str, list[str]] = {}
    for project, mine in by_project.items():
        try:
            listed = client.list_tasks(project)
        except ProviderError as err:
            into.errors.append(f"the tasks of test project {project} could not be listed, so none was adopted: {err}")
            continue
        by_name: dict[str, list[str]] = {}
        for task in listed:
            if str(task["id"]) not in taken:
                by_name.setdefault(task["name"], []).append(str(task["id"]))
        for resource in mine:
            named[resource.address] = by_name.get(str(resource.spec["name"]), [])
    return named
