"""Each kind of action the planner makes, with the reason a person reads beside it (as OpenTofu gives its
action reasons): why a change is an update or needs a replacement, what a delete does to each API's objects."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from reconciler.encoding import content_hash
from reconciler.errors import PlanError
from reconciler.kinds import IN_PLACE_FIELDS, PERFTEST_TASK
from reconciler.plan import Action, ActionType, FieldChange
from reconciler.resources import Resource, kind_of_address
from reconciler.state.base import ResourceSummary, Status


def from_resource(
    action_type: ActionType,
    resource: Resource,
    reason: str,
    *,
    attempt: int = 0,
    remote_id: str | None = None,
    diff: tuple[FieldChange, ...] = (),
    operation_id: str | None = None,
) -> Action:
    """``operation_id``: of an update, the intent that last wrote the resource (its update's id is made from
    it, so that an update back to an earlier spec never reuses an id)."""
    return Action(
        action_type,
        resource.address,
        resource.kind,
        resource.provider,
        reason,
        resource.spec,
        resource.spec_hash,
        attempt,
        remote_id,
        operation_id,
        diff,
    )


def not_in_place(kind: str, before: Mapping[str, Any], after: Mapping[str, Any]) -> list[str]:
    """The top-level fields that differ and that the kind's API cannot change in place (sorted); an overlap
    dropped from a suite (left to the pool's default) is one of them, as no PATCH says "the pool's default"."""
    allowed = IN_PLACE_FIELDS.get(kind, frozenset())
    changed = sorted(k for k in {*before, *after} if before.get(k, _MISSING) != after.get(k, _MISSING))
    fixed = [k for k in changed if k not in allowed]
    if "overlap" in changed and "overlap" not in after and kind != PERFTEST_TASK:
        fixed.append("overlap")
    return fixed


_MISSING = object()


def put_back(resource: Resource, rec: ResourceSummary, drifted: tuple[FieldChange, ...]) -> Action:
    """A remote change of a field the API changes in place is put back with an update; any other is refused
    as a change the manifest cannot put back without a new object."""
    top = sorted({change.path.split(".", 1)[0] for change in drifted})
    allowed = IN_PLACE_FIELDS.get(resource.kind, frozenset())
    fixed = [field for field in top if field not in allowed]
    if fixed:
        reason = (
            f"changed remotely behind the tool's back (read by refresh): {', '.join(fixed)} cannot be put back in "
            f"place; use --replace {resource.address} to create a new object as the manifest says"
        )
        action_type = ActionType.CHANGE
    else:
        reason = "changed remotely behind the tool's back (read by refresh): put back in place"
        action_type = ActionType.UPDATE
    return from_resource(
        action_type,
        resource,
        reason,
        remote_id=rec.remote_id,
        attempt=rec.attempt,
        diff=drifted,
        operation_id=rec.operation_id,
    )


def ignoring(resource: Resource, recorded_spec: Mapping[str, Any]) -> Resource:
    """The resource with each field of its ``lifecycle.ignore_changes`` as recorded, not as the manifest says."""
    spec = {k: v for k, v in resource.spec.items() if k not in resource.ignore_changes}
    spec.update((k, recorded_spec[k]) for k in resource.ignore_changes if k in recorded_spec)
    return dataclasses.replace(resource, spec=spec, spec_hash=content_hash(spec))


def replacement(resource: Resource, rec: ResourceSummary, fixed: list[str], diff: tuple[FieldChange, ...]) -> Action:
    if resource.prevent_destroy:
        raise PlanError(
            f"{resource.address}: {', '.join(fixed)} cannot be changed in place, and lifecycle.replace_on_change would "
            "replace it, but lifecycle.prevent_destroy forbids deleting (or retiring) what it replaces; nothing was "
            "sent"
        )
    return from_resource(
        ActionType.REPLACE,
        resource,
        f"{', '.join(fixed)} cannot be changed in place, and lifecycle.replace_on_change is set: a new object is "
        "created, then the old one deleted (a suite: retired)",
        attempt=rec.attempt + 1,
        remote_id=rec.remote_id,
        diff=diff,
    )


def orphan_reason(rec: ResourceSummary) -> str:
    if rec.status is not Status.CREATED or not rec.remote_id:
        return (
            "in the state but no longer in the manifests; its create failed, so there is no remote object: "
            f"`apply --prune` or `reconciler state forget {rec.address}` drops it"
        )
    return (
        "in the state but no longer in the manifests; the remote object stays (`apply --prune` deletes it); "
        f"`reconciler state forget {rec.address}` drops it from the state alone"
    )


def delete_action(rec: ResourceSummary, why: str) -> Action:
    how = (
        "deleted (DELETE)"
        if rec.kind == PERFTEST_TASK
        else "retired: its overlap set to 0, so it is no longer issued (Toloka has no delete)"
    )
    if rec.status is not Status.CREATED or not rec.remote_id:
        how = "its create failed, so there is no remote object: only dropped from the state"
    return Action(
        ActionType.DELETE,
        rec.address,
        rec.kind,
        rec.provider,
        f"{why}: {how}",
        spec_hash=rec.spec_hash,
        remote_id=rec.remote_id,
        attempt=rec.attempt,
        operation_id=rec.operation_id,
    )


def grown(recorded_spec: Mapping[str, Any], spec: Mapping[str, Any]) -> bool:
    """Whether ``spec`` is ``recorded_spec`` with tasks appended and nothing else changed."""
    before, after = recorded_spec.get("tasks"), spec.get("tasks")
    if not isinstance(before, list) or not isinstance(after, list) or not 0 < len(before) < len(after):
        return False
    same_rest = {k: v for k, v in recorded_spec.items() if k != "tasks"} == {
        k: v for k, v in spec.items() if k != "tasks"
    }
    return same_rest and after[: len(before)] == before


def piece(resource: Resource, start: int) -> Resource:
    """The part of a set's suite from its ``start``-th row on, named by that row's key."""
    spec = {**resource.spec, "tasks": resource.spec["tasks"][start:]}
    prefix = resource.address[: -len(resource.address.rsplit("/", 1)[1])]
    return Resource(
        prefix + resource.row_keys[start],
        resource.kind,
        resource.provider,
        spec,
        content_hash(spec),
        resource.source,
        resource.row_keys[start:],
    )


def import_action(resource: Resource, remote_id: str) -> Action:
    return Action(
        ActionType.IMPORT,
        resource.address,
        resource.kind,
        resource.provider,
        f"not in the state, but remote object {remote_id} holds exactly this (read by refresh); apply records it "
        "and creates nothing",
        resource.spec,
        resource.spec_hash,
        0,
        remote_id,
    )


def resolve_action(rec: ResourceSummary) -> Action:
    return Action(
        ActionType.RESOLVE,
        rec.address,
        rec.kind or kind_of_address(rec.address),
        rec.provider,
        "an earlier apply was interrupted after recording its intent; apply will find out what "
        "became of it before anything else",
        spec_hash=rec.spec_hash,
        attempt=rec.attempt,
        operation_id=rec.operation_id,
    )
