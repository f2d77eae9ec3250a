"""What ``drift``, ``plan --refresh``, ``state refresh`` and ``state import --discover`` do, without the
command line: read the remote back against the manifests and the state.

None of these creates anything remotely. ``drift`` and ``plan --refresh`` write nothing at all (``drift`` opens
the state read-only and takes no lock, so a cron job never blocks a deploy); ``state refresh`` records the views
it read, and ``state import --discover`` adopts exact matches, both under the lock the caller holds. Credentials
are read here, as apply reads them: the remote is read with them.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from reconciler import manifest
from reconciler.drift import remote_diff
from reconciler.errors import RefreshError
from reconciler.plan import ActionType, FieldChange, Plan
from reconciler.planner import RemoteFacts
from reconciler.refresh import Discovery, Read, Reader, discover
from reconciler.refresh.report import DriftFinding, DriftReport, drift_report, read_findings
from reconciler.resources import Resource
from reconciler.state.base import ResourceSummary, StateStore, Status
from reconciler.workflows import plan_from_manifests

if TYPE_CHECKING:
    from reconciler.providers import ProviderClient, SandboxTarget

T = TypeVar("T")

#: Errors quoted in a refusal; the rest are counted.
QUOTED = 5


@contextlib.contextmanager
def _clients(
    desired: manifest.DesiredState, sandbox: SandboxTarget | None, environ: Mapping[str, str]
) -> Iterator[dict[str, ProviderClient]]:
    from reconciler.providers import build_clients

    clients = build_clients(desired.providers, environ=environ, sandbox=sandbox)
    try:
        yield clients
    finally:
        for client in clients.values():
            client.close()


def _created(store: StateStore, desired: manifest.DesiredState, *, declared_only: bool) -> list[ResourceSummary]:
    """The created resources of the state whose provider the manifests declare (``declared_only``: and whose
    address they declare), in the state's order."""
    providers, resources = desired.providers, desired.resources
    return [
        s
        for s in store.summaries()
        if s.status is Status.CREATED
        and s.remote_id
        and s.provider in providers
        and (not declared_only or s.address in resources)
    ]


def _read(
    store: StateStore,
    desired: manifest.DesiredState,
    *,
    declared_only: bool,
    sandbox: SandboxTarget | None,
    parallelism: int,
    environ: Mapping[str, str],
    meanwhile: Callable[[], T],
    early: Callable[[list[Read], Mapping[str, dict[str, Any]]], None] | None = None,
) -> tuple[dict[str, dict[str, Any]], list[Read], T]:
    """The recorded objects read back, and ``meanwhile()``, called while PerfTest's reads (bound by its rate
    limit, not by this process) are under way, as are reading the recorded specs and listing Toloka's pools;
    ``early`` gets Toloka's reads, with the recorded specs, while PerfTest's are still under way. Returns the
    recorded spec of each object read, the reads, and what ``meanwhile`` returned."""
    created = _created(store, desired, declared_only=declared_only)
    if not created:
        return {}, [], meanwhile()
    with _clients(desired, sandbox, environ) as clients, Reader(clients, parallelism=parallelism) as reader:
        reader.start(created)
        specs = _recorded_specs(store, desired, created)
        done = meanwhile()
        pools = {address: str(spec.get("pool_id")) for address, spec in specs.items()}
        reads = reader.finish(pools, None if early is None else lambda some: early(some, specs))
    return specs, reads, done


def _idle() -> None:
    """Nothing to do while PerfTest's reads are under way."""


def _recorded_specs(
    store: StateStore, desired: manifest.DesiredState, created: Sequence[ResourceSummary]
) -> dict[str, dict[str, Any]]:
    """The spec recorded for each of ``created``: the manifest's own where the recorded hash is its hash (the
    same content, already decoded), read from the state for the rest."""
    specs: dict[str, dict[str, Any]] = {}
    resources, missing = desired.resources, []
    for summary in created:
        resource = resources.get(summary.address)
        if resource is not None and resource.spec_hash == summary.spec_hash:
            specs[summary.address] = resource.spec
        else:
            missing.append(summary.address)
    if missing:
        specs.update((a, r.spec) for a, r in store.get_many(addresses=missing).items())
    return {s.address: specs[s.address] for s in created if s.address in specs}


def check_drift(
    store: StateStore,
    desired: manifest.DesiredState,
    *,
    workspace: str,
    sandbox: SandboxTarget | None,
    parallelism: int,
    environ: Mapping[str, str] = os.environ,
) -> DriftReport:
    """Manifests against state (what a plan shows), and state against remote (every declared object read)."""
    found: list[DriftFinding] = []
    early: set[str] = set()

    def compare_early(reads: list[Read], specs: Mapping[str, dict[str, Any]]) -> None:
        found.extend(read_findings(reads, specs))
        early.update(read.address for read in reads)

    specs, reads, plan = _read(
        store,
        desired,
        declared_only=True,
        sandbox=sandbox,
        parallelism=parallelism,
        environ=environ,
        meanwhile=lambda: plan_from_manifests(store, desired, workspace=workspace, environ=environ),
        early=compare_early,
    )
    found += read_findings((r for r in reads if r.address not in early), specs)
    return drift_report(workspace=workspace, plan=plan, read=len(reads), found=found)


@dataclass(frozen=True, slots=True)
class Refreshed:
    reads: list[Read]

    @property
    def gone(self) -> list[Read]:
        return [r for r in self.reads if r.gone]

    @property
    def unreadable(self) -> list[Read]:
        return [r for r in self.reads if r.error is not None]


def refresh_state(
    store: StateStore,
    desired: manifest.DesiredState,
    *,
    sandbox: SandboxTarget | None,
    parallelism: int,
    environ: Mapping[str, str] = os.environ,
) -> Refreshed:
    """Read every recorded object of a declared provider and record each view read (None for gone); an object
    that could not be read keeps the view it had, and is returned for the caller to report."""
    _, reads, _ = _read(
        store, desired, declared_only=False, sandbox=sandbox, parallelism=parallelism, environ=environ, meanwhile=_idle
    )
    store.record_refresh(views=[(r.address, r.view) for r in reads if r.error is None])
    return Refreshed(reads)


def _unrecorded(store: StateStore, desired: manifest.DesiredState) -> tuple[list[Resource], set[str]]:
    """The declared resources the state has no row for, and every remote id the state names."""
    known: set[str] = set()
    taken: set[str] = set()
    for summary in store.summaries():
        known.add(summary.address)
        if summary.remote_id:
            taken.add(summary.remote_id)
    return [r for a, r in desired.resources.items() if a not in known and r.provider in desired.providers], taken


def discover_resources(
    store: StateStore,
    desired: manifest.DesiredState,
    *,
    sandbox: SandboxTarget | None,
    parallelism: int,
    only: Sequence[str] | None = None,
    environ: Mapping[str, str] = os.environ,
) -> Discovery:
    """The remote objects that match exactly a declared resource the state does not hold (of ``only``, if
    given), one to one; nothing is recorded."""
    resources, taken = _unrecorded(store, desired)
    if only is not None:
        wanted = set(only)
        resources = [r for r in resources if r.address in wanted]
    if not resources:
        return Discovery()
    with _clients(desired, sandbox, environ) as clients:
        return discover(resources, clients, taken=taken, parallelism=parallelism)


def adopt(store: StateStore, desired: manifest.DesiredState, matches: Mapping[str, str]) -> int:
    """Record each match (address to remote id) as an import of its address; the caller holds the lock."""
    for address, remote_id in matches.items():
        resource = desired.resources[address]
        store.import_resource(
            address=address,
            kind=resource.kind,
            provider=resource.provider,
            remote_id=remote_id,
            spec=resource.spec,
            spec_hash=resource.spec_hash,
        )
    return len(matches)


def refuse_unknowns(reads: Sequence[Read], discovery: Discovery, *, doing: str) -> None:
    """Raise ``RefreshError`` if anything was left unknown: ``doing`` on it would be a guess."""
    problems = [f"{r.address} (remote id {r.remote_id}) could not be read: {r.error}" for r in reads if r.error]
    problems += discovery.errors
    problems += [
        f"{address} matches {len(ids)} remote objects exactly ({', '.join(ids)}); adopt the right one with "
        f"`reconciler state import {address} ID PATHS`"
        for address, ids in discovery.ambiguous.items()
    ]
    if problems:
        shown = "; ".join(problems[:QUOTED])
        more = f"; and {len(problems) - QUOTED} more" if len(problems) > QUOTED else ""
        raise RefreshError(f"cannot {doing}: {shown}{more}")


def remote_facts(specs: Mapping[str, dict[str, Any]], reads: Sequence[Read], discovery: Discovery) -> RemoteFacts:
    drifted: dict[str, tuple[FieldChange, ...]] = {}
    for read in reads:
        if read.view is not None:
            found = remote_diff(read.kind, read.address, specs[read.address], read.view)
            if found:
                drifted[read.address] = tuple(FieldChange(f.path, "changed", f.sent, f.remote) for f in found)
    return RemoteFacts(
        gone=frozenset(r.address for r in reads if r.gone),
        drifted=drifted,
        imports={m.address: m.remote_id for m in discovery.matches},
    )


def refreshed_plan(
    store: StateStore,
    desired: manifest.DesiredState,
    *,
    workspace: str,
    sandbox: SandboxTarget | None,
    parallelism: int,
    targets: tuple[str, ...] = (),
    replace_addresses: tuple[str, ...] = (),
    manifests: tuple[Path, ...] = (),
    environ: Mapping[str, str] = os.environ,
    prune: bool = False,
) -> Plan:
    """The plan against what the remote holds: gone objects are created again, remote changes shown, and
    exact matches of unrecorded resources imported instead of created."""
    specs, reads, _ = _read(
        store, desired, declared_only=True, sandbox=sandbox, parallelism=parallelism, environ=environ, meanwhile=_idle
    )
    discovery = discover_resources(store, desired, sandbox=sandbox, parallelism=parallelism, environ=environ)
    refuse_unknowns(reads, discovery, doing="plan against the remote")
    return plan_from_manifests(
        store,
        desired,
        workspace=workspace,
        targets=targets,
        replace=replace_addresses,
        manifests=manifests,
        environ=environ,
        remote=remote_facts(specs, reads, discovery),
        prune=prune,
    )


def import_planned(
    plan: Plan,
    store: StateStore,
    desired: manifest.DesiredState,
    *,
    sandbox: SandboxTarget | None,
    parallelism: int,
    verify: bool,
    environ: Mapping[str, str] = os.environ,
) -> Plan:
    """Record the plan's imports; returns the plan without them. ``verify`` (a plan file, which is input):
    each is adopted only once a fresh discovery confirms that the remote object still matches exactly, and is
    the one the plan says. A plan made in this run, under its lock, was discovered a moment ago."""
    planned = {a.address: a.remote_id or "" for a in plan.of_type(ActionType.IMPORT)}
    if not planned:
        return plan
    if not verify:
        adopt(store, desired, planned)
        return replace(plan, actions=tuple(a for a in plan.actions if a.type is not ActionType.IMPORT))
    discovery = discover_resources(
        store, desired, sandbox=sandbox, parallelism=parallelism, only=list(planned), environ=environ
    )
    refuse_unknowns([], discovery, doing="import what the plan found")
    confirmed = {m.address: m.remote_id for m in discovery.matches}
    differ = [a for a, remote_id in planned.items() if confirmed.get(a) != remote_id]
    if differ:
        raise RefreshError(
            f"cannot import {differ[0]} as the plan says: the remote no longer holds exactly one object matching it "
            f"under id {planned[differ[0]]}; make the plan again with --refresh"
        )
    adopt(store, desired, planned)
    return replace(plan, actions=tuple(a for a in plan.actions if a.type is not ActionType.IMPORT))
