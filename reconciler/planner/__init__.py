"""Desired resources + recorded state -> Plan. A pure function: no network, no database.

``actions`` makes each kind of action and says why it was chosen; ``diff`` explains a change field by field.

The comparison is by content hash, so a million unchanged resources cost a million string comparisons; deepdiff
runs only for the few resources that differ, to explain them. The caller passes ``load_specs`` to fetch the
recorded specs of exactly those resources, which keeps the database out of this module.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from reconciler.errors import PlanError
from reconciler.plan import Action, ActionType, FieldChange, Plan
from reconciler.planner.actions import (
    delete_action,
    from_resource,
    grown,
    ignoring,
    import_action,
    not_in_place,
    orphan_reason,
    piece,
    put_back,
    replacement,
    resolve_action,
)
from reconciler.planner.diff import explain
from reconciler.resources import ProviderConfig, Resource
from reconciler.speedups import cycle_collection_paused
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
    remote: RemoteFacts | None = None,
    prune: bool = False,
    destroy: bool = False,
) -> Plan:
    """The plan's actions come out in apply's order: resolves, imports, creates, replaces, then changes and
    orphans. ``remote`` is what a refresh read (``plan --refresh``); without it the remote is taken to hold
    what the state says.

    Resolve actions are the plan's account of intents left open by an interrupted apply; apply does not take
    them from the plan, it settles every open intent it finds in the state before anything else, so a plan
    made before another apply was killed still leaves nothing unsettled.

    ``prune``: orphans are deleted (retired, for Toloka suites) instead of reported. ``destroy``: the plan
    deletes (retires) every recorded resource the manifests declare, and does nothing else.
    """
    selected = _Selector(targets)
    found = _Found(selected, remote or RemoteFacts(), prune=prune)
    if destroy:
        recorded_by_address = {summary.address: summary for summary in recorded}
        check_selection(desired, recorded_by_address, targets=targets, replace=())
        found.sort_destroyed(desired, recorded_by_address)
        return Plan(
            lineage=lineage,
            serial=serial,
            workspace=workspace,
            manifest_digest=manifest_digest,
            actions=(*found.resolves, *found.orphans),
            noop_count=0,
            providers={name: {"type": p.type, "spec": p.spec} for name, p in providers.items()},
            created_at=created_at,
        )
    with cycle_collection_paused():
        recorded_by_address = {summary.address: summary for summary in recorded}
        check_selection(desired, recorded_by_address, targets=targets, replace=replace)
        found.sort_desired(desired, recorded_by_address, _Selector(replace))
    if found.changed:
        found.explain_changes(recorded_by_address, load_specs)
    # Every unchanged or changed resource is a recorded one that is still in the manifests; when they make up
    # the whole state, nothing recorded has gone from the manifests and the pass below would find nothing.
    if found.claimed or len(recorded_by_address) > found.noop + len(found.changed):
        with cycle_collection_paused():
            found.sort_undesired(desired, recorded_by_address)
    return Plan(
        lineage=lineage,
        serial=serial,
        workspace=workspace,
        manifest_digest=manifest_digest,
        actions=(*found.resolves, *found.imports, *found.creates, *found.replaces, *found.changes, *found.orphans),
        noop_count=found.noop + found.late_noop,
        providers={name: {"type": p.type, "spec": p.spec} for name, p in providers.items()},
        created_at=created_at,
    )


class _Selector:
    """The addresses a flag's ADDRESS arguments name (``_matches`` against all of them at once), for every flag
    alike: a set's address names each of its suites, and is checked once per suite.

    Called, it answers for ``--target``, where no address means everything; ``covers`` answers for
    ``--replace``, where no address means nothing.
    """

    def __init__(self, addresses: Collection[str]) -> None:
        self.any = bool(addresses)
        self._exact = frozenset(addresses)
        self._prefixes = tuple(f"{a}/" for a in addresses)

    def __call__(self, address: str) -> bool:
        return not self.any or address in self._exact or address.startswith(self._prefixes)

    def covers(self, address: str) -> bool:
        return address in self._exact or address.startswith(self._prefixes)


@dataclass(frozen=True, slots=True)
class RemoteFacts:
    """What a refresh read that the state does not say: recorded objects ``gone`` remotely, fields of
    recorded objects changed remotely (``drifted``), and unrecorded addresses a remote object matches exactly
    (``imports``: address to remote id)."""

    gone: Collection[str] = frozenset()
    drifted: Mapping[str, tuple[FieldChange, ...]] = field(default_factory=dict)
    imports: Mapping[str, str] = field(default_factory=dict)


@dataclass
class _Found:
    """Each kind of action goes to its own list as it is found, so ordering the plan costs nothing."""

    selected: _Selector
    remote: RemoteFacts
    prune: bool = False
    resolves: list[Action] = field(default_factory=list)
    imports: list[Action] = field(default_factory=list)
    creates: list[Action] = field(default_factory=list)
    replaces: list[Action] = field(default_factory=list)
    changes: list[Action] = field(default_factory=list)
    orphans: list[Action] = field(default_factory=list)
    changed: list[Resource] = field(default_factory=list)
    noop: int = 0
    #: No-ops found once recorded specs are read (a grown suite split, a change only of ignored fields), and the
    #: addresses of grown suites' pieces (recorded, not in the manifests).
    late_noop: int = 0
    claimed: set[str] = field(default_factory=set)

    def sort_desired(
        self, desired: Mapping[str, Resource], recorded: Mapping[str, ResourceSummary], to_replace: _Selector
    ) -> None:
        """One pass over the manifests that does only what each resource's case needs: it runs per resource."""
        create, pending, failed = ActionType.CREATE, Status.PENDING, Status.FAILED
        selected, targeted = self.selected, self.selected.any
        replacing, replaced = to_replace.any, to_replace.covers
        creates, resolves, get_recorded = self.creates, self.resolves, recorded.get
        imports, gone, drifted = self.remote.imports, self.remote.gone, self.remote.drifted
        noop = 0
        for address, resource in desired.items():
            rec = get_recorded(address)
            if rec is None:
                if imports and address in imports and (not targeted or selected(address)):
                    self.imports.append(import_action(resource, imports[address]))
                elif not targeted or selected(address):
                    creates.append(
                        Action(
                            create,
                            address,
                            resource.kind,
                            resource.provider,
                            "not in the state",
                            resource.spec,
                            resource.spec_hash,
                        )
                    )
            elif rec.status is pending:
                resolves.append(resolve_action(rec))
            elif targeted and not selected(address):
                continue
            elif rec.status is failed:
                creates.append(
                    from_resource(create, resource, "the last attempt failed; trying again", attempt=rec.attempt + 1)
                )
            elif gone and address in gone:
                self.replaces.append(
                    from_resource(
                        ActionType.REPLACE,
                        resource,
                        "deleted remotely behind the tool's back (read by refresh); apply creates it again",
                        attempt=rec.attempt + 1,
                        remote_id=rec.remote_id,
                    )
                )
            elif replacing and replaced(address):
                if resource.prevent_destroy:
                    raise PlanError(
                        f"{address} has lifecycle.prevent_destroy set, and --replace would delete (or retire) the "
                        "object it replaces; nothing was sent. Remove the setting first if it really is to go"
                    )
                self.replaces.append(
                    from_resource(
                        ActionType.REPLACE,
                        resource,
                        "replacement requested with --replace: a new object is created, then the old one deleted "
                        "(a suite: retired)",
                        attempt=rec.attempt + 1,
                        remote_id=rec.remote_id,
                    )
                )
            elif rec.spec_hash != resource.spec_hash:
                self.changed.append(resource)
            elif drifted and address in drifted:
                self.changes.append(put_back(resource, rec, drifted[address]))
            else:
                noop += 1
        self.noop += noop

    def explain_changes(self, recorded: Mapping[str, ResourceSummary], load_specs: LoadSpecs) -> None:
        """Only the few changed resources pay for loading their recorded specs and for deepdiff. A suite that
        only grew (rows appended to its set) is kept as created, its new rows planned as a suite of their own."""
        before = dict(load_specs([r.address for r in self.changed]))

        def load_more(addresses: list[str]) -> Mapping[str, dict[str, Any]]:
            before.update(load_specs(addresses))
            return before

        for resource in self.changed:  # a split may append the piece it could not keep: it is explained here too
            recorded_spec = before.get(resource.address, {})
            if resource.ignore_changes:
                resource = ignoring(resource, recorded_spec)
                if resource.spec_hash == recorded[resource.address].spec_hash:
                    self.late_noop += 1
                    continue
            if resource.row_keys and grown(recorded_spec, resource.spec):
                self._split(resource, recorded_spec, recorded, load_more)
                continue
            rec = recorded[resource.address]
            fixed = not_in_place(resource.kind, recorded_spec, resource.spec)
            if fixed and resource.replace_on_change:
                self.replaces.append(replacement(resource, rec, fixed, explain(recorded_spec, resource.spec)))
                continue
            if fixed:
                action_type, reason = (
                    ActionType.CHANGE,
                    f"{', '.join(fixed)} cannot be changed in place; use --replace {resource.address} to create "
                    "a new object",
                )
            else:
                action_type, reason = ActionType.UPDATE, "the manifest changed fields the API changes in place"
            self.changes.append(
                from_resource(
                    action_type,
                    resource,
                    reason,
                    remote_id=rec.remote_id,
                    attempt=rec.attempt,
                    diff=explain(recorded_spec, resource.spec),
                    operation_id=rec.operation_id,
                )
            )

    def _split(
        self,
        resource: Resource,
        recorded_spec: dict[str, Any],
        recorded: Mapping[str, ResourceSummary],
        load_specs: LoadSpecs,
    ) -> None:
        """Keep each created piece of a grown suite as it is; the rows after it form the next piece, named by
        its first row, until a piece is not recorded (a create) or is recorded as it is (a no-op)."""
        while True:
            self.late_noop += 1
            kept = len(recorded_spec["tasks"])
            rest = piece(resource, kept)
            self.claimed.add(rest.address)
            rec = recorded.get(rest.address)
            if rec is None:
                reason = f"rows appended after the created suite {resource.address}: a new suite of its own"
                self.creates.append(from_resource(ActionType.CREATE, rest, reason))
                return
            if rec.spec_hash == rest.spec_hash:
                self.late_noop += 1
                return
            recorded_spec = load_specs([rest.address]).get(rest.address, {})
            if not grown(recorded_spec, rest.spec):
                self.changed.append(rest)  # explained with the rest: the loop over ``changed`` reaches it
                return
            resource = rest

    def sort_undesired(self, desired: Mapping[str, Resource], recorded: Mapping[str, ResourceSummary]) -> None:
        """Recorded resources gone from the manifests: an open intent is still resolved, the rest are orphans."""
        claimed = self.claimed
        for address, rec in recorded.items():
            if address in desired or address in claimed:
                continue
            if rec.status is Status.PENDING:
                self.resolves.append(resolve_action(rec))
            elif self.prune and self.selected(address):
                self.orphans.append(delete_action(rec, "no longer in the manifests, and --prune was given"))
            elif self.selected(address):
                self.orphans.append(
                    Action(
                        ActionType.ORPHAN,
                        address,
                        rec.kind,
                        rec.provider,
                        orphan_reason(rec),
                        spec_hash=rec.spec_hash,
                        remote_id=rec.remote_id,
                    )
                )

    def sort_destroyed(self, desired: Mapping[str, Resource], recorded: Mapping[str, ResourceSummary]) -> None:
        """Every recorded resource the manifests declare, deleted; refused whole if one is guarded."""
        guarded = [a for a, r in desired.items() if r.prevent_destroy and a in recorded and self.selected(a)]
        if guarded:
            raise PlanError(
                f"{guarded[0]} has lifecycle.prevent_destroy set"
                + (f" (and {len(guarded) - 1} more)" if len(guarded) > 1 else "")
                + "; nothing was sent. Remove the setting first if it really is to go"
            )
        for address, rec in recorded.items():
            if address not in desired or not self.selected(address):
                continue
            if rec.status is Status.PENDING:
                self.resolves.append(resolve_action(rec))
            elif rec.status is Status.CREATED:
                self.orphans.append(delete_action(rec, "destroy was asked for"))


def _matches(address: str, target: str) -> bool:
    """A target names one address, or every suite of a set (``TaskSuiteSet/reviews`` covers its suites)."""
    return address == target or address.startswith(target + "/")


def check_selection(
    desired: Collection[str], recorded: Collection[str], *, targets: Collection[str], replace: Collection[str]
) -> None:
    """Refuse (PlanError) a ``--target`` or ``--replace`` address that names nothing; apply asks before it opens
    the state for writing, so a mistyped flag leaves nothing behind."""
    _check_addresses(targets, desired, recorded, option="--target")
    _check_addresses(replace, desired, recorded, option="--replace", within=_Selector(targets))


def _check_addresses(
    wanted: Collection[str],
    known: Collection[str],
    recorded: Collection[str],
    *,
    option: str,
    within: _Selector | None = None,
) -> None:
    """Every ADDRESS of ``option`` names something in the manifests (a resource, or a set and so its suites)
    and, when ``within`` (the ``--target`` selection) is given, something the plan looks at: an address that
    matches nothing would make its flag a silent no-op."""
    for address in wanted:
        prefix = f"{address}/"
        named = [address] if address in known else [a for a in known if a.startswith(prefix)]
        if not named:
            raise PlanError(f"{option} {address}: {_not_declared(address, known, recorded, option)}")
        if within is not None and not any(within(a) for a in named):
            raise PlanError(
                f"{option} {address}: not among the addresses --target selects, so it would do nothing; "
                "target it too, or leave it out"
            )


def _not_declared(address: str, known: Collection[str], recorded: Collection[str], option: str) -> str:
    """Why an address names nothing in the manifests, with what it may have meant; only errors pay for this."""
    if address in recorded or any(_matches(a, address) for a in recorded):
        needs = (
            "a replacement is made from the manifest" if option == "--replace" else "a plan without --target lists it"
        )
        return (
            f"in the state but no longer in the manifests ({needs}); the remote object stays, and "
            f"`reconciler state forget {address}` drops it from the state"
        )
    hint = _did_you_mean(address, known)
    if hint:
        return f"no such resource in the manifests (did you mean {hint}?)"
    return (
        "no such resource in the manifests (addresses look like PerfTestTask/NAME, TaskSuite/NAME or "
        "TaskSuiteSet/NAME/KEY)"
    )


def _did_you_mean(address: str, known: Collection[str]) -> str | None:
    """A declared resource or set whose address is close to ``address``: the same name under another kind, or
    a close name under the same kind. Not for a set's suites, whose keys come from data."""
    kind, _, name = address.partition("/")
    if not name or "/" in name:
        return None
    heads = {"/".join(a.split("/", 2)[:2]) for a in known}
    same_name = sorted(h for h in heads if h.partition("/")[2] == name)
    if same_name:
        return same_name[0]
    import difflib  # imported here: only a mistyped address needs it

    names = sorted(h.partition("/")[2] for h in heads if h.startswith(f"{kind}/"))
    close = difflib.get_close_matches(name, names, n=1)
    return f"{kind}/{close[0]}" if close else None


__all__ = ["LoadSpecs", "RemoteFacts", "check_selection", "explain", "make_plan"]
