"""Applying to Toloka: suites go in batches, one intent and one asynchronous operation per batch.

The operation id travels with the request (``async_mode=true&operation_id=...``), and Toloka refuses a second
operation with the same id, so a batch is resent under its id after any failure. Reading the operation tells
everything: 404 means it was never accepted (send the very same request again); else wait for it and read its
log, whose entries carry each item's index and so map back to addresses. A create answered 2xx in a shape the
client cannot read (``OutcomeUnknownError``) was acted on: its operation is read by id, as after a lost answer.

Suites are grouped by pool and options (the options are the request's query parameters, shared by a batch),
then cut at the provider's batch size and at ``MAX_BATCH_INPUT_BYTES`` of inputs, as ``inputs_bound`` measures
them: more than any plausible count of Toloka's "1 MiB of input values". Batches are cut as the core asks for
them, so the first is on its way before the others are measured.

A batch Toloka refuses as too large (413) created nothing, whatever Toloka counts. Once a read of its operation
confirms that, the batch hands its addresses over to its two halves, each a new intent with a new operation
id (``Settlement.then``: the core records them, then closes the refused one), and a half refused in turn is
split again; only a single suite too large by itself fails. The rest of the run cuts its batches smaller.
After a crash in the middle, the refused intent may still be open while halves hold some of its addresses:
an address reads as the newest intent that covers it, so its resolution sends nothing under its own id again
and hands the addresses it still holds to one new batch.
"""

from __future__ import annotations

import datetime as dt
import functools
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from reconciler.applier.toloka_patch import (
    PATCH_ACTION,
    RETIRE_ACTION,
    patch_detail,
    patch_suite,
    retire_replaced,
    retire_suite,
)
from reconciler.applier.work import (
    Call,
    NotSent,
    Settlement,
    batch_fingerprint,
    batch_operation_id,
    delete_call,
    pending_resources,
    update_call,
)
from reconciler.drift import matching_suites, one_to_one
from reconciler.encoding import content_hash
from reconciler.errors import EndpointError, OutcomeUnknownError, PermanentProviderError, ProviderError
from reconciler.plan import Action
from reconciler.providers.toloka import (
    MAX_BATCH_INPUT_BYTES,
    MAX_BATCH_ITEMS,
    Operation,
    TolokaClient,
    batch_request,
    created_ids,
    inputs_bound,
    item_results,
    too_large,
)
from reconciler.state.base import Intent, Outcome, PendingResource, ResourceRecord, StateStore, Status

INTENT_ACTION = "toloka_batch"
#: Toloka's code for the log of an operation older than the month it keeps logs for.
LOGS_ARCHIVED = "OPERATION_LOGS_ARCHIVED"
#: How far a suite's ``created`` may lie outside its operation's run and still be taken as made by it: the
#: times come from the same server, so this only covers their rounding.
CLOCK_SLACK = dt.timedelta(seconds=2)
#: Uploads at once, per provider: while Toloka acknowledges one batch the next is already on its way, so it
#: is never left waiting for this process to start the next upload; more only compete for the same CPU.
UPLOADS_AT_ONCE = 2
TOO_LARGE_WHY = (
    "Toloka refused their batch as too large and created none of it; run apply again to send it in smaller batches"
)

Request = tuple[list[dict[str, Any]], dict[str, bool]]


@dataclass
class BatchBudget:
    """How large a batch may be: ``items`` suites, ``input_bytes`` of inputs (as ``inputs_bound`` measures them).

    A batch Toloka refuses as too large shrinks it to half that batch for the rest of the run, so the batches
    still to be cut fit at once rather than each being refused and split in turn.
    """

    items: int
    input_bytes: int
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def shrink_below(self, items: int, input_bytes: int) -> None:
        with self._lock:
            self.items = max(1, min(self.items, items // 2))
            self.input_bytes = max(1, min(self.input_bytes, input_bytes // 2))


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
        self.budget = BatchBudget(min(client.batch_size, MAX_BATCH_ITEMS), max_batch_input_bytes)
        self._uploads = threading.BoundedSemaphore(UPLOADS_AT_ONCE)

    def creations(self, actions: list[Action]) -> Iterator[Call | NotSent]:
        for batch in cut_batches(actions, self.budget):
            yield self._call(pending_resources(batch), batch_operation_id(self.lineage, batch))

    def updates(self, actions: list[Action]) -> Iterator[Call | NotSent]:
        for action in actions:
            yield update_call(
                self.lineage, action, intent_action=PATCH_ACTION, detail=patch_detail(action), run=self._patch
            )

    def deletions(self, actions: list[Action]) -> Iterator[Call | NotSent]:
        for action in actions:
            detail = {"suite_id": action.remote_id}
            yield delete_call(self.lineage, action, intent_action=RETIRE_ACTION, detail=detail, run=self._retire)

    def resolution(self, intent: Intent) -> Call:
        """Read the operation; if Toloka never accepted it, send the recorded request again under its id. An
        intent whose addresses halves of a split hold in part was refused as too large: its own go to a new
        batch. Read here, on the writing thread: the state is not read from workers."""
        if intent.action == PATCH_ACTION:
            return Call(intent, None, functools.partial(self._patch, intent))
        if intent.action == RETIRE_ACTION:
            return Call(intent, None, functools.partial(self._retire, intent))
        records = self.store.get_many(addresses=intent.addresses)
        op = intent.operation_id
        own = [a for a in intent.addresses if (r := records.get(a)) is None or r.operation_id == op]
        if len(own) < len(intent.addresses):
            rest = _members(intent, records, own)
            return Call(intent, None, functools.partial(self._hand_over_rest, intent, rest))
        members = _members(intent, records, own) if _recorded(intent, records) else None
        return Call(intent, None, functools.partial(self._resolve, intent, members))

    def _call(self, members: list[PendingResource], operation_id: str | None = None) -> Call:
        """A batch create of ``members`` under a new intent (its id made from the members unless given)."""
        specs = [m.spec for m in members]
        items, options = batch_request(specs)
        detail: dict[str, Any] = {"options": options, "pool_id": specs[0].get("pool_id"), "items": len(items)}
        replaced = {m.address: m.replaces for m in members if m.replaces}
        if replaced:  # what a split needs to carry on, since a pending address's row does not say it
            detail["replaces"] = replaced
        intent = Intent(
            operation_id=operation_id or batch_operation_id(self.lineage, members),
            provider=self.name,
            action=INTENT_ACTION,
            addresses=tuple([m.address for m in members]),
            fingerprint=batch_fingerprint([m.spec_hash for m in members]),
            detail=detail,
        )
        return Call(intent, members, functools.partial(self._send, intent, members, (items, options)))

    # --- on a worker thread ------------------------------------------------------------------------------------

    def _retire(self, intent: Intent) -> Settlement:
        address = intent.addresses[0]
        refusal, unknown = retire_suite(self.client, str(intent.detail["suite_id"]))
        if unknown is not None:
            return Settlement(unresolved=intent.addresses, why=f"{unknown}; run apply again to retire it")
        if refusal is not None:
            return Settlement(resolved=True, refused=[(address, f"not retired: {refusal}")])
        return Settlement(resolved=True, forget=[address])

    def _patch(self, intent: Intent) -> Settlement:
        outcomes, refused, unknown = patch_suite(self.client, intent)
        if unknown is not None:
            return Settlement(unresolved=intent.addresses, why=unknown)
        return Settlement(outcomes, resolved=True, updated=True, refused=refused)

    def _send(self, intent: Intent, members: list[PendingResource], request: Request) -> Settlement:
        items, options = request
        try:
            with self._uploads:
                self.client.create_task_suites_async(operation_id=intent.operation_id, items=items, options=options)
        except EndpointError as err:
            failed = [Outcome(a, Status.FAILED, error=f"not sent: {err}") for a in intent.addresses]
            return Settlement(failed, resolved=True, stop=str(err))
        except OutcomeUnknownError as err:
            # Toloka may have acted (a 2xx we cannot read, an answer over its cap or late, a redirect). Read the
            # operation by its id; until it is read the intent stays open, and the next run reads it again (never
            # a new operation id). What made the outcome unknown stays in the message.
            settled = self._collect(intent, members)
            if settled.unresolved:
                settled.why = f"{err}; then {settled.why}"
            return settled
        except PermanentProviderError as err:
            if too_large(err):
                return self._split(intent, members, err)
            failed = [Outcome(a, Status.FAILED, error=f"rejected: {err}") for a in intent.addresses]
            return Settlement(failed, resolved=True)
        except ProviderError as err:
            return Settlement(unresolved=intent.addresses, why=f"{err}; run apply again to resolve it")
        return self._collect(intent, members)

    def _resolve(self, intent: Intent, members: list[PendingResource] | None) -> Settlement:
        try:
            operation = self.client.get_operation(intent.operation_id)
        except ProviderError as err:
            return Settlement(unresolved=intent.addresses, why=f"{err}; run apply again to resolve it")
        if operation is not None:
            return self._collect(intent, members)
        if members is None:
            why = "the recorded request no longer matches its intent; the state may be damaged"
            return Settlement(unresolved=intent.addresses, why=why)
        return self._send(intent, members, batch_request([m.spec for m in members]))

    def _split(self, intent: Intent, members: list[PendingResource], err: ProviderError) -> Settlement:
        """A batch refused as too large: in two halves, each of about half its inputs, once a read of its
        operation confirms that nothing was accepted under its id (an earlier attempt might have been)."""
        try:
            accepted = self.client.get_operation(intent.operation_id) is not None
        except ProviderError as read_err:
            return Settlement(unresolved=intent.addresses, why=f"{read_err}; run apply again to resolve it")
        if accepted:
            return self._collect(intent, members)
        sizes = [inputs_bound([m.spec]) for m in members]
        if len(members) == 1:
            error = (
                f"rejected: {err}; this suite alone is too large for one request (up to {sizes[0]} bytes of inputs): "
                "give it fewer tasks or smaller input values"
            )
            return Settlement([Outcome(members[0].address, Status.FAILED, error=error)], resolved=True)
        self.budget.shrink_below(len(members), sum(sizes))
        cut = _middle(sizes)
        halves = [self._call(members[:cut]), self._call(members[cut:])]
        return Settlement(unresolved=intent.addresses, why=TOO_LARGE_WHY, then=halves)

    def _hand_over_rest(self, intent: Intent, members: list[PendingResource]) -> Settlement:
        """An intent whose split was interrupted: the halves recorded hold their addresses; the rest go to one
        new batch. Nothing is sent under the refused intent's id again."""
        if not members:
            return Settlement(resolved=True)
        return Settlement(unresolved=[m.address for m in members], why=TOO_LARGE_WHY, then=[self._call(members)])

    def _collect(self, intent: Intent, members: list[PendingResource] | None = None) -> Settlement:
        """Wait for a sent batch's operation and read what its log says became of each suite; a log Toloka no
        longer keeps (a month on) is made up for by recognising the suites by their content."""
        try:
            operation = self.client.wait_operation(intent.operation_id)
        except ProviderError as err:
            return Settlement(unresolved=intent.addresses, why=f"{err}; run apply again to resolve it")
        try:
            log = self.client.operation_log_json(intent.operation_id)
        except ProviderError as err:
            if err.code == LOGS_ARCHIVED and members is not None:
                return self._recognise(intent, members, operation)
            return Settlement(unresolved=intent.addresses, why=f"{err}; run apply again to resolve it")
        read = read_toloka_log(intent, operation, log)
        why = (
            f"operation {intent.operation_id} ended {read.status} without saying what became of these suites; "
            "run apply again to re-read it"
        )
        refused, unknown = retire_replaced(self.client, read.outcomes, intent.detail.get("replaces") or {})
        if unknown is not None:
            return Settlement(read.outcomes, unresolved=intent.addresses, why=f"{unknown}; run apply again")
        return Settlement(read.outcomes, resolved=not read.missing, unresolved=read.missing, why=why, refused=refused)

    def _recognise(self, intent: Intent, members: list[PendingResource], operation: Operation) -> Settlement:
        """The suites the operation created, found in its pool by exactly the content sent, one to one. Toloka
        keeps no id of ours on a suite, so content is all there is; a member with no such suite was not created
        only if the operation's own count of created suites is already made up, else it stays unresolved."""
        try:
            found = recognise_suites(self.client, members, operation)
        except ProviderError as err:
            return Settlement(unresolved=intent.addresses, why=f"{err}; run apply again to resolve it")
        outcomes = [Outcome(a, Status.CREATED, remote_id=suite["id"], remote=suite) for a, suite in found.items()]
        rest = [m.address for m in members if m.address not in found]
        created = operation.details.get("success_count")
        if rest and isinstance(created, int) and not isinstance(created, bool) and created == len(found):
            why = f"not created: operation {intent.operation_id} says it created {created} suites, all found"
            outcomes += [Outcome(a, Status.FAILED, error=why) for a in rest]
            rest = []
        why = (
            f"the log of operation {intent.operation_id} is archived (Toloka keeps logs for a month) and no single "
            "suite of its pool holds exactly what was sent for these addresses; find each and record it with "
            "`reconciler state import ADDRESS ID PATHS`"
        )
        return Settlement(outcomes, resolved=not rest, unresolved=rest, why=why)


def recognise_suites(
    client: TolokaClient, members: Sequence[PendingResource], operation: Operation
) -> dict[str, dict[str, Any]]:
    """Each member's suite among those of its pool made while the operation ran (all of them when it does not
    say when), matched by ``remote_diff`` finding nothing; a member that matches several suites, or a suite
    several members, is left out."""
    window = _window(operation)
    listed = client.iter_pool_suites(str(members[0].spec.get("pool_id")))
    made = (suite for suite in listed if window is None or _made_within(suite, window))
    matched, _ = one_to_one(matching_suites(((m.address, m.kind, m.spec) for m in members), made))
    return {address: suite for address, (_, suite) in matched.items()}


def _moment(text: Any) -> dt.datetime | None:
    """A Toloka time (UTC, no zone), or None when it is not one."""
    if not isinstance(text, str):
        return None
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo is None else moment.astimezone(dt.UTC).replace(tzinfo=None)


def _window(operation: Operation) -> tuple[dt.datetime, dt.datetime] | None:
    began, ended = _moment(operation.submitted), _moment(operation.finished)
    if began is None or ended is None:
        return None
    return began - CLOCK_SLACK, ended + CLOCK_SLACK


def _made_within(suite: Mapping[str, Any], window: tuple[dt.datetime, dt.datetime]) -> bool:
    made = _moment(suite.get("created"))
    return made is None or window[0] <= made <= window[1]


def _recorded(intent: Intent, records: Mapping[str, ResourceRecord]) -> bool:
    """Whether the recorded specs still make the request the intent recorded (its fingerprint)."""
    if any(a not in records for a in intent.addresses):
        return False
    specs = [records[a].spec for a in intent.addresses]
    return batch_fingerprint([content_hash(spec) for spec in specs]) == intent.fingerprint


def _members(intent: Intent, records: Mapping[str, ResourceRecord], addresses: Sequence[str]) -> list[PendingResource]:
    """The members of ``intent`` at ``addresses``, as its pending records read."""
    replaced = intent.detail.get("replaces") or {}
    return [
        PendingResource(a, r.kind, r.provider, r.spec, r.spec_hash, r.attempt, replaced.get(a))
        for a in addresses
        if (r := records.get(a)) is not None
    ]


def _middle(sizes: Sequence[int]) -> int:
    """Where to cut items of these sizes in two of about equal size; neither half empty."""
    half, total = sum(sizes) / 2, 0
    for cut, size in enumerate(sizes[:-1], start=1):
        total += size
        if total >= half:
            return cut
    return len(sizes) - 1


def cut_batches(actions: Sequence[Action], budget: BatchBudget) -> Iterator[list[Action]]:
    """Group suites by pool and options, then cut each group into batches within ``budget``, read again for
    every batch (a refusal may shrink it meanwhile)."""
    for members in _groups(actions):
        start, whole = 0, True
        while start < len(members):
            chunk = members[start : start + budget.items]
            limit = budget.input_bytes
            # A whole chunk is measured at once, at the cost of one encoding; once a group's batches are cut by
            # size, that is wasted, and each suite is measured alone.
            if not (whole and _fits_whole(chunk, limit)):
                whole = False
                chunk = _within(chunk, limit)
            start += len(chunk)
            yield chunk


def _groups(actions: Sequence[Action]) -> list[list[Action]]:
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
    return list(groups.values())


def _fits_whole(chunk: Sequence[Action], limit: int) -> bool:
    return inputs_bound([a.spec or {} for a in chunk]) <= limit


def _within(chunk: list[Action], limit: int) -> list[Action]:
    """The longest start of ``chunk`` whose inputs fit in ``limit``, measured suite by suite; at least one."""
    size = 0
    for count, action in enumerate(chunk):
        size += inputs_bound([action.spec or {}])
        if size > limit and count:
            return chunk[:count]
    return chunk


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
