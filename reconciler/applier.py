"""Runs a plan, creating every remote object exactly once, whatever fails and whenever the process dies.

The rule: no create is sent before its intent is durably committed, and every outcome is committed as soon as
it is known. An intent is one remote call that may create things (a Toloka batch, or one PerfTest task) with a
deterministic operation id, so that after a crash the next run finds it open and learns what became of it
before doing anything else:

- Toloka: the operation id travels with the request (``async_mode=true&operation_id=...``). Reading the
  operation tells everything: 404 means it was never accepted (resend the very same request, same id); else
  wait for it and read its log, whose entries carry our ``__item_idx`` and so map back to addresses.
- PerfTest: the API has no idempotency key. When an outcome is unknown (timeout, dropped connection, 5xx,
  crash), the test project's tasks are listed: exactly one task with the intended name that did not exist
  before the intent was recorded is ours and is adopted; none means nothing was created and the request is
  sent again; more than one is ambiguous, and the applier stops and says so instead of guessing.

Work is spread over a thread pool (``parallelism``). A stop event (set on Ctrl-C) lets in-flight calls finish
and be recorded while nothing new starts.
"""

from __future__ import annotations

import functools
import hashlib
import queue
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from reconciler import failpoints
from reconciler.errors import (
    AmbiguousAdoptionError,
    ApplyRefusedError,
    ConfigError,
    OutcomeUnknownError,
    PermanentProviderError,
    ProviderError,
)
from reconciler.plan import Action, ActionType, Plan
from reconciler.providers.http import encode_json
from reconciler.providers.perftest import PerfTestClient
from reconciler.providers.toloka import ITEM_IDX, LogEntry, Operation, TolokaClient
from reconciler.resources import canonical_json, content_hash, split_suite_spec, suite_request_body
from reconciler.state.base import Intent, Outcome, PendingResource, StateStore, Status

#: Namespace of operation ids: UUIDv5(namespace, lineage|address|spec hash|attempt).
OPERATION_NAMESPACE = uuid.UUID("5b0f3f0e-6a43-4c1e-9d4e-2f1f7e3a9c11")

TOLOKA_BATCH = "toloka_batch"
PERFTEST_CREATE = "perftest_create"

MAX_BATCH_ITEMS = 5000
MAX_BATCH_INPUT_BYTES = 1024 * 1024
PERFTEST_RESENDS = 3
TOLOKA_COLLECTORS = 2
#: Two uploads at a time: while Toloka acknowledges one batch the next is already on its way, so it is never left
#: waiting for this process to start the next upload (at 100,000 suites against the sandbox, about 4% of apply).
TOLOKA_SENDERS = 2
PERFTEST_SETTLE_SECONDS = 1.0

Client = PerfTestClient | TolokaClient


class ApplyEvent(NamedTuple):
    """Something a person or a pipeline may want to see while apply runs."""

    type: str  # intent | created | failed | unresolved | adopted | resolved | warning
    address: str | None = None
    operation_id: str | None = None
    remote_id: str | None = None
    message: str | None = None
    size: int = 1


@dataclass
class ApplyResult:
    created: int = 0
    adopted: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    unresolved: list[tuple[str, str]] = field(default_factory=list)
    skipped: int = 0
    interrupted: bool = False
    stopped_by: str | None = None

    @property
    def ok(self) -> bool:
        return not self.failed and not self.unresolved and not self.interrupted and not self.stopped_by


def operation_id(lineage: str, address: str, spec_hash: str, attempt: int) -> str:
    return str(uuid.uuid5(OPERATION_NAMESPACE, f"{lineage}|{address}|{spec_hash}|{attempt}"))


def batch_operation_id(lineage: str, actions: Sequence[Action]) -> str:
    members = "|".join([f"{a.address}@{a.spec_hash}#{a.attempt}" for a in actions])
    digest = hashlib.sha256(members.encode("utf-8")).hexdigest()
    return str(uuid.uuid5(OPERATION_NAMESPACE, f"{lineage}|batch|{digest}"))


def batch_fingerprint(spec_hashes: Sequence[str]) -> str:
    """Identifies a batch request: its items are a pure function of the members' specs, in order."""
    return hashlib.sha256("\n".join(spec_hashes).encode("ascii")).hexdigest()


def refuse_changes(plan: Plan) -> None:
    """Both APIs are create-only: a changed spec is applied only as a replacement the user asked for."""
    changed = plan.of_type(ActionType.CHANGE)
    if changed:
        listed = ", ".join(a.address for a in changed[:5]) + (" ..." if len(changed) > 5 else "")
        flags = " ".join(f"--replace {a.address}" for a in changed[:3])
        raise ApplyRefusedError(
            f"{len(changed)} resource(s) differ from what was created and cannot be changed in place "
            f"({listed}); nothing was sent. Revert the manifest, or ask for new remote objects with {flags}"
        )


class Applier:
    def __init__(
        self,
        *,
        store: StateStore,
        clients: Mapping[str, Client],
        lineage: str,
        parallelism: int = 10,
        on_event: Callable[[ApplyEvent], None] | None = None,
        stop: threading.Event | None = None,
        batch_sizes: Mapping[str, int] | None = None,
        max_batch_input_bytes: int = MAX_BATCH_INPUT_BYTES,
        perftest_settle: float = PERFTEST_SETTLE_SECONDS,
        sleep: Callable[[float], None] = time.sleep,
        each_created: bool = True,
    ) -> None:
        """``each_created`` False reports the suites a batch created as one ``created`` event (no address, its
        ``size`` the count): what a progress bar needs, without 100,000 events nobody reads."""
        self.each_created = each_created
        self.store = store
        self.clients = clients
        self.lineage = lineage
        self.parallelism = max(1, parallelism)
        self.stop = stop or threading.Event()
        self.batch_sizes = dict(batch_sizes or {})
        self.max_batch_input_bytes = max_batch_input_bytes
        self.perftest_settle = perftest_settle
        self._sleep = sleep
        self._on_event = on_event or (lambda event: None)
        self._result = ApplyResult()
        self._lock = threading.Lock()

    # --- the two phases ------------------------------------------------------------------------------------

    def run(self, plan: Plan) -> ApplyResult:
        refuse_changes(plan)
        self.resolve_open_intents()
        creates = plan.of_type(ActionType.CREATE, ActionType.REPLACE)
        if self._result.stopped_by is None:
            self._create(creates)
        else:
            self._result.skipped += len(creates)
        self._result.interrupted = self.stop.is_set() and self._result.stopped_by is None
        return self._result

    def resolve_open_intents(self) -> None:
        intents = self.store.open_intents()
        self._run_jobs([(functools.partial(self._resolve, i), len(i.addresses)) for i in intents])

    def _create(self, actions: list[Action]) -> None:
        toloka: list[Action] = []
        jobs: list[tuple[Callable[[], None], int]] = []
        perftest: list[Action] = []
        is_toloka = {name: isinstance(client, TolokaClient) for name, client in self.clients.items()}
        for action in actions:
            if is_toloka.get(action.provider, False) or isinstance(self._client(action.provider), TolokaClient):
                toloka.append(action)
            else:
                perftest.append(action)
        if toloka:
            jobs.append((functools.partial(self._pipeline_toloka, self._toloka_batches(toloka)), len(toloka)))
        if perftest:
            existing = self._existing_perftest_names(perftest)
            for action in perftest:
                key = (action.provider, int((action.spec or {})["project_id"]))
                if isinstance(existing.get(key), ProviderError):
                    self._not_sent(action, f"could not list test project {key[1]} first: {existing[key]}")
                else:
                    jobs.append((functools.partial(self._send_perftest_task, action, existing), 1))
        self._run_jobs(jobs)

    # --- scheduling ----------------------------------------------------------------------------------------

    def _run_jobs(self, jobs: list[tuple[Callable[[], None], int]]) -> None:
        """Run (job, number of resources it covers) pairs on the pool; after a stop, none starts."""
        if not jobs:
            return
        with ThreadPoolExecutor(max_workers=self.parallelism, thread_name_prefix="apply") as pool:
            futures: list[Future[None]] = [pool.submit(self._guard, job, size) for job, size in jobs]
            try:
                for future in as_completed(futures):
                    future.result()
            except BaseException:
                self.stop.set()
                raise

    def _pipeline_toloka(self, batches: Iterable[list[Action]]) -> None:
        """Record Toloka batches' intents and outcomes from this thread, while ``TOLOKA_SENDERS`` threads send
        them and ``TOLOKA_COLLECTORS`` wait for their operations and read their logs; at most ``parallelism``
        batches are between intent and outcome. A batch is handed to the senders only once its intent is
        recorded, so which sender sends it, and in which order, does not matter.

        Why every state write happens here: a write hands the interpreter lock back and forth, and while other
        threads are busy each hand-back can wait out a switch interval; with ten threads doing everything,
        writing a batch's 5,000 rows took many times as long as alone. And why nothing else happens here: a
        send waits for Toloka to read a megabyte, time this thread would not spend writing. Outcomes are
        recorded as soon as this thread is done with the write in hand.
        """
        outbox: queue.SimpleQueue[tuple[Intent, TolokaClient, list[dict[str, Any]], dict[str, bool]] | None]
        outbox = queue.SimpleQueue()
        todo: queue.SimpleQueue[tuple[Intent, TolokaClient] | None] = queue.SimpleQueue()
        done: queue.SimpleQueue[_Collected] = queue.SimpleQueue()

        def send() -> None:
            while (job := outbox.get()) is not None:
                intent, client, items, options = job
                refused = _send_batch(intent, client, items, options)
                if refused is None:
                    todo.put((intent, client))
                else:
                    done.put(refused)

        def collect() -> None:
            while (item := todo.get()) is not None:
                done.put(_collect_batch(*item))

        senders = [threading.Thread(target=send, name=f"apply-send-{n}", daemon=True) for n in range(TOLOKA_SENDERS)]
        collectors = [
            threading.Thread(target=collect, name=f"apply-collect-{n}", daemon=True) for n in range(TOLOKA_COLLECTORS)
        ]
        for thread in (*senders, *collectors):
            thread.start()
        in_flight = 0
        batches = iter(batches)
        try:
            for batch in batches:
                # One outcome settled per intent recorded, so the senders always have the next batch at hand.
                if in_flight >= self.parallelism or not done.empty():
                    self._settle_toloka(done.get())
                    in_flight -= 1
                if self.stop.is_set():
                    with self._lock:
                        self._result.skipped += len(batch) + sum(len(b) for b in batches)
                    break
                outbox.put(self._record_toloka_batch(batch))
                in_flight += 1
            while in_flight:
                self._settle_toloka(done.get())
                in_flight -= 1
        finally:
            for _ in senders:
                outbox.put(None)
            for thread in senders:
                thread.join()
            for _ in collectors:
                todo.put(None)
            for thread in collectors:
                thread.join()

    def _settle_toloka(self, collected: _Collected) -> None:
        intent, error = collected.intent, collected.error
        if error is None:
            assert collected.read is not None
            self._record_read_log(intent, collected.read)
        elif isinstance(error, PermanentProviderError) and not collected.sent:
            failed = [Outcome(a, Status.FAILED, error=f"rejected: {error}") for a in intent.addresses]
            self._record(intent.operation_id, failed, resolved=True)
        elif isinstance(error, ProviderError):
            self._unresolved(intent.addresses, intent.operation_id, f"{error}; run apply again to resolve it")
        else:
            raise error

    def _guard(self, job: Callable[[], None], size: int) -> None:
        if self.stop.is_set():
            with self._lock:
                self._result.skipped += size
            return
        job()

    def _client(self, provider: str) -> Client:
        try:
            return self.clients[provider]
        except KeyError:
            raise ConfigError(
                f"no provider document named {provider!r} in the manifests, but the state has resources (or an "
                f"interrupted apply) that belong to it; add it back (an interrupted apply is settled through it), "
                "or `reconciler state forget` its resources"
            ) from None

    def _emit(self, event: ApplyEvent) -> None:
        self._on_event(event)

    def _stop_with(self, reason: str) -> None:
        with self._lock:
            if self._result.stopped_by is None:
                self._result.stopped_by = reason
        self.stop.set()

    def _record(self, operation_id: str, outcomes: Sequence[Outcome], *, resolved: bool) -> None:
        failpoints.hit("after_send")
        self.store.record_outcomes(operation_id=operation_id, outcomes=outcomes, resolved=resolved)
        failpoints.hit("after_outcome")
        created = [o for o in outcomes if o.status is Status.CREATED]
        failed = [o for o in outcomes if o.status is Status.FAILED]
        with self._lock:
            self._result.created += len(created)
            self._result.failed.extend((o.address, o.error or "failed") for o in failed)
        if self.each_created:
            for outcome in created:
                self._emit(ApplyEvent("created", outcome.address, operation_id, outcome.remote_id))
        elif created:
            self._emit(ApplyEvent("created", operation_id=operation_id, size=len(created)))
        for outcome in failed:
            self._emit(ApplyEvent("failed", outcome.address, operation_id, message=outcome.error))

    def _unresolved(self, intent_addresses: Iterable[str], operation_id: str, message: str) -> None:
        addresses = list(intent_addresses)
        with self._lock:
            self._result.unresolved.extend((a, message) for a in addresses)
        for address in addresses:
            self._emit(ApplyEvent("unresolved", address, operation_id, message=message))

    # --- Toloka --------------------------------------------------------------------------------------------

    def toloka_batches(self, actions: list[Action]) -> list[list[Action]]:
        """Group suites by provider, pool and options, then cut at the item and input-size limits."""
        return list(self._toloka_batches(actions))

    def _toloka_batches(self, actions: list[Action]) -> Iterator[list[Action]]:
        """``toloka_batches`` one at a time: the pipeline cuts the next batch while earlier ones are on their way,
        instead of measuring all of them before the first is sent."""
        groups: dict[tuple[str, str, tuple[tuple[str, Any], ...]], list[Action]] = {}
        group: list[Action] = []
        last_provider: object = _UNSET
        last_pool: object = _UNSET
        last_options: object = _UNSET
        for action in actions:
            spec = action.spec or {}
            pool, options = spec.get("pool_id"), spec.get("options")
            # The suites of a set share their provider, pool id and options objects: a run of them shares a
            # group, found without building and sorting a key per suite.
            if action.provider is not last_provider or pool is not last_pool or options is not last_options:
                last_provider, last_pool, last_options = action.provider, pool, options
                group = groups.setdefault((action.provider, str(pool), tuple(sorted((options or {}).items()))), [])
            group.append(action)
        for (provider, _, _), members in groups.items():
            limit = min(self.batch_sizes.get(provider, MAX_BATCH_ITEMS), MAX_BATCH_ITEMS)
            for start in range(0, len(members), limit):
                chunk = members[start : start + limit]
                # The whole specs bound their inputs from above and cost one C call to measure; only a batch
                # that may be too large pays for extracting its inputs.
                if (
                    _json_size([a.spec for a in chunk]) <= self.max_batch_input_bytes
                    or _json_size([_inputs(a) for a in chunk]) <= self.max_batch_input_bytes
                ):
                    yield chunk
                else:
                    yield from self._cut_by_input_size(chunk)

    def _cut_by_input_size(self, members: list[Action]) -> list[list[Action]]:
        batches: list[list[Action]] = []
        batch: list[Action] = []
        size = 0
        for action in members:
            item_size = _json_size(_inputs(action))
            if batch and size + item_size > self.max_batch_input_bytes:
                batches.append(batch)
                batch, size = [], 0
            batch.append(action)
            size += item_size
        if batch:
            batches.append(batch)
        return batches

    def _record_toloka_batch(
        self, batch: list[Action]
    ) -> tuple[Intent, TolokaClient, list[dict[str, Any]], dict[str, bool]]:
        """Record the batch's intent; what to send."""
        first = batch[0]
        client = self._client(first.provider)
        assert isinstance(client, TolokaClient)
        op_id = batch_operation_id(self.lineage, batch)
        items, options = self._toloka_items([a.spec or {} for a in batch])
        intent = Intent(
            operation_id=op_id,
            provider=first.provider,
            action=TOLOKA_BATCH,
            addresses=tuple([a.address for a in batch]),
            fingerprint=batch_fingerprint([a.spec_hash or "" for a in batch]),
            detail={"options": options, "pool_id": (first.spec or {}).get("pool_id"), "items": len(items)},
        )
        self.store.record_intent(intent=intent, resources=_pending_resources(batch))
        failpoints.hit("after_intent")
        self._emit(ApplyEvent("intent", operation_id=op_id, size=len(batch)))
        return intent, client, items, options

    @staticmethod
    def _toloka_items(specs: Sequence[dict[str, Any]]) -> tuple[list[dict[str, Any]], dict[str, bool]]:
        """The request's items, and the options of its last suite (a batch's suites share theirs)."""
        items = [suite_request_body(spec) for spec in specs]
        for index, item in enumerate(items):
            item[ITEM_IDX] = index
        return items, split_suite_spec(specs[-1])[1] if specs else {}

    def _finish_toloka(
        self,
        intent: Intent,
        client: TolokaClient,
        items: list[dict[str, Any]] | None,
        options: dict[str, bool],
        *,
        send: bool,
    ) -> None:
        refused = None
        if send:
            assert items is not None
            refused = _send_batch(intent, client, items, options)
        self._settle_toloka(refused or _collect_batch(intent, client))

    def _record_read_log(self, intent: Intent, read: ReadLog) -> None:
        self._record(intent.operation_id, read.outcomes, resolved=not read.missing)
        if read.missing:
            self._unresolved(
                read.missing,
                intent.operation_id,
                f"operation {intent.operation_id} ended {read.status} without saying what became of "
                "these suites; run apply again to re-read it",
            )

    # --- PerfTest ------------------------------------------------------------------------------------------

    def _existing_perftest_names(self, actions: list[Action]) -> dict[tuple[str, int], Any]:
        """Task ids per name in each test project before we create anything: these are not ours.

        A project that cannot be listed maps to the error; its tasks are not sent, since recovery after a
        lost answer could not tell our task from one that was there before.
        """
        existing: dict[tuple[str, int], Any] = {}
        for action in actions:
            key = (action.provider, int((action.spec or {})["project_id"]))
            if key in existing:
                continue
            client = self._client(action.provider)
            assert isinstance(client, PerfTestClient)
            names: dict[str, list[str]] = {}
            try:
                for task in client.list_tasks(key[1]):
                    names.setdefault(str(task.get("name")), []).append(str(task.get("id")))
            except ProviderError as err:
                existing[key] = err
                continue
            existing[key] = names
        return existing

    def _not_sent(self, action: Action, message: str) -> None:
        with self._lock:
            self._result.failed.append((action.address, message))
        self._emit(ApplyEvent("failed", action.address, message=f"not sent: {message}"))

    def _send_perftest_task(self, action: Action, existing: Mapping[tuple[str, int], Any]) -> None:
        spec = action.spec or {}
        client = self._client(action.provider)
        assert isinstance(client, PerfTestClient)
        project = int(spec["project_id"])
        name = str(spec["name"])
        before = list(existing.get((action.provider, project), {}).get(name, []))
        if before:
            self._emit(
                ApplyEvent(
                    "warning",
                    action.address,
                    message=f"test project {project} already has a task named {name!r} (id {', '.join(before)}) "
                    "that reconciler did not create; creating another",
                )
            )
        op_id = operation_id(self.lineage, action.address, action.spec_hash or "", action.attempt)
        intent = Intent(
            operation_id=op_id,
            provider=action.provider,
            action=PERFTEST_CREATE,
            addresses=(action.address,),
            fingerprint=hashlib.sha256(canonical_json(spec).encode("utf-8")).hexdigest(),
            detail={"test_project_id": project, "name": name, "preexisting_ids": before, "body": spec},
        )
        self.store.record_intent(intent=intent, resources=_pending_resources([action]))
        failpoints.hit("after_intent")
        self._emit(ApplyEvent("intent", action.address, op_id))
        self._perftest_send_and_settle(intent, client, spec, sends_left=PERFTEST_RESENDS)

    def _perftest_send_and_settle(
        self, intent: Intent, client: PerfTestClient, body: dict[str, Any], *, sends_left: int
    ) -> None:
        address = intent.addresses[0]
        op_id = intent.operation_id
        while sends_left > 0:
            sends_left -= 1
            try:
                task_id = client.create_task(body)
            except OutcomeUnknownError as err:
                if self._perftest_find(intent, client) is not None:
                    return
                self._emit(ApplyEvent("warning", address, op_id, message=f"{err}; nothing was created, resending"))
                continue
            except PermanentProviderError as err:
                self._record(op_id, [Outcome(address, Status.FAILED, error=str(err))], resolved=True)
                return
            except ProviderError as err:
                self._record(op_id, [Outcome(address, Status.FAILED, error=f"not sent: {err}")], resolved=True)
                return
            self._record(op_id, [Outcome(address, Status.CREATED, remote_id=str(task_id))], resolved=True)
            return
        self._unresolved(
            [address],
            op_id,
            "the outcome stayed unknown after several attempts; run apply again to resolve it",
        )

    def _perftest_find(self, intent: Intent, client: PerfTestClient) -> object:
        """Adopt the task an unknown outcome may have made, looking twice before concluding there is none.

        The second look, ``perftest_settle`` seconds later, covers a listing that lags behind a create that
        just happened: resending on a single empty listing would be the one way to make a duplicate.
        Returns None when nothing was created; anything else means the intent was settled or must wait.
        """
        found = self._perftest_adopt(intent, client)
        if found is None:
            self._sleep(self.perftest_settle)
            found = self._perftest_adopt(intent, client)
        return found

    def _perftest_adopt(self, intent: Intent, client: PerfTestClient) -> object:
        """Look for the task this intent created. Returns its id, None (nothing created), or a sentinel."""
        address = intent.addresses[0]
        detail = intent.detail
        project = int(detail["test_project_id"])
        name = str(detail["name"])
        preexisting = {str(i) for i in detail.get("preexisting_ids") or []}
        try:
            candidates = [t for t in client.find_tasks_by_name(project, name) if str(t.get("id")) not in preexisting]
        except ProviderError as err:
            self._unresolved([address], intent.operation_id, f"could not list test project {project}: {err}")
            return _LOOKUP_FAILED
        if len(candidates) == 1:
            remote_id = str(candidates[0]["id"])
            self._record(intent.operation_id, [Outcome(address, Status.CREATED, remote_id=remote_id)], resolved=True)
            with self._lock:
                self._result.adopted += 1
            self._emit(ApplyEvent("adopted", address, intent.operation_id, remote_id))
            return remote_id
        if len(candidates) > 1:
            ids = ", ".join(str(t.get("id")) for t in candidates)
            error = AmbiguousAdoptionError(
                f"test project {project} has {len(candidates)} tasks named {name!r} that could be the one this "
                f"interrupted create made (ids {ids}); reconciler will not guess. Keep one, delete the others "
                f"in CodeArts PerfTest, then `reconciler state import {address} ID` or run apply again",
                provider=intent.provider,
                address=address,
                operation_id=intent.operation_id,
            )
            self._unresolved([address], intent.operation_id, str(error))
            self._stop_with(str(error))
            return _AMBIGUOUS
        return None

    # --- recovery ------------------------------------------------------------------------------------------

    def _resolve(self, intent: Intent) -> None:
        client = self._client(intent.provider)
        self._emit(ApplyEvent("resolving", operation_id=intent.operation_id, size=len(intent.addresses)))
        if intent.action == TOLOKA_BATCH:
            assert isinstance(client, TolokaClient)
            self._resolve_toloka(intent, client)
        elif intent.action == PERFTEST_CREATE:
            assert isinstance(client, PerfTestClient)
            self._resolve_perftest(intent, client)
        else:
            self._unresolved(intent.addresses, intent.operation_id, f"unknown intent type {intent.action!r}")

    def _resolve_toloka(self, intent: Intent, client: TolokaClient) -> None:
        try:
            operation = client.get_operation(intent.operation_id)
        except ProviderError as err:
            self._unresolved(intent.addresses, intent.operation_id, f"{err}; run apply again to resolve it")
            return
        if operation is not None:
            self._finish_toloka(intent, client, None, {}, send=False)
            return
        records = self.store.get_many(addresses=intent.addresses)
        specs = [records[a].spec for a in intent.addresses]
        if batch_fingerprint([content_hash(spec) for spec in specs]) != intent.fingerprint:
            self._unresolved(
                intent.addresses,
                intent.operation_id,
                "the recorded request no longer matches its intent; the state may be damaged",
            )
            return
        items, options = self._toloka_items(specs)
        self._finish_toloka(intent, client, items, options, send=True)

    def _resolve_perftest(self, intent: Intent, client: PerfTestClient) -> None:
        if self._perftest_find(intent, client) is None:
            body = dict(intent.detail.get("body") or {})
            self._perftest_send_and_settle(intent, client, body, sends_left=PERFTEST_RESENDS)


class ReadLog(NamedTuple):
    """What an operation's log says of its batch: outcomes, addresses it says nothing of, its final status."""

    outcomes: list[Outcome]
    missing: list[str]
    status: str


def read_toloka_log(intent: Intent, operation: Operation, log: Sequence[Any]) -> ReadLog:
    """Map the log back to the intent's addresses through each item's ``__item_idx``; its entries are as
    Toloka sent them (``TolokaClient.operation_log_json``) or ``LogEntry`` objects.

    A pure function: the collector threads run it, not the thread that writes the state."""
    created = _all_created(intent.addresses, log)
    if created is not None:
        return ReadLog(created, [], operation.status)
    by_index: dict[int, LogEntry] = {}
    for raw in log:
        logged = raw if isinstance(raw, LogEntry) else LogEntry.from_json(raw)
        if logged.item_idx is not None:
            by_index[logged.item_idx] = logged
    outcomes: list[Outcome] = []
    missing: list[str] = []
    for index, address in enumerate(intent.addresses):
        entry = by_index.get(index)
        if entry is None:
            missing.append(address)
        elif entry.success:
            suite_id = (entry.output or {}).get("task_suite_id")
            if suite_id:
                outcomes.append(Outcome(address, Status.CREATED, str(suite_id)))
            else:
                missing.append(address)
        else:
            outcomes.append(Outcome(address, Status.FAILED, error=_validation_message(entry.output)))
    if missing and operation.status == "FAIL" and not any(o.status is Status.CREATED for o in outcomes):
        reason = "the batch failed"
        if any(o.status is Status.FAILED for o in outcomes):
            reason += " because other suites in it were invalid (skip_invalid_items is false)"
        outcomes.extend(Outcome(a, Status.FAILED, error=reason) for a in missing)
        missing = []
    return ReadLog(outcomes, missing, operation.status)


def _all_created(addresses: Sequence[str], log: Sequence[Any]) -> list[Outcome] | None:
    """The outcomes of a log saying, once for each item, that it was created; None for any other log.

    That is a healthy log, and reading it here costs no ``LogEntry`` per entry; anything else is left to
    ``read_toloka_log``'s own reading, which would give such a log the very same outcomes.
    """
    count = len(addresses)
    if len(log) != count:
        return None
    suite_ids: list[Any] = [None] * count
    try:
        for entry in log:
            index, output = entry["input"][ITEM_IDX], entry["output"]
            if type(index) is not int or not 0 <= index < count or suite_ids[index] is not None:
                return None
            if entry.get("success") is not True or type(output) is not dict:
                return None
            suite_id = output.get("task_suite_id")
            if not suite_id:
                return None
            suite_ids[index] = suite_id
    except (KeyError, TypeError):
        return None
    created = Status.CREATED
    return [
        _new_tuple(Outcome, (a, created, str(suite_id), None, None))
        for a, suite_id in zip(addresses, suite_ids, strict=True)
    ]


def _send_batch(
    intent: Intent, client: TolokaClient, items: list[dict[str, Any]], options: dict[str, bool]
) -> _Collected | None:
    """Send a batch under its intent's operation id; None once Toloka accepted it, else why it did not."""
    try:
        client.create_task_suites_async(operation_id=intent.operation_id, items=items, options=options)
    except BaseException as err:  # recorded or re-raised by _settle_toloka, in the thread that writes the state
        return _Collected(intent, error=err, sent=False)
    return None


def _collect_batch(intent: Intent, client: TolokaClient) -> _Collected:
    """Wait for a sent batch's operation and read what its log says became of each suite."""
    try:
        operation = client.wait_operation(intent.operation_id)
        return _Collected(intent, read_toloka_log(intent, operation, client.operation_log_json(intent.operation_id)))
    except BaseException as err:
        return _Collected(intent, error=err)


class _Collected(NamedTuple):
    """What became of a batch handed to the sender: what its operation's log says, or the error that stopped
    the send (``sent`` False) or the wait for the operation."""

    intent: Intent
    read: ReadLog | None = None
    error: BaseException | None = None
    sent: bool = True


_AMBIGUOUS = object()
_LOOKUP_FAILED = object()
_UNSET = object()
#: Builds a named tuple (``Outcome``, ``PendingResource``) from all its fields, without the generated
#: ``__new__`` that costs as much again: a batch builds 5,000 of each.
_new_tuple = tuple.__new__


def _pending_resources(actions: Sequence[Action]) -> list[PendingResource]:
    replace = ActionType.REPLACE
    return [
        _new_tuple(
            PendingResource,
            (
                a.address,
                a.kind,
                a.provider,
                a.spec or {},
                a.spec_hash or "",
                a.attempt,
                a.remote_id if a.type is replace else None,
            ),
        )
        for a in actions
    ]


def _inputs(action: Action) -> list[Any]:
    return [task.get("input_values") for task in (action.spec or {}).get("tasks") or []]


def _json_size(value: Any) -> int:
    return len(encode_json(value))


def _validation_message(output: Any) -> str:
    if not isinstance(output, dict) or not output:
        return "rejected by Toloka validation"
    parts = []
    for field_name, problem in output.items():
        if isinstance(problem, dict):
            parts.append(f"{field_name}: {problem.get('code', '')} {problem.get('message', '')}".strip())
        else:
            parts.append(f"{field_name}: {problem}")
    return "; ".join(parts)
