"""Applying to CodeArts PerfTest: one intent per task, and finding out what an unanswered create made.

The API has no idempotency key. Before creating anything, each test project is listed once and the ids of the
tasks that already bear each name are written into the intent: none of them is what this create makes (one may
be the task a replacement replaces, which stays: nothing is ever deleted). When a create's outcome is unknown
(timeout, dropped connection, 5xx, a 2xx without a task id, crash), the test project is listed again: exactly
one task with the intended name that is not among those ids is ours and is adopted; none (in two listings that
could both be read) means nothing was created, and the request is sent again; more than one is ambiguous, and
apply stops and says so instead of guessing. A listing that cannot be read leaves the outcome unknown.

A test project that cannot be listed first gets nothing sent: recovery after a lost answer could not tell our
task from one that was there before. A create that finds a task with its name that the state does not hold for
its address (a lost state, most likely) is not sent either: the refusal names the ``state import`` that adopts
the task, and the other addresses go on.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterator
from typing import Any

from reconciler.applier.events import ApplyEvent, EventType
from reconciler.applier.work import (
    Call,
    NotSent,
    Settlement,
    delete_call,
    operation_id,
    pending_resources,
    update_call,
)
from reconciler.errors import (
    AmbiguousAdoptionError,
    OutcomeUnknownError,
    PermanentProviderError,
    ProviderError,
)
from reconciler.plan import Action, ActionType
from reconciler.providers.perftest import PerfTestClient
from reconciler.state.base import Intent, Outcome, StateStore, Status

INTENT_ACTION = "perftest_create"
UPDATE_ACTION = "perftest_update"
DELETE_ACTION = "perftest_delete"
#: Sends of one create whose outcome stayed unknown each time, before it is left for the next run.
RESENDS = 3
#: Seconds between the two listings that must both miss a task before it is resent (a listing may lag).
SETTLE_SECONDS = 1.0
#: Journal entries of an address read to tell its own earlier tasks from others bearing the same name.
HISTORY_LIMIT = 1000
#: The journal event of ``state forget`` (``state/base.py``): the tasks the address had until then are no longer its.
FORGOTTEN = "forgotten"
#: What the refusal of a create writes for the manifests' paths, which apply does not know.
MANIFESTS_PLACEHOLDER = "<manifests>"


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
            warnings: list[ApplyEvent] = []
            if before:
                refusal, warnings = self._same_named(action, project, name, before)
                if refusal is not None:
                    yield NotSent([action.address], refusal)
                    continue
            intent = Intent(
                operation_id=operation_id(self.lineage, action.address, action.spec_hash or "", action.attempt),
                provider=action.provider,
                action=INTENT_ACTION,
                addresses=(action.address,),
                fingerprint=action.spec_hash or "",
                detail={"test_project_id": project, "name": name, "preexisting_ids": before, "body": spec},
            )
            if action.type is ActionType.REPLACE and action.remote_id:
                intent.detail["replaces"] = action.remote_id
            yield Call(intent, pending_resources([action]), functools.partial(self._create, intent, warnings))

    def updates(self, actions: list[Action]) -> Iterator[Call | NotSent]:
        """Each task changed in place by a ``PUT`` of its whole body: sent again as it is, it changes nothing
        more, so an update whose outcome is unknown is simply sent again."""
        for action in actions:
            detail = {"task_id": int(action.remote_id or 0), "body": action.spec or {}}
            yield update_call(self.lineage, action, intent_action=UPDATE_ACTION, detail=detail, run=self._update)

    def deletions(self, actions: list[Action]) -> Iterator[Call | NotSent]:
        for action in actions:
            detail = {"task_id": int(action.remote_id or 0)}
            yield delete_call(self.lineage, action, intent_action=DELETE_ACTION, detail=detail, run=self._delete)

    def resolution(self, intent: Intent) -> Call:
        if intent.action == UPDATE_ACTION:
            return Call(intent, None, functools.partial(self._update, intent))
        if intent.action == DELETE_ACTION:
            return Call(intent, None, functools.partial(self._delete, intent))
        return Call(intent, None, functools.partial(self._resolve, intent))

    def _same_named(
        self, action: Action, project: int, name: str, ids: list[str]
    ) -> tuple[str | None, list[ApplyEvent]]:
        """What to do about the tasks already named like the one about to be created: a refusal (nothing is sent
        for the address), or warnings that say truly what stays.

        The task being replaced is deleted once its replacement exists; an earlier one of this address (left by
        a replacement made before replacements deleted, or restored by hand) stays, and is warned of. A
        create that meets a task the state does not hold for its address is refused: it is most likely this
        address's own task from a lost (or forgotten) state, and a second one is never made by default; the
        refusal names the ``state import`` that adopts it. A replacement still warns of such a task and goes
        on: the state holds the address, and a new task with the name is what ``--replace`` asked for.

        Only a create that meets a same-named task pays for reading the address's history."""
        ours = {action.remote_id} if action.remote_id else set()
        if any(i not in ours for i in ids):
            earlier: set[str] = set()
            for entry in self.store.history(address=action.address, limit=HISTORY_LIMIT):
                if entry.event == FORGOTTEN:
                    earlier = set()  # what the state was told to forget is no longer this address's
                elif entry.detail.get("remote_id") is not None:
                    earlier.add(str(entry.detail["remote_id"]))
            ours |= earlier
        kept = [i for i in ids if i in ours and i != action.remote_id]
        others = [i for i in ids if i not in ours]
        if others and action.type is not ActionType.REPLACE:
            return _unknown_task_refusal(action.address, project, name, others), []
        warnings = []
        if kept:
            one = len(kept) == 1
            warnings.append(
                ApplyEvent(
                    EventType.WARNING,
                    action.address,
                    message=f"the task{'' if one else 's'} this address had before (id {', '.join(kept)}) "
                    f"{'stays' if one else 'stay'} in test project {project} under the same name {name!r}: only the "
                    f"one replaced now is deleted; delete {'it' if one else 'them'} in CodeArts PerfTest if no longer "
                    "needed",
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
        return None, warnings

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

    def _delete(self, intent: Intent) -> Settlement:
        """A task already gone is deleted as far as anyone can tell: done, not failed."""
        address, task_id = intent.addresses[0], int(intent.detail["task_id"])
        try:
            self.client.delete_task(task_id)
        except PermanentProviderError as err:
            return Settlement(resolved=True, refused=[(address, f"not deleted: {err}")])
        except ProviderError as err:
            return Settlement(unresolved=[address], why=f"{err}; run apply again to delete it")
        return Settlement(resolved=True, forget=[address])

    def _update(self, intent: Intent) -> Settlement:
        address, task_id = intent.addresses[0], int(intent.detail["task_id"])
        try:
            self.client.update_task(task_id, dict(intent.detail.get("body") or {}))
        except PermanentProviderError as err:
            return Settlement(resolved=True, refused=[(address, f"not updated (the task is as it was): {err}")])
        except ProviderError as err:
            return Settlement(unresolved=[address], why=f"{err}; run apply again to update it")
        return Settlement([Outcome(address, Status.CREATED, str(task_id))], resolved=True, updated=True)

    def _create(self, intent: Intent, warnings: list[ApplyEvent]) -> Settlement:
        settlement = self._delete_replaced(intent, self._send_and_settle(intent, RESENDS))
        settlement.events[:0] = warnings
        return settlement

    def _resolve(self, intent: Intent) -> Settlement:
        found = self._find(intent)
        if found is None:
            found = self._send_and_settle(intent, RESENDS)
        return self._delete_replaced(intent, found)

    def _delete_replaced(self, intent: Intent, settled: Settlement) -> Settlement:
        """Once a replacement is created, the task it replaces is deleted, under the create's own intent: a run
        that dies before it is done leaves the intent open, and its resolution deletes again (gone is done)."""
        old = intent.detail.get("replaces")
        if not old or not any(o.status is Status.CREATED for o in settled.outcomes):
            return settled
        address = intent.addresses[0]
        try:
            self.client.delete_task(int(old))
        except PermanentProviderError as err:
            settled.refused.append((address, f"created, but the task {old} it replaces is still there: {err}"))
        except ProviderError as err:
            return Settlement(
                settled.outcomes,
                unresolved=[address],
                why=f"the task {old} it replaces is not deleted yet: {err}; run apply again",
                events=settled.events,
            )
        return settled

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


def _unknown_task_refusal(address: str, project: int, name: str, ids: list[str]) -> str:
    """Why a create meeting same-named tasks the state does not hold is not sent, and how to adopt the right one."""
    if len(ids) == 1:
        found = f"a task named {name!r} (id {ids[0]})"
        adopt = f"`reconciler state import {address} {ids[0]} {MANIFESTS_PLACEHOLDER}`"
    else:
        found = f"{len(ids)} tasks named {name!r} (ids {', '.join(ids)})"
        adopt = f"`reconciler state import {address} ID {MANIFESTS_PLACEHOLDER}` with the id of the one that is its"
    return (
        f"test project {project} already has {found} that the state does not hold for this address (a lost or "
        f"forgotten state?); reconciler will not create a second one. If it is this address's task, adopt it: "
        f"{adopt} ({MANIFESTS_PLACEHOLDER}: the manifest paths given to apply); if it is not, rename or delete "
        "it in CodeArts PerfTest, then run apply again"
    )
