"""Runs a plan, creating every remote object exactly once, whatever fails and whenever the process dies.

The rule: no call that may create anything is sent before its intent is durably committed, and every outcome
is committed as soon as it is known. After a crash the next run finds the intent open and learns what became
of it before it sends anything new.

How the work is spread, in three sentences. The thread that calls ``run`` is the only one that writes the
state: it records each call's intent, hands the call to a pool of ``parallelism`` worker threads, and records
each call's settlement as it comes back. At most ``parallelism`` calls are between their intent and their
settlement, and the next intent is recorded while earlier calls are in flight, so recording and sending
overlap. A call only talks to its API and returns what it learned; a stop (Ctrl-C) lets the calls in flight
finish and be recorded while nothing new starts.

Why one writing thread: a state write hands the interpreter lock back and forth, and competing with ten busy
threads made writing a 5,000-suite batch many times slower than writing it alone.

What a call does is each API's own protocol, in ``applier/toloka.py`` and ``applier/perftest.py``; this module
only dispatches to them by the client's type (``PROVIDER_MODULES``).
"""

from __future__ import annotations

import dataclasses
import functools
import queue
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Protocol

from reconciler import failpoints
from reconciler.applier import perftest, toloka
from reconciler.applier.events import ApplyEvent, ApplyResult, EventType
from reconciler.applier.work import Call, NotSent, Settlement
from reconciler.errors import ConfigError
from reconciler.plan import Action, ActionType, Plan
from reconciler.providers.perftest import PerfTestClient
from reconciler.providers.toloka import TolokaClient
from reconciler.state.base import Intent, Outcome, StateStore, Status


class ProviderModule(Protocol):
    """What the core needs of one API's module: its calls for new actions and for an open intent."""

    def creations(self, actions: list[Action]) -> Iterator[Call | NotSent]: ...

    def updates(self, actions: list[Action]) -> Iterator[Call | NotSent]: ...

    def deletions(self, actions: list[Action]) -> Iterator[Call | NotSent]: ...

    def resolution(self, intent: Intent) -> Call: ...


#: Which module speaks to each kind of client. Adding an API is a client, a module and a line here.
PROVIDER_MODULES: dict[type, Callable[..., ProviderModule]] = {
    TolokaClient: toloka.TolokaModule,
    PerfTestClient: perftest.PerfTestModule,
}


class Applier:
    """Applies plans to one state through one client per provider name.

    ``each_created`` False reports the addresses a call created as one ``created`` event (no address, its
    ``size`` the count): what a progress bar needs, without 100,000 events nobody reads. ``guard`` is called
    on the worker immediately before each call runs, and a call it raises for is not sent (the state lock's
    lease check: see ``reconciler.state.lock``). ``options`` go to the provider modules (e.g.
    ``perftest_settle``, ``max_batch_input_bytes``, ``sleep``).
    """

    def __init__(
        self,
        *,
        store: StateStore,
        clients: Mapping[str, object],
        lineage: str,
        parallelism: int = 10,
        on_event: Callable[[ApplyEvent], None] | None = None,
        stop: threading.Event | None = None,
        each_created: bool = True,
        guard: Callable[[], None] | None = None,
        **options: object,
    ) -> None:
        self.store = store
        self._guard = guard
        self.parallelism = max(1, parallelism)
        self.stop = stop or threading.Event()
        self.each_created = each_created
        self._on_event = on_event or (lambda event: None)
        self._result = ApplyResult()
        self._modules: dict[str, ProviderModule] = {}
        for name, client in clients.items():
            module = PROVIDER_MODULES.get(type(client))
            if module is None:
                raise ConfigError(f"provider {name}: no apply support for {type(client).__name__}")
            self._modules[name] = module(name=name, client=client, store=store, lineage=lineage, **options)

    def run(self, plan: Plan) -> ApplyResult:
        """Resolve what earlier runs left open, then create what the plan says is missing."""
        self._run_calls(self._resolutions())
        creates = plan.of_type(ActionType.CREATE, ActionType.REPLACE)
        updates = plan.of_type(ActionType.UPDATE)
        if self._result.stopped_by is None:
            self._run_calls(self._by_provider(creates, "creations"))
        else:
            self._result.skipped += len(creates)
        deletes = []
        for action in plan.of_type(ActionType.DELETE):
            if action.remote_id:
                deletes.append(action)
            elif self._result.stopped_by is None and not self.stop.is_set():
                self._forget_failed(action)
        for actions, calls in ((updates, "updates"), (deletes, "deletions")):
            if self._result.stopped_by is None and not self.stop.is_set():
                self._run_calls(self._by_provider(actions, calls))
            else:
                self._result.skipped += len(actions)
        self._result.interrupted = self.stop.is_set() and self._result.stopped_by is None
        return self._result

    # --- what to do --------------------------------------------------------------------------------------------

    def _resolutions(self) -> Iterator[Call | NotSent]:
        for intent in self.store.open_intents():
            self._emit(ApplyEvent(EventType.RESOLVING, operation_id=intent.operation_id, size=len(intent.addresses)))
            yield self._module(intent.provider).resolution(intent)

    def _by_provider(self, actions: Sequence[Action], calls: str) -> Iterator[Call | NotSent]:
        """The calls of ``actions``, made by each provider's module (its ``creations`` or ``updates``)."""
        by_provider: dict[str, list[Action]] = {}
        for action in actions:
            group = by_provider.get(action.provider)
            if group is None:
                group = by_provider[action.provider] = []
            group.append(action)
        for provider, group in by_provider.items():
            yield from getattr(self._module(provider), calls)(group)

    def _module(self, provider: str) -> ProviderModule:
        try:
            return self._modules[provider]
        except KeyError:
            raise ConfigError(
                f"no provider document named {provider!r} in the manifests, but the state has resources (or an "
                f"interrupted apply) that belong to it; add it back (an interrupted apply is settled through it), "
                "or `reconciler state forget` its resources"
            ) from None

    # --- doing it ----------------------------------------------------------------------------------------------

    def _run_calls(self, calls: Iterable[Call | NotSent]) -> None:
        """Record intents and settlements on this thread while the pool runs the calls (see the module). The calls
        a settlement hands its addresses over to (``Settlement.then``) are recorded as it is settled, and go
        before the next new one."""
        done: queue.SimpleQueue[tuple[Call, Future[Settlement]]] = queue.SimpleQueue()
        handed_over: deque[Call] = deque()
        in_flight = 0
        failure: BaseException | None = None
        with ThreadPoolExecutor(max_workers=self.parallelism, thread_name_prefix="apply") as pool:
            try:
                pending = iter(calls)
                while True:
                    call = handed_over.popleft() if handed_over else next(pending, None)
                    if isinstance(call, NotSent):
                        self._not_sent(call)
                        continue
                    if call is None and not in_flight:
                        break
                    # One settlement taken per intent recorded, so the workers always have the next call; and one
                    # whenever there is nothing new to record, as it may hand over more.
                    if call is None or in_flight >= self.parallelism or not done.empty():
                        settled = done.get()
                        in_flight -= 1  # before settling: a settlement that raises is no longer in flight
                        handed_over.extend(self._settle(*settled))
                    if call is None:
                        continue
                    if self.stop.is_set():
                        rest = (*handed_over, *pending)
                        self._result.skipped += call.size + sum(c.size for c in rest if isinstance(c, Call))
                        break
                    self._record_intent(call)
                    future = pool.submit(self._guarded, call)
                    future.add_done_callback(functools.partial(_deliver, done, call))
                    in_flight += 1
            except BaseException as err:
                self.stop.set()
                failure = err
            while in_flight:
                settled = done.get()
                in_flight -= 1
                try:
                    self._settle(*settled)
                except KeyboardInterrupt:
                    raise  # a second Ctrl-C: quit now; the open intents are resolved by the next run
                except BaseException as err:
                    self.stop.set()
                    failure = failure or err
        if failure is not None:
            raise failure

    def _guarded(self, call: Call) -> Settlement:
        failpoints.hit("before_send", call.intent.action)
        if self._guard is not None:
            self._guard()
        return call.run()

    def _record_intent(self, call: Call) -> None:
        if call.resources is None:
            return
        self.store.record_intent(intent=call.intent, resources=call.resources)
        failpoints.hit("after_intent", call.intent.action)
        addresses = call.intent.addresses
        self._emit(
            ApplyEvent(
                EventType.INTENT,
                addresses[0] if len(addresses) == 1 else None,
                call.intent.operation_id,
                size=len(addresses),
            )
        )

    def _settle(self, call: Call, future: Future[Settlement]) -> list[Call]:
        """Record what became of ``call``; returns the calls it hands its addresses over to, recorded (none once
        stopping: then the settlement's own account stands, and its intent stays open for the next run)."""
        settlement = future.result()  # a call's unexpected error is raised here, on the writing thread
        op = call.intent.operation_id
        for event in settlement.events:
            self._emit(event)
        if settlement.then and not self.stop.is_set():
            return self._hand_over(call, settlement.then)
        if settlement.outcomes or settlement.resolved:
            self._record(op, settlement.outcomes, resolved=settlement.resolved, updated=settlement.updated)
        for address, why in settlement.refused:
            self._result.failed.append((address, why))
            self._emit(ApplyEvent(EventType.FAILED, address, op, message=why))
        for address in settlement.forget:
            self.store.forget(address=address)
            self._result.deleted += 1
            self._emit(ApplyEvent(EventType.DELETED, address, op))
        if settlement.adopted is not None:
            self._result.adopted += 1
            self._emit(ApplyEvent(EventType.ADOPTED, call.intent.addresses[0], op, settlement.adopted))
        if settlement.unresolved:
            self._result.unresolved.extend((a, settlement.why) for a in settlement.unresolved)
            for address in settlement.unresolved:
                self._emit(ApplyEvent(EventType.UNRESOLVED, address, op, message=settlement.why))
        if settlement.stop is not None:
            if self._result.stopped_by is None:
                self._result.stopped_by = settlement.stop
            self.stop.set()
        return []

    def _hand_over(self, call: Call, successors: Sequence[Call]) -> list[Call]:
        """Record the intents of the calls that take ``call``'s addresses over, then close its intent. An address
        reads as the newest open intent that covers it, so wherever a crash falls in between, the next run
        finds each address with one owner (``applier/toloka.py`` says how it settles the rest)."""
        for successor in successors:
            self._record_intent(successor)
        self._record(call.intent.operation_id, [], resolved=True)
        return [dataclasses.replace(successor, resources=None) for successor in successors]

    def _record(self, operation_id: str, outcomes: Sequence[Outcome], *, resolved: bool, updated: bool = False) -> None:
        failpoints.hit("after_send")
        self.store.record_outcomes(operation_id=operation_id, outcomes=outcomes, resolved=resolved)
        failpoints.hit("after_outcome")
        created = [o for o in outcomes if o.status is Status.CREATED]
        failed = [o for o in outcomes if o.status is Status.FAILED]
        if updated:
            self._result.updated += len(created)
            for outcome in created:
                self._emit(ApplyEvent(EventType.UPDATED, outcome.address, operation_id, outcome.remote_id))
            created = []
        self._result.created += len(created)
        self._result.failed.extend((o.address, o.error or "failed") for o in failed)
        if self.each_created:
            for outcome in created:
                self._emit(ApplyEvent(EventType.CREATED, outcome.address, operation_id, outcome.remote_id))
        elif created:
            self._emit(ApplyEvent(EventType.CREATED, operation_id=operation_id, size=len(created)))
        for outcome in failed:
            self._emit(ApplyEvent(EventType.FAILED, outcome.address, operation_id, message=outcome.error))

    def _forget_failed(self, action: Action) -> None:
        """A resource whose create failed has no remote object: deleting it is dropping it from the state."""
        self.store.forget(address=action.address)
        self._result.deleted += 1
        self._emit(ApplyEvent(EventType.DELETED, action.address))

    def _not_sent(self, refused: NotSent) -> None:
        for address in refused.addresses:
            self._result.failed.append((address, refused.why))
            self._emit(ApplyEvent(EventType.FAILED, address, message=f"not sent: {refused.why}"))

    def _emit(self, event: ApplyEvent) -> None:
        self._on_event(event)


def _deliver(done: queue.SimpleQueue[tuple[Call, Future[Settlement]]], call: Call, future: Future[Settlement]) -> None:
    done.put((call, future))


__all__ = ["PROVIDER_MODULES", "Applier"]
