"""What each command does, without the command line: the steps between parsing arguments and rendering.

``reconciler.cli`` parses, calls one of these, and renders what it returns; everything here can be driven
and tested without click. The steps read top to bottom as the commands do: load the manifests, plan against
the state (or check that a saved plan is still current), refuse what apply will not do, then apply.

The applier and the HTTP clients are imported by ``apply_plan`` alone, so ``validate`` and ``plan``
(pre-commit hooks, cron jobs) start without loading the network stack.
"""

from __future__ import annotations

import datetime as dt
import os
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from reconciler import manifest
from reconciler.errors import ApplyRefusedError, ManifestError, Problem, UnknownAddressError
from reconciler.plan import ActionType, Plan, check_current, read_plan
from reconciler.planner import make_plan
from reconciler.resources import ProviderConfig
from reconciler.speedups import cycle_collection_paused
from reconciler.state.base import Outcome, StateStore, Status

if TYPE_CHECKING:
    from reconciler.applier import ApplyEvent, ApplyResult
    from reconciler.providers import SandboxTarget


def load_manifests(paths: tuple[Path, ...]) -> manifest.DesiredState:
    """Load, and refuse paths that hold no manifest at all: a mistyped folder would plan every resource as
    orphaned, which is never what the user meant."""
    desired = manifest.load(list(paths))
    if not desired.resources and not desired.providers:
        where = ", ".join(str(p) for p in paths)
        raise ManifestError(
            [
                Problem(
                    where, None, None, None, "no manifests here (YAML or JSON documents with apiVersion: reconciler/v1)"
                )
            ]
        )
    return desired


def plan_from_manifests(
    store: StateStore,
    desired: manifest.DesiredState,
    *,
    workspace: str,
    targets: tuple[str, ...] = (),
    replace: tuple[str, ...] = (),
) -> Plan:
    meta = store.meta()
    return make_plan(
        desired=desired.resources,
        providers=desired.providers,
        recorded=store.summaries(),
        load_specs=lambda addresses: {a: r.spec for a, r in store.get_many(addresses=addresses).items()},
        lineage=meta.lineage,
        serial=meta.serial,
        workspace=workspace,
        manifest_digest=desired.digest,
        created_at=dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        targets=targets,
        replace=replace,
    )


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


def plan_to_apply(store: StateStore, plan: Plan | Path) -> Plan:
    """The plan apply will run: a saved plan file only if the state has not moved since it was made; either way
    refused, before anything is sent, if it holds a change apply cannot make."""
    if isinstance(plan, Path):
        path, plan = plan, read_plan(plan)
        meta = store.meta()
        check_current(plan, lineage=meta.lineage, serial=meta.serial, path=path)
    refuse_changes(plan)
    return plan


def apply_plan(
    plan: Plan,
    store: StateStore,
    *,
    sandbox: SandboxTarget | None,
    parallelism: int,
    on_event: Callable[[ApplyEvent], None],
    stop: threading.Event,
    each_created: bool,
    environ: Mapping[str, str] = os.environ,
) -> ApplyResult:
    """Build the clients of the providers the plan needs (credentials are read here, and only here), and run
    the plan through them."""
    from reconciler.applier import Applier
    from reconciler.providers import build_clients

    needed = {a.provider for a in plan.applied()}
    settings = {
        name: ProviderConfig(name=name, type=p["type"], spec=p["spec"])
        for name, p in plan.providers.items()
        if name in needed
    }
    clients = build_clients(settings, environ=environ, sandbox=sandbox)
    try:
        with cycle_collection_paused():
            applier = Applier(
                store=store,
                clients=clients,
                lineage=plan.lineage,
                parallelism=parallelism,
                on_event=on_event,
                stop=stop,
                each_created=each_created,
            )
            return applier.run(plan)
    finally:
        for client in clients.values():
            client.close()


def import_resource(
    store: StateStore, desired: manifest.DesiredState, *, address: str, remote_id: str, paths: tuple[Path, ...]
) -> None:
    """Record that ``address`` is the existing remote object ``remote_id``: the outcome of the interrupted create
    that left it pending, or else an import of an object reconciler did not create."""
    resource = desired.resources.get(address)
    if resource is None:
        raise UnknownAddressError(f"{address}: not declared in {', '.join(str(p) for p in paths)}")
    record = store.get(address=address)
    if record is not None and record.status is Status.PENDING and record.operation_id:
        store.record_outcomes(
            operation_id=record.operation_id,
            outcomes=[Outcome(address, Status.CREATED, remote_id=remote_id)],
            resolved=True,
        )
        return
    store.import_resource(
        address=address,
        kind=resource.kind,
        provider=resource.provider,
        remote_id=remote_id,
        spec=resource.spec,
        spec_hash=resource.spec_hash,
    )
