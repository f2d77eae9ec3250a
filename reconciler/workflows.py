"""What each command does, without the command line: the steps between parsing arguments and rendering.

``reconciler.cli`` parses, calls one of these, and renders what it returns; everything here can be driven
and tested without click. The steps read top to bottom as the commands do: load the manifests, plan against
the state (or check that a saved plan is still current), refuse what apply will not do, then apply.

The applier and the HTTP clients are imported by ``apply_plan`` alone, so ``validate`` and ``plan``
(pre-commit hooks, cron jobs) start without loading the network stack.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import shlex
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reconciler import manifest
from reconciler.errors import (
    ApplyRefusedError,
    ManifestError,
    PermanentProviderError,
    PlanFileError,
    Problem,
    UnknownAddressError,
)
from reconciler.plan import ActionType, Plan, check_current
from reconciler.planner import RemoteFacts, make_plan
from reconciler.resources import ProviderConfig
from reconciler.speedups import cycle_collection_paused
from reconciler.state.base import Outcome, StateStore, Status

if TYPE_CHECKING:
    from reconciler.applier import ApplyEvent, ApplyResult
    from reconciler.providers import ProviderClient, SandboxTarget

#: The workspace of ``--sandbox``: what the emulator creates is never recorded beside what the real APIs hold.
SANDBOX_WORKSPACE = "sandbox"


def workspace_option(workspace: str) -> str:
    """The command-line option that selects ``workspace``, as a user would type it."""
    if workspace == SANDBOX_WORKSPACE:
        return "--sandbox"
    return f"--workspace {shlex.quote(workspace)}"


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
    manifests: tuple[Path, ...] = (),
    environ: Mapping[str, str] = os.environ,
    remote: RemoteFacts | None = None,
    prune: bool = False,
    destroy: bool = False,
) -> Plan:
    """The plan of ``desired`` against the state, once the environment's provider overrides are known good.
    ``manifests``, the paths ``desired`` was loaded from, are recorded for ``apply PLANFILE`` (see
    ``current_providers``)."""
    from reconciler.providers.settings import check_environment  # no httpx: planning starts without it

    check_environment(desired.providers, environ)
    meta = store.meta()
    made = make_plan(
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
        remote=remote,
        prune=prune,
        destroy=destroy,
    )
    return dataclasses.replace(made, manifests=tuple(_recorded_path(p) for p in manifests))


def _recorded_path(path: Path) -> str:
    """Relative to the working directory where it can be: the pipeline that applies runs in another checkout."""
    resolved = path.resolve()
    try:
        return resolved.relative_to(Path.cwd().resolve()).as_posix() or "."
    except ValueError:
        return resolved.as_posix()


def manifests_of(plan: Plan, path: Path) -> tuple[Path, ...]:
    """The manifests a saved plan was made from, which must be here: apply reads its providers (and its state's
    place) from them, never from the plan file."""
    missing = [p for p in plan.manifests if not Path(p).exists()]
    if not plan.manifests or missing:
        where = ", ".join(plan.manifests) or "(none)"
        raise PlanFileError(
            f"{path} was made from the manifests at {where}, which are not here; apply it from the directory "
            "`plan` ran in, in a checkout of the same manifests (the providers are read from them, never from a "
            "plan file)"
        )
    return tuple(Path(p) for p in plan.manifests)


def current_providers(plan: Plan, path: Path, desired: manifest.DesiredState) -> Plan:
    """``plan`` with its providers taken from the manifests it was made from, as they are here and now.

    A plan file is input, not authority: it may come from an artifact anyone with a pull request can shape, and
    the providers say where credentials are sent and which variables hold them. So they are read again from
    the manifests the plan names (relative to the working directory, as ``plan`` recorded them), and a plan
    whose providers differ from those is refused. ``desired``: those manifests, loaded (``manifests_of``)."""
    current: dict[str, dict[str, Any]] = {n: {"type": p.type, "spec": p.spec} for n, p in desired.providers.items()}
    for name, saved in plan.providers.items():
        now = current.get(name)
        if now is None:
            raise PlanFileError(
                f"{path} names a provider {name!r} that the manifests at {', '.join(plan.manifests)} do not "
                "declare; make the plan again"
            )
        if now != saved:
            fields = sorted(
                k for k in {*saved["spec"], *now["spec"]} if saved["spec"].get(k) != now["spec"].get(k)
            ) or ["type"]
            raise PlanFileError(
                f"{path}: provider {name!r} is not as the manifests declare it ({', '.join(fields)} differ); a plan "
                "file cannot choose where credentials go or which variables hold them: make the plan again"
            )
    return dataclasses.replace(plan, providers={name: current[name] for name in plan.providers})


def refusal(plan: Plan) -> tuple[str, str] | None:
    """Why apply would refuse ``plan``, and what to do about it; None if it would not.

    A change of a field the API cannot change in place is applied only as a replacement the user asked for
    (``--replace``, or ``lifecycle.replace_on_change``).
    """
    changed = plan.of_type(ActionType.CHANGE)
    if not changed:
        return None
    listed = ", ".join(a.address for a in changed[:5]) + (" ..." if len(changed) > 5 else "")
    flags = " ".join(f"--replace {a.address}" for a in changed[:3])
    return (
        f"{len(changed)} resource(s) differ from what was created and cannot be changed in place ({listed})",
        f"revert the manifest, or ask for new remote objects with {flags}",
    )


def refuse_changes(plan: Plan) -> None:
    """Refuse, before anything is sent, a plan holding a change apply cannot make."""
    refused = refusal(plan)
    if refused is not None:
        reason, fix = refused
        raise ApplyRefusedError(f"{reason}; nothing was sent. {fix[0].upper()}{fix[1:]}")


def plan_to_apply(
    store: StateStore,
    plan: Plan,
    *,
    workspace: str,
    planfile: Path | None = None,
    manifests: manifest.DesiredState | None = None,
    environ: Mapping[str, str] = os.environ,
) -> Plan:
    """The plan apply will run: a plan read from ``planfile`` only if it was made for this workspace and this
    state, and the state has not moved since; either way refused, before anything is sent, if it holds a change
    apply cannot make. ``manifests``: for a plan file, the manifests it names, already loaded."""
    if planfile is not None:
        assert manifests is not None, "a saved plan is checked against the manifests it names"
        from reconciler.providers.settings import check_environment  # no httpx until apply builds the clients

        path = planfile
        meta = store.meta()
        check_current(
            plan,
            lineage=meta.lineage,
            serial=meta.serial,
            workspace=workspace,
            path=path,
            select=workspace_option(plan.workspace),
        )
        plan = current_providers(plan, path, manifests)
        check_environment(_provider_configs(plan), environ)
    refuse_changes(plan)
    return plan


def _provider_configs(plan: Plan, needed: set[str] | None = None) -> dict[str, ProviderConfig]:
    """The provider settings of a plan, as the manifests gave them."""
    return {
        name: ProviderConfig(name=name, type=p["type"], spec=p["spec"])
        for name, p in plan.providers.items()
        if needed is None or name in needed
    }


def apply_plan(
    plan: Plan,
    store: StateStore,
    *,
    sandbox: SandboxTarget | None,
    parallelism: int,
    on_event: Callable[[ApplyEvent], None],
    stop: threading.Event,
    each_created: bool,
    guard: Callable[[], None] | None = None,
    environ: Mapping[str, str] = os.environ,
) -> ApplyResult:
    """Build the clients of the providers the plan needs (credentials are read here, and only here), and run
    the plan through them. ``guard`` runs before every call that may create something (the lease's check)."""
    from reconciler.applier import Applier
    from reconciler.providers import build_clients

    settings = _provider_configs(plan, {a.provider for a in plan.applied()})
    clients = build_clients(settings, environ=environ, sandbox=sandbox)
    for client in clients.values():
        client.http.send_guard = guard
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
                guard=guard,
            )
            return applier.run(plan)
    finally:
        for client in clients.values():
            client.close()


def import_resource(
    store: StateStore,
    desired: manifest.DesiredState,
    *,
    address: str,
    remote_id: str,
    paths: tuple[Path, ...],
    sandbox: SandboxTarget | None,
    environ: Mapping[str, str] = os.environ,
) -> None:
    """Record that ``address`` is the existing remote object ``remote_id``: the outcome of the interrupted create
    that left it pending, or else an import of an object reconciler did not create.

    The remote object is read first (credentials are read for that), and a missing one is refused: recording
    an id that names nothing would make the resource look created when it is not.
    """
    resource = desired.resources.get(address)
    if resource is None:
        raise UnknownAddressError(f"{address}: not declared in {', '.join(str(p) for p in paths)}")
    _read_remote(desired, resource.provider, address=address, remote_id=remote_id, sandbox=sandbox, environ=environ)
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


def _read_remote(
    desired: manifest.DesiredState,
    provider: str,
    *,
    address: str,
    remote_id: str,
    sandbox: SandboxTarget | None,
    environ: Mapping[str, str],
) -> dict[str, object]:
    """The remote object ``remote_id`` of ``provider``, or ``PermanentProviderError`` if it does not exist."""
    from reconciler.providers import build_clients

    clients = build_clients({provider: desired.providers[provider]}, environ=environ, sandbox=sandbox)
    try:
        return _get_remote(clients[provider], address=address, remote_id=remote_id)
    finally:
        for client in clients.values():
            client.close()


def _get_remote(client: ProviderClient, *, address: str, remote_id: str) -> dict[str, object]:
    from reconciler.providers import TolokaClient

    if isinstance(client, TolokaClient):
        what, found = "task suite", client.get_task_suite(remote_id)
    elif not (remote_id.isascii() and remote_id.isdigit()):
        raise PermanentProviderError(
            f"{remote_id!r} is not a PerfTest task id (task ids are numbers); nothing was recorded",
            provider=client.name,
            address=address,
        )
    else:
        what, found = "task", client.get_task(int(remote_id))
    if found is None:
        raise PermanentProviderError(
            f"no {what} with id {remote_id} exists; check the id (nothing was recorded)",
            provider=client.name,
            address=address,
        )
    return found
