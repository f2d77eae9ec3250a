"""Changing a Toloka suite in place: ``PATCH /task-suites/{id}`` with the three fields it takes; and retiring
one, since Toloka has no delete: ``PATCH /task-suites/{id}/set-overlap-or-min`` to 0, so it is issued no more.

The patch carries the desired value of each of them, not a difference (a field the manifest leaves out is sent
as the server's default), so sending it again changes nothing more: an update whose outcome is unknown is
sent again under its intent. One suite, one request: Toloka has no batch patch, so 10,000 changed overlaps
are 10,000 requests at the provider's rate limit.
"""

from __future__ import annotations

from typing import Any

from reconciler.errors import PermanentProviderError, ProviderError
from reconciler.plan import Action
from reconciler.providers.toloka import TolokaClient
from reconciler.state.base import Intent, Outcome, Status

PATCH_ACTION = "toloka_patch"
RETIRE_ACTION = "toloka_retire"
#: What a suite holds when its spec leaves the field out.
PATCH_DEFAULTS = {"infinite_overlap": False, "issuing_order_override": 0}


def patch_detail(action: Action) -> dict[str, Any]:
    spec = action.spec or {}
    changes = {key: spec.get(key, default) for key, default in PATCH_DEFAULTS.items()}
    if "overlap" in spec:
        changes["overlap"] = spec["overlap"]
    options = spec.get("options") or {}
    return {"suite_id": action.remote_id, "changes": changes, "open_pool": bool(options.get("open_pool", False))}


def patch_suite(client: TolokaClient, intent: Intent) -> tuple[list[Outcome], list[tuple[str, str]], str | None]:
    """The outcome of the intent's patch, the refusals (the suite is as it was), or why it is still unknown."""
    address, detail = intent.addresses[0], intent.detail
    suite_id = str(detail["suite_id"])
    try:
        client.patch_task_suite(suite_id, dict(detail["changes"]), open_pool=bool(detail.get("open_pool")))
    except PermanentProviderError as err:
        return [], [(address, f"not updated (the suite is as it was): {err}")], None
    except ProviderError as err:
        return [], [], f"{err}; run apply again to update it"
    return [Outcome(address, Status.CREATED, suite_id)], [], None


def retire_suite(client: TolokaClient, suite_id: str) -> tuple[str | None, str | None]:
    """Set the suite's overlap to 0 (or to the least its progress allows: it is issued no more); a suite gone
    is retired too. Returns why Toloka refused it, or why its outcome is unknown; (None, None) when retired."""
    try:
        client.set_overlap_or_min(suite_id, 0)
    except PermanentProviderError as err:
        if err.status == 404 and err.code == "DOES_NOT_EXIST":
            return None, None
        return str(err), None
    except ProviderError as err:
        return None, str(err)
    return None, None


def retire_replaced(
    client: TolokaClient, outcomes: list[Outcome], replaced: dict[str, str]
) -> tuple[list[tuple[str, str]], str | None]:
    """Retire the suite each created replacement replaces, under the create's own intent: a run that dies before
    it is done leaves that intent open, and its resolution retires again (harmless: the overlap is 0 already).
    Returns the refusals (the old suite stays issued) and, if some retirement's outcome is unknown, why."""
    refused: list[tuple[str, str]] = []
    for outcome in outcomes:
        old = replaced.get(outcome.address)
        if outcome.status is not Status.CREATED or not old:
            continue
        refusal, unknown = retire_suite(client, old)
        if unknown is not None:
            return refused, f"the suite {old} it replaces is not retired yet: {unknown}"
        if refusal is not None:
            refused.append((outcome.address, f"created, but the suite {old} it replaces is still issued: {refusal}"))
    return refused, None
