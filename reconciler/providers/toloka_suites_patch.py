"""Changing an existing Toloka task suite in place: its overlap, its infinite overlap, its priority.

Toloka keeps no delete and no other change of a suite, so these two calls are all a plan can do to one short
of uploading it again: ``PATCH /task-suites/{id}`` with the fields to change, and ``PATCH
.../set-overlap-or-min``, which sets the overlap to the value asked or to the least the suite's progress allows
(``{"overlap": 0}`` stops it). Both carry the new value itself, never a step from the old one, so sending
either twice leaves the suite as sending it once: ``HttpClient`` may resend them after any transient failure.

Both answer the suite. A 2xx that is not that suite proves nothing about what happened to it, so it is
``OutcomeUnknownError`` (read the suite back), never taken as done; a suite Toloka does not know stays the
``PermanentProviderError`` with ``404 DOES_NOT_EXIST`` that ``http`` makes of it, so the caller can tell "gone"
from other refusals by its code.
"""

from __future__ import annotations

from typing import Any

from reconciler.errors import OutcomeUnknownError
from reconciler.providers.http import HttpClient
from reconciler.providers.quoting import excerpt

#: What ``PATCH /task-suites/{id}`` changes; Toloka refuses anything else, so it is refused before sending.
PATCHABLE_FIELDS = frozenset({"overlap", "infinite_overlap", "issuing_order_override"})
PATH = "/task-suites"


def patch_task_suite(
    http: HttpClient, provider: str, suite_id: str, changes: dict[str, Any], open_pool: bool, max_bytes: int
) -> dict[str, Any]:
    """The suite after ``changes``; ``open_pool`` opens its pool if closed. A field Toloka does not change is a
    ``ValueError``: a caller's mistake is cheaper found here than as a 400 halfway through an apply."""
    unknown = set(changes) - PATCHABLE_FIELDS
    if unknown:
        raise ValueError(f"task suite fields that cannot be changed: {sorted(unknown)}")
    params = {"open_pool": True} if open_pool else None
    path = f"{PATH}/{suite_id}"
    answer = http.request_json("PATCH", path, params=params, json=changes, idempotent=True, max_bytes=max_bytes)
    return _the_suite(answer, provider=provider, suite_id=suite_id, what=f"PATCH /api/v1{path}")


def set_overlap_or_min(http: HttpClient, provider: str, suite_id: str, overlap: int, max_bytes: int) -> dict[str, Any]:
    """The suite with its overlap set to ``overlap`` or, if its progress used more, to that: the answer says
    which, so the caller records what Toloka kept rather than what it asked for."""
    path = f"{PATH}/{suite_id}/set-overlap-or-min"
    answer = http.request_json("PATCH", path, json={"overlap": overlap}, idempotent=True, max_bytes=max_bytes)
    return _the_suite(answer, provider=provider, suite_id=suite_id, what=f"PATCH /api/v1{path}")


def _the_suite(answer: Any, *, provider: str, suite_id: str, what: str) -> dict[str, Any]:
    if not isinstance(answer, dict) or str(answer.get("id")) != suite_id:
        raise OutcomeUnknownError(
            f"{what} answered success, but not with task suite {suite_id} ({excerpt(answer)}); whether it changed "
            "is unknown: read it back before relying on it",
            provider=provider,
        )
    return answer
