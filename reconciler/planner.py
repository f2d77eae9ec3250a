"""Desired resources + recorded state -> Plan. A pure function: no network, no database.

The comparison is by content hash, so a million unchanged resources cost a million string comparisons; deepdiff
runs only for the few resources that differ, to explain them. The caller passes ``load_specs`` to fetch the
recorded specs of exactly those resources, which keeps the database out of this module.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping
from typing import Any

from reconciler.errors import PlanError
from reconciler.plan import Action, ActionType, FieldChange, Plan
from reconciler.resources import ProviderConfig, Resource, kind_of_address
from reconciler.state.base import ResourceSummary, Status

LoadSpecs = Callable[[list[str]], Mapping[str, dict[str, Any]]]


def make_plan(
    *,
    desired: Mapping[str, Resource],
    providers: Mapping[str, ProviderConfig],
    recorded: Iterable[ResourceSummary],
    load_specs: LoadSpecs,
    lineage: str,
    serial: int,
    workspace: str,
    manifest_digest: str,
    created_at: str = "",
    targets: Collection[str] = (),
    replace: Collection[str] = (),
) -> Plan:
    known = set(desired)
    _check_addresses(targets, known, recorded_extra=(), option="--target")
    actions: list[Action] = []
    noop = 0
    changed: list[Resource] = []
    seen: set[str] = set()
    recorded_by_address: dict[str, ResourceSummary] = {}
    for summary in recorded:
        recorded_by_address[summary.address] = summary
    _check_addresses(replace, known, recorded_extra=recorded_by_address, option="--replace")

    def selected(address: str) -> bool:
        return not targets or any(_matches(address, t) for t in targets)

    for address, resource in desired.items():
        seen.add(address)
        rec = recorded_by_address.get(address)
        if rec is not None and rec.status is Status.PENDING:
            actions.append(_resolve(rec))
            continue
        if targets and not selected(address):
            continue
        if rec is None:
            actions.append(_from_resource(ActionType.CREATE, resource, "not in the state"))
        elif rec.status is Status.FAILED:
            actions.append(
                _from_resource(
                    ActionType.CREATE,
                    resource,
                    "the last attempt failed; trying again",
                    attempt=rec.attempt + 1,
                )
            )
        elif address in replace:
            actions.append(
                _from_resource(
                    ActionType.REPLACE,
                    resource,
                    "replacement requested with --replace",
                    attempt=rec.attempt + 1,
                    remote_id=rec.remote_id,
                )
            )
        elif rec.spec_hash != resource.spec_hash:
            changed.append(resource)
        else:
            noop += 1

    if changed:
        before = load_specs([r.address for r in changed])
        for resource in changed:
            rec = recorded_by_address[resource.address]
            actions.append(
                _from_resource(
                    ActionType.CHANGE,
                    resource,
                    f"the manifest differs from what was created; create-only API: use --replace "
                    f"{resource.address} to create a new object",
                    remote_id=rec.remote_id,
                    attempt=rec.attempt,
                    diff=explain(before.get(resource.address, {}), resource.spec),
                )
            )

    for address, rec in recorded_by_address.items():
        if address in seen:
            continue
        if rec.status is Status.PENDING:
            actions.append(_resolve(rec))
        elif selected(address):
            actions.append(
                Action(
                    type=ActionType.ORPHAN,
                    address=address,
                    kind=rec.kind,
                    provider=rec.provider,
                    reason="in the state but no longer in the manifests; the remote object stays "
                    f"(no delete API); `reconciler state forget {address}` drops it",
                    remote_id=rec.remote_id,
                    spec_hash=rec.spec_hash,
                )
            )

    first = (ActionType.RESOLVE, ActionType.CREATE, ActionType.REPLACE)
    ordered = [a for t in first for a in actions if a.type is t] + [a for a in actions if a.type not in first]
    return Plan(
        lineage=lineage,
        serial=serial,
        workspace=workspace,
        manifest_digest=manifest_digest,
        actions=tuple(ordered),
        noop_count=noop,
        providers={name: {"type": p.type, "spec": p.spec} for name, p in providers.items()},
        created_at=created_at,
    )


def _matches(address: str, target: str) -> bool:
    """A target names one address, or every suite of a set (``TaskSuiteSet/reviews`` covers its suites)."""
    return address == target or address.startswith(target + "/")


def _check_addresses(wanted: Collection[str], known: set[str], *, recorded_extra: Collection[str], option: str) -> None:
    for target in wanted:
        if target in known or target in recorded_extra:
            continue
        if any(_matches(a, target) for a in known):
            continue
        raise PlanError(
            f"{option} {target}: no such resource in the manifests (addresses look like "
            f"PerfTestTask/NAME, TaskSuite/NAME or TaskSuiteSet/NAME/KEY)"
        )


def _from_resource(
    action_type: ActionType,
    resource: Resource,
    reason: str,
    *,
    attempt: int = 0,
    remote_id: str | None = None,
    diff: tuple[FieldChange, ...] = (),
) -> Action:
    return Action(
        type=action_type,
        address=resource.address,
        kind=resource.kind,
        provider=resource.provider,
        reason=reason,
        spec=resource.spec,
        spec_hash=resource.spec_hash,
        attempt=attempt,
        remote_id=remote_id,
        diff=diff,
    )


def _resolve(rec: ResourceSummary) -> Action:
    return Action(
        type=ActionType.RESOLVE,
        address=rec.address,
        kind=rec.kind or kind_of_address(rec.address),
        provider=rec.provider,
        reason="an earlier apply was interrupted after recording its intent; apply will find out what "
        "became of it before anything else",
        spec_hash=rec.spec_hash,
        attempt=rec.attempt,
        operation_id=rec.operation_id,
    )


def explain(before: Any, after: Any) -> tuple[FieldChange, ...]:
    """Field-level differences, with paths a person reads (``tasks[0].input_values.text``)."""
    from deepdiff import DeepDiff  # only plans with changes pay for importing it

    diff = DeepDiff(before, after, view="tree", ignore_order=False)
    changes: list[FieldChange] = []
    for report_type, items in diff.items():
        for item in items:
            path = _readable_path(item.path(output_format="list"))
            if report_type in ("dictionary_item_added", "iterable_item_added", "attribute_added"):
                changes.append(FieldChange(path, "added", None, item.t2))
            elif report_type in ("dictionary_item_removed", "iterable_item_removed", "attribute_removed"):
                changes.append(FieldChange(path, "removed", item.t1, None))
            else:
                changes.append(FieldChange(path, "changed", item.t1, item.t2))
    changes.sort(key=lambda c: c.path)
    return tuple(changes)


def _readable_path(parts: list[Any]) -> str:
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(whole spec)"
