"""Applying to CodeArts PerfTest: one intent per task, and finding out what an unanswered create made.

The API has no idempotency key. Before creating anything, each test project is listed once and the ids of the
tasks that already bear each name are written into the intent: none of them is what this create makes (one may
be the task a replacement replaces, which stays: nothing is ever deleted). When a create's outcome is unknown
(timeout, dropped connection, 5xx, crash), the test project is listed again: exactly one task with the intended
name that is not among those ids is ours and is adopted; none means nothing was created, and the request is
sent again; more than one is ambiguous, and apply stops and says so instead of guessing.

A test project that cannot be listed first gets nothing sent: recovery after a lost answer could not tell our
task from one that was there before.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterator
from typing import Any

from reconciler.applier.events import ApplyEvent, EventType
from reconciler.applier.work import Call, NotSent, Settlement, operation_id, pending_resources
from reconciler.errors import (
    AmbiguousAdoptionError,
    OutcomeUnknownError,
    PermanentProviderError,
    ProviderError,
)
from reconciler.plan import Action
from reconciler.providers.perftest import PerfTestClient
from reconciler.state.base import Intent, Outcome, StateStore, Status

INTENT_ACTION = "perftest_create"
#: Sends of one create whose outcome stayed unknown each time, before it is left for the next run.
RESENDS = 3
#: Seconds between the two listings that must both miss a task before it is resent (a listing may lag).
SETTLE_SECONDS = 1.0
#: Journal entries of an address read to tell its own earlier tasks from others bearing the same name.
HISTORY_LIMIT = 1000


class PerfTestModule:
    """The calls that create one provider's PerfTest tasks and settle what earlier runs left open."""

    def __init__(
        self,
        *,
        name: str,
        client: PerfTestClient,
        store: StateStore,
        lineage: str,
        perftest_settle: float = SETTLE_SECONDS,
        sleep: Callable[[float], None] = time.sleep,
        **_: object,
    ) -> None:
        self.name = name
        self.client = client
        self.store = store
        self.lineage = lineage
        self.settle_seconds = perftest_settle
        self._sleep = sleep

    def creations(self, actions: list[Action]) -> Iterator[Call | NotSent]:
        existing = self._existing_names(actions)
        for action in actions:
            spec = action.spec or {}
            project, name = int(spec["project_id"]), str(spec["name"])
            names = existing[project]
            if isinstance(names, ProviderError):
                yield NotSent([action.address], f"could not list test project {project} first: {names}")
                continue
            before = list(names.get(name, []))
            intent = Intent(
                operation_id=operation_id(self.lineage, action.address, action.spec_hash or "", action.attempt),
                provider=action.provider,
                action=INTENT_ACTION,
                addresses=(action.address,),
                fingerprint=action.spec_hash or "",
                detail={"test_project_id": project, "name": name, "preexisting_ids": before, "body": spec},
            )
            warnings = self._same_name_warnings(action, project, name, before) if before else []
            yield Call(intent, pending_resources([action]), functools.partial(self._create, intent, warnings))

    def resolution(self, intent: Intent) -> Call:
        return Call(intent, None, functools.partial(self._resolve, intent))

    def _same_name_warnings(self, action: Action, project: int, name: str, ids: list[str]) -> list[ApplyEvent]:
        """What to say of the tasks already named like the one about to be created, each truly: the task being
        replaced (and any earlier one of this address) stays, as nothing is ever deleted; any other is not one
        this state made for the address.

        Only a create that meets a same-named task pays for reading the address's history."""
        ours = {action.remote_id} if action.remote_id else set()
        if any(i not in ours for i in ids):
            ours |= {
                str(entry.detail["remote_id"])
                for entry in self.store.history(address=action.address, limit=HISTORY_LIMIT)
                if entry.detail.get("remote_id") is not None
            }
        kept = [i for i in ids if i in ours]
        others = [i for i in ids if i not in ours]
        warnings = []
        if kept:
            one = len(kept) == 1
            which = (
                "the task it replaces"
                if kept == [action.remote_id]
                else f"the task{'' if one else 's'} this address had before"
            )
            warnings.append(
                ApplyEvent(
                    EventType.WARNING,
                    action.address,
                    message=f"{which} (id {', '.join(kept)}) {'stays' if one else 'stay'} in test project {project} "
                    f"under the same name {name!r}; reconciler never deletes tasks: delete {'it' if one else 'them'} "
                    "in CodeArts PerfTest once no longer needed",
                )
            )
        if others:
            warnings.append(
                ApplyEvent(
                    EventType.WARNING,
                    action.address,
                    message=f"test project {project} already has a task named {name!r} (id {', '.join(others)}) "
                    "that this state did not create for this address; creating another with the same name",
                )
            )
        return warnings

    def _existing_names(self, actions: list[Action]) -> dict[int, dict[str, list[str]] | ProviderError]:
        """Task ids per name in each test project, before we create anything; a project that cannot be listed
        maps to the error."""
        existing: dict[int, dict[str, list[str]] | ProviderError] = {}
        for action in actions:
            project = int((action.spec or {})["project_id"])
            if project in existing:
                continue
            names: dict[str, list[str]] = {}
            try:
                for task in self.client.list_tasks(project):
                    names.setdefault(str(task.get("name")), []).append(str(task.get("id")))
            except ProviderError as err:
                existing[project] = err
                continue
            existing[project] = names
        return existing

    # --- on a worker thread ------------------------------------------------------------------------------------

    def _create(self, intent: Intent, warnings: list[ApplyEvent]) -> Settlement:
        settlement = self._send_and_settle(intent, RESENDS)
        settlement.events[:0] = warnings
        return settlement

    def _resolve(self, intent: Intent) -> Settlement:
        found = self._find(intent)
        if found is not None:
            return found
        return self._send_and_settle(intent, RESENDS)

    def _send_and_settle(self, intent: Intent, sends: int) -> Settlement:
        address, op = intent.addresses[0], intent.operation_id
        body: dict[str, Any] = dict(intent.detail.get("body") or {})
        events: list[ApplyEvent] = []
        for _ in range(sends):
            try:
                task_id = self.client.create_task(body)
            except OutcomeUnknownError as err:
                found = self._find(intent)
                if found is not None:
                    found.events[:0] = events
                    return found
                events.append(
                    ApplyEvent(EventType.WARNING, address, op, message=f"{err}; nothing was created, resending")
                )
                continue
            except PermanentProviderError as err:
                return Settlement([Outcome(address, Status.FAILED, error=str(err))], resolved=True, events=events)
            except ProviderError as err:
                failed = Outcome(address, Status.FAILED, error=f"not sent: {err}")
                return Settlement([failed], resolved=True, events=events)
            return Settlement([Outcome(address, Status.CREATED, str(task_id))], resolved=True, events=events)
        why = "the outcome stayed unknown after several attempts; run apply again to resolve it"
        return Settlement(unresolved=[address], why=why, events=events)

    def _find(self, intent: Intent) -> Settlement | None:
        """What became of a create whose answer was lost, looking twice before concluding nothing was made.

        The second look, ``perftest_settle`` seconds later, covers a listing that lags behind a create that
        just happened: resending on a single empty listing would be the one way to make a duplicate. None
        means nothing was created."""
        found = self._adopt(intent)
        if found is None:
            self._sleep(self.settle_seconds)
            found = self._adopt(intent)
        return found

    def _adopt(self, intent: Intent) -> Settlement | None:
        address, op, detail = intent.addresses[0], intent.operation_id, intent.detail
        project, name = int(detail["test_project_id"]), str(detail["name"])
        preexisting = {str(i) for i in detail.get("preexisting_ids") or []}
        try:
            candidates = [
                t for t in self.client.find_tasks_by_name(project, name) if str(t.get("id")) not in preexisting
            ]
        except ProviderError as err:
            return Settlement(unresolved=[address], why=f"could not list test project {project}: {err}")
        if len(candidates) == 1:
            remote_id = str(candidates[0]["id"])
            return Settlement([Outcome(address, Status.CREATED, remote_id)], resolved=True, adopted=remote_id)
        if len(candidates) > 1:
            ids = ", ".join(str(t.get("id")) for t in candidates)
            error = AmbiguousAdoptionError(
                f"test project {project} has {len(candidates)} tasks named {name!r} that could be the one this "
                f"interrupted create made (ids {ids}); reconciler will not guess. Keep one, delete the others "
                f"in CodeArts PerfTest, then `reconciler state import {address} ID` or run apply again",
                provider=intent.provider,
                address=address,
                operation_id=op,
            )
            return Settlement(unresolved=[address], why=str(error), stop=str(error))
        return None
