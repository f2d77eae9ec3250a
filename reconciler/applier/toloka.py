"""Applying to Toloka: suites go in batches, one intent and one asynchronous operation per batch.

The operation id travels with the request (``async_mode=true&operation_id=...``), and Toloka refuses a second
operation with the same id, so a batch is resent under its id after any failure. Reading the operation tells
everything: 404 means it was never accepted (send the very same request again); else wait for it and read its
log, whose entries carry each item's index and so map back to addresses. A create answered 2xx in a shape the
client cannot read (``OutcomeUnknownError``) was acted on: its operation is read by id, as after a lost answer.

Suites are grouped by pool and options (the options are the request's query parameters, shared by a batch),
then cut at the provider's batch size and at ``MAX_BATCH_INPUT_BYTES`` of inputs. Batches are cut as the
core asks for them, so the first is on its way before the others are measured.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterator, Sequence
from typing import Any, NamedTuple

from reconciler.applier.work import (
    Call,
    NotSent,
    Settlement,
    batch_fingerprint,
    batch_operation_id,
    pending_resources,
)
from reconciler.encoding import content_hash, dumps
from reconciler.errors import EndpointError, OutcomeUnknownError, PermanentProviderError, ProviderError
from reconciler.plan import Action
from reconciler.providers.toloka import (
    MAX_BATCH_INPUT_BYTES,
    MAX_BATCH_ITEMS,
    Operation,
    TolokaClient,
    batch_request,
    created_ids,
    item_results,
)
from reconciler.state.base import Intent, Outcome, StateStore, Status

INTENT_ACTION = "toloka_batch"
#: Uploads at once, per provider: while Toloka acknowledges one batch the next is already on its way, so it
#: is never left waiting for this process to start the next upload; more only compete for the same CPU.
UPLOADS_AT_ONCE = 2


class TolokaModule:
    """The calls that create one provider's task suites and settle what earlier runs left open."""

    def __init__(
        self,
        *,
        name: str,
        client: TolokaClient,
        store: StateStore,
        lineage: str,
        max_batch_input_bytes: int = MAX_BATCH_INPUT_BYTES,
        **_: object,
    ) -> None:
        self.name = name
        self.client = client
        self.store = store
        self.lineage = lineage
        self.batch_size = min(client.batch_size, MAX_BATCH_ITEMS)
        self.max_batch_input_bytes = max_batch_input_bytes
        self._uploads = threading.BoundedSemaphore(UPLOADS_AT_ONCE)

    def creations(self, actions: list[Action]) -> Iterator[Call | NotSent]:
        for batch in cut_batches(actions, batch_size=self.batch_size, max_input_bytes=self.max_batch_input_bytes):
            specs = [a.spec or {} for a in batch]
            items, options = batch_request(specs)
            intent = Intent(
                operation_id=batch_operation_id(self.lineage, batch),
                provider=self.name,
                action=INTENT_ACTION,
                addresses=tuple([a.address for a in batch]),
                fingerprint=batch_fingerprint([a.spec_hash or "" for a in batch]),
                detail={"options": options, "pool_id": specs[0].get("pool_id"), "items": len(items)},
            )
            yield Call(intent, pending_resources(batch), functools.partial(self._send, intent, items, options))

    def resolution(self, intent: Intent) -> Call:
        """Read the operation; if Toloka never accepted it, send the recorded request again under its id."""
        return Call(intent, None, functools.partial(self._resolve, intent, self._recorded_request(intent)))

    def _recorded_request(self, intent: Intent) -> tuple[list[dict[str, Any]], dict[str, bool]] | None:
        """The request as the intent recorded it, rebuilt from the recorded specs; None if they no longer match
        its fingerprint. Read here, on the writing thread: the state is not read from workers."""
        records = self.store.get_many(addresses=intent.addresses)
        specs = [records[a].spec for a in intent.addresses]
        if batch_fingerprint([content_hash(spec) for spec in specs]) != intent.fingerprint:
            return None
        return batch_request(specs)

    # --- on a worker thread ------------------------------------------------------------------------------------

    def _send(self, intent: Intent, items: list[dict[str, Any]], options: dict[str, bool]) -> Settlement:
        try:
            with self._uploads:
                self.client.create_task_suites_async(operation_id=intent.operation_id, items=items, options=options)
        except EndpointError as err:
            failed = [Outcome(a, Status.FAILED, error=f"not sent: {err}") for a in intent.addresses]
            return Settlement(failed, resolved=True, stop=str(err))
        except OutcomeUnknownError:
            # Toloka answered 2xx in a shape we cannot read: it acted. Read the operation by its id; until it is
            # read the intent stays open, and the next run reads it again (never a new operation id).
            return self._collect(intent)
        except PermanentProviderError as err:
            failed = [Outcome(a, Status.FAILED, error=f"rejected: {err}") for a in intent.addresses]
            return Settlement(failed, resolved=True)
        except ProviderError as err:
            return Settlement(unresolved=intent.addresses, why=f"{err}; run apply again to resolve it")
        return self._collect(intent)

    def _resolve(self, intent: Intent, request: tuple[list[dict[str, Any]], dict[str, bool]] | None) -> Settlement:
        try:
            operation = self.client.get_operation(intent.operation_id)
        except ProviderError as err:
            return Settlement(unresolved=intent.addresses, why=f"{err}; run apply again to resolve it")
        if operation is not None:
            return self._collect(intent)
        if request is None:
            why = "the recorded request no longer matches its intent; the state may be damaged"
            return Settlement(unresolved=intent.addresses, why=why)
        return self._send(intent, *request)

    def _collect(self, intent: Intent) -> Settlement:
        """Wait for a sent batch's operation and read what its log says became of each suite."""
        try:
            operation = self.client.wait_operation(intent.operation_id)
            read = read_toloka_log(intent, operation, self.client.operation_log_json(intent.operation_id))
        except ProviderError as err:
            return Settlement(unresolved=intent.addresses, why=f"{err}; run apply again to resolve it")
        why = (
            f"operation {intent.operation_id} ended {read.status} without saying what became of these suites; "
            "run apply again to re-read it"
        )
        return Settlement(read.outcomes, resolved=not read.missing, unresolved=read.missing, why=why)


def cut_batches(actions: Sequence[Action], *, batch_size: int, max_input_bytes: int) -> Iterator[list[Action]]:
    """Group suites by pool and options, then cut at ``batch_size`` items and ``max_input_bytes`` of inputs."""
    groups: dict[tuple[str, tuple[tuple[str, Any], ...]], list[Action]] = {}
    group: list[Action] = []
    last_pool: object = None
    last_options: object = None
    for action in actions:
        spec = action.spec or {}
        pool, options = spec.get("pool_id"), spec.get("options")
        # The suites of a set share their pool id and options objects: a run of them shares a group, found
        # without building and sorting a key per suite.
        if not group or pool is not last_pool or options is not last_options:
            last_pool, last_options = pool, options
            group = groups.setdefault((str(pool), tuple(sorted((options or {}).items()))), [])
        group.append(action)
    limit = min(batch_size, MAX_BATCH_ITEMS)
    for members in groups.values():
        for start in range(0, len(members), limit):
            chunk = members[start : start + limit]
            # The whole specs bound their inputs from above and cost one C call to measure; only a batch that
            # may be too large pays for extracting its inputs.
            if (
                len(dumps([a.spec for a in chunk])) <= max_input_bytes
                or len(dumps([_inputs(a) for a in chunk])) <= max_input_bytes
            ):
                yield chunk
            else:
                yield from _cut_by_input_size(chunk, max_input_bytes)


def _cut_by_input_size(members: list[Action], max_input_bytes: int) -> list[list[Action]]:
    batches: list[list[Action]] = []
    batch: list[Action] = []
    size = 0
    for action in members:
        item_size = len(dumps(_inputs(action)))
        if batch and size + item_size > max_input_bytes:
            batches.append(batch)
            batch, size = [], 0
        batch.append(action)
        size += item_size
    if batch:
        batches.append(batch)
    return batches


def _inputs(action: Action) -> list[Any]:
    return [task.get("input_values") for task in (action.spec or {}).get("tasks") or []]


class ReadLog(NamedTuple):
    """What an operation's log says of its batch: outcomes, addresses it says nothing of, its final status."""

    outcomes: list[Outcome]
    missing: list[str]
    status: str


def read_toloka_log(intent: Intent, operation: Operation, log: Sequence[Any]) -> ReadLog:
    """Map the log back to the intent's addresses by each item's index. A pure function of its arguments;
    entries are as Toloka sent them (``TolokaClient.operation_log_json``) or ``LogEntry`` objects."""
    addresses = intent.addresses
    suite_ids = created_ids(log, len(addresses))
    if suite_ids is not None:
        created = Status.CREATED
        return ReadLog(
            [Outcome(a, created, i) for a, i in zip(addresses, suite_ids, strict=True)], [], operation.status
        )
    outcomes: list[Outcome] = []
    missing: list[str] = []
    for address, result in zip(addresses, item_results(log, len(addresses)), strict=True):
        if result is None:
            missing.append(address)
        elif result.suite_id is not None:
            outcomes.append(Outcome(address, Status.CREATED, result.suite_id))
        else:
            outcomes.append(Outcome(address, Status.FAILED, error=result.error))
    if missing and operation.status == "FAIL" and not any(o.status is Status.CREATED for o in outcomes):
        reason = "the batch failed"
        if any(o.status is Status.FAILED for o in outcomes):
            reason += " because other suites in it were invalid (skip_invalid_items is false)"
        outcomes.extend(Outcome(a, Status.FAILED, error=reason) for a in missing)
        missing = []
    return ReadLog(outcomes, missing, operation.status)
