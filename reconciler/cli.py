"""The command line: parse, call the library, render. No business logic lives here.

The applier and the HTTP clients are imported by ``apply`` alone, so ``validate`` and ``plan`` (pre-commit
hooks, cron jobs) start without loading the network stack.

This is the only module that prints errors: a ``ReconcilerError`` becomes its one-line message and exit status
1; anything else is a bug, written with its traceback to a debug log, reported in one line, exit status 1
(never 2, which ``plan --detailed-exitcode`` reserves for "changes").
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import gc
import json
import os
import signal
import sys
import tempfile
import threading
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from reconciler import manifest
from reconciler.errors import (
    ApplyRefusedError,
    ManifestError,
    Problem,
    ReconcilerError,
    StalePlanError,
    UnknownAddressError,
)
from reconciler.plan import ActionType, Plan, read_plan, write_plan
from reconciler.planner import make_plan
from reconciler.render import ApplyReporter, Printer, plan_events, render_plan, write_event
from reconciler.resources import KINDS, ProviderConfig, SourceRef, json_schema
from reconciler.state import open_store
from reconciler.state.base import Outcome, StateStore, Status
from reconciler.state.lock import default_holder, held_lock

if TYPE_CHECKING:
    from reconciler.applier import ApplyResult
    from reconciler.providers import SandboxTarget

F = TypeVar("F", bound=Callable[..., Any])

SANDBOX_WORKSPACE = "sandbox"
EXIT_INTERRUPTED = 130


@dataclass
class Common:
    state: str | None
    workspace: str
    sandbox: bool
    color: bool
    verbose: int

    @property
    def effective_workspace(self) -> str:
        return SANDBOX_WORKSPACE if self.sandbox and self.workspace == "default" else self.workspace

    def printer(self, err: bool = False) -> Printer:
        stream = sys.stderr if err else sys.stdout
        return Printer(stream, color=self.color and stream.isatty())

    def store(self) -> StateStore:
        return open_store(self.state, workspace=self.effective_workspace, root=Path.cwd())


def common_options(*, sandbox: bool = False) -> Callable[[F], F]:
    """The options every command takes, in the same words everywhere."""

    def decorate(fn: F) -> F:
        @click.option(
            "--state",
            "state",
            metavar="PATH|URL",
            envvar="RECONCILER_STATE",
            help="State store: a SQLite file path (default state/WORKSPACE.db) [env RECONCILER_STATE].",
        )
        @click.option(
            "--workspace",
            default="default",
            show_default=True,
            envvar="RECONCILER_WORKSPACE",
            help="Separate state per workspace (e.g. staging, production) [env RECONCILER_WORKSPACE].",
        )
        @click.option("--no-color", is_flag=True, help="Plain output, even on a terminal.")
        @click.option("-v", "--verbose", count=True, help="Say more (skipped files, every suite of a set).")
        @functools.wraps(fn)
        def wrapper(*args: Any, state: str | None, workspace: str, no_color: bool, verbose: int, **kwargs: Any) -> Any:
            use_sandbox = bool(kwargs.pop("sandbox", False))
            common = Common(
                state=state,
                workspace=workspace,
                sandbox=use_sandbox,
                color=not no_color and "NO_COLOR" not in os.environ,
                verbose=verbose,
            )
            return fn(common, *args, **kwargs)

        if sandbox:
            wrapper = click.option(
                "--sandbox",
                is_flag=True,
                help="Run against the embedded emulator of both APIs (no cloud account needed); uses the "
                "workspace 'sandbox' and keeps the emulator's data in state/sandbox-remote.db.",
            )(wrapper)
        return wrapper  # type: ignore[return-value]

    return decorate


def guarded(fn: F) -> F:
    """Render every error once, as promised in the module docstring."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ManifestError as err:
            for problem in err.problems:
                click.echo(str(problem), err=True)
            noun = "error" if len(err.problems) == 1 else "errors"
            click.echo(f"{len(err.problems)} {noun} in the manifests; nothing was sent.", err=True)
            sys.exit(1)
        except ReconcilerError as err:
            click.echo(f"Error: {err}", err=True)
            sys.exit(err.exit_code)
        except (click.exceptions.Exit, click.ClickException, SystemExit, click.Abort):
            raise
        except KeyboardInterrupt:
            click.echo("Interrupted.", err=True)
            sys.exit(EXIT_INTERRUPTED)
        except Exception as err:  # noqa: BLE001 - the last line of defence; see the module docstring
            log = _write_debug_log()
            click.echo(
                f"Error: unexpected {type(err).__name__}: {err}. This is a bug in reconciler; the details are in "
                f"{log}; please report it with that file.",
                err=True,
            )
            sys.exit(1)

    return wrapper  # type: ignore[return-value]


def _write_debug_log() -> str:
    fd, path = tempfile.mkstemp(prefix="reconciler-debug-", suffix=".log")
    with os.fdopen(fd, "w") as out:
        out.write(f"reconciler {' '.join(sys.argv[1:])}\n\n")
        traceback.print_exc(file=out)
    return path


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class _LazyGroup(click.Group):
    """Loads the sandbox's commands only when asked for: starting the emulator's web stack costs time."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), "sandbox"})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name == "sandbox":
            from reconciler.sandbox.cli import sandbox

            return sandbox
        return super().get_command(ctx, name)


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="reconciler")
def cli() -> None:
    """Keep CodeArts PerfTest tasks and Toloka task suites in git: describe them in manifests, `plan` what
    would be created, `apply` it exactly once, even across crashes and retries.

    \b
    Start here:
      reconciler validate examples/                  check manifests, send nothing
      reconciler plan examples/                      what apply would do
      reconciler apply examples/ --sandbox           try it against the built-in emulator
      reconciler plan examples/ --out plan.json      save a plan (for a pull request) ...
      reconciler apply plan.json --auto-approve      ... and apply exactly that plan (on merge)
    """


@cli.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@common_options()
@guarded
def validate(common: Common, paths: tuple[Path, ...]) -> None:
    """Check manifests and data files in full; report every error as FILE:LINE: ADDRESS: FIELD: MESSAGE.

    Sends nothing and reads no state. Exit status 0 if valid, 1 otherwise.
    """
    desired = _load_manifests(common, paths)
    kinds: dict[str, int] = {}
    for resource in desired.resources.values():
        kinds[resource.kind] = kinds.get(resource.kind, 0) + 1
    detail = ", ".join(f"{n} {k}" for k, n in sorted(kinds.items())) or "no resources"
    click.echo(f"Valid: {len(desired.resources)} resources ({detail}), {len(desired.providers)} providers.")


def _load_manifests(common: Common, paths: tuple[Path, ...]) -> manifest.DesiredState:
    """Load, and refuse paths that hold no manifest at all: a mistyped folder would plan every resource as
    orphaned, which is never what the user meant."""
    desired = manifest.load(list(paths))
    if common.verbose:
        for path in desired.skipped:
            click.echo(f"skipped {path}: no apiVersion, not a manifest", err=True)
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


def _plan_from_manifests(
    common: Common,
    store: StateStore,
    paths: tuple[Path, ...],
    *,
    targets: tuple[str, ...] = (),
    replace: tuple[str, ...] = (),
) -> Plan:
    desired = _load_manifests(common, paths)
    meta = store.meta()
    return make_plan(
        desired=desired.resources,
        providers=desired.providers,
        recorded=store.summaries(),
        load_specs=lambda addresses: {a: r.spec for a, r in store.get_many(addresses=addresses).items()},
        lineage=meta.lineage,
        serial=meta.serial,
        workspace=common.effective_workspace,
        manifest_digest=desired.digest,
        created_at=_now(),
        targets=targets,
        replace=replace,
    )


@cli.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--out", "out", type=click.Path(path_type=Path), help="Save the plan as JSON for `apply FILE`.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line instead of text.")
@click.option(
    "--detailed-exitcode",
    is_flag=True,
    help="Exit 0 when there is nothing to do, 1 on error, 2 when the plan has changes.",
)
@click.option("--target", "targets", multiple=True, metavar="ADDRESS", help="Plan only this address (repeat).")
@click.option("--replace", "replace", multiple=True, metavar="ADDRESS", help="Plan a new remote object for ADDRESS.")
@common_options(sandbox=True)
@guarded
def plan(
    common: Common,
    paths: tuple[Path, ...],
    out: Path | None,
    as_json: bool,
    detailed_exitcode: bool,
    targets: tuple[str, ...],
    replace: tuple[str, ...],
) -> None:
    """Compare manifests with the recorded state and show what `apply` would do.

    \b
    Signs:  + create   ~ changed (create-only APIs: needs --replace)   -/+ replace
            ! orphaned (in the state, not in the manifests)   ? resolve an interrupted apply
    Nothing is sent. PATHS are files or directories (*.yaml, *.yml, *.json, recursively).
    """
    store = common.store()
    try:
        result = _plan_from_manifests(common, store, paths, targets=targets, replace=replace)
    finally:
        store.close()
    if out is not None:
        write_plan(result, out)
    if as_json:
        for event in plan_events(result):
            write_event(sys.stdout, event)
    else:
        render_plan(result, common.printer(), verbose=bool(common.verbose))
        if out is not None:
            click.echo(f"\nSaved the plan to {out}. Apply exactly this plan with: reconciler apply {out}")
    if detailed_exitcode and result.has_changes:
        sys.exit(2)


@cli.command()
@click.argument("planfile", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line instead of text.")
@common_options()
@guarded
def show(common: Common, planfile: Path, as_json: bool) -> None:
    """Show a saved plan file (made by `plan --out`)."""
    saved = read_plan(planfile)
    if as_json:
        for event in plan_events(saved):
            write_event(sys.stdout, event)
        return
    click.echo(f"Plan for workspace {saved.workspace!r}, made {saved.created_at} against state serial {saved.serial}.")
    render_plan(saved, common.printer(), verbose=bool(common.verbose))


@cli.command()
@click.argument("kind", required=False)
def schema(kind: str | None) -> None:
    """Print the JSON Schema of KIND (or of `plan`, the plan file); without KIND, list the kinds.

    Point your editor's YAML language server at these for completion and checking while you type.
    """
    if kind is None:
        for name in (*KINDS, "plan"):
            click.echo(name)
        return
    if kind == "plan":
        from reconciler.schema_files import plan_schema  # imported here: only this command uses it

        click.echo(json.dumps(plan_schema(), indent=2, sort_keys=True))
        return
    if kind not in KINDS:
        click.echo(f"Error: unknown kind {kind!r}; one of: {', '.join(KINDS)}, plan", err=True)
        sys.exit(1)
    click.echo(json.dumps(json_schema(kind), indent=2, sort_keys=True))


# --- state -----------------------------------------------------------------------------------------------------


@cli.group()
def state() -> None:
    """Inspect and repair the recorded state."""


@contextlib.contextmanager
def _opened(common: Common) -> Iterator[StateStore]:
    store = common.store()
    try:
        yield store
    finally:
        store.close()


@state.command("list")
@common_options()
@guarded
def state_list(common: Common) -> None:
    """List every recorded resource: address, status, remote id."""
    with _opened(common) as store:
        for summary in sorted(store.summaries(), key=lambda s: s.address):
            click.echo(f"{summary.address}\t{summary.status.value}\t{summary.remote_id or '-'}")


@state.command("show")
@click.argument("address")
@common_options()
@guarded
def state_show(common: Common, address: str) -> None:
    """Show everything recorded about ADDRESS, as JSON."""
    with _opened(common) as store:
        record = store.get(address=address)
        if record is None:
            raise UnknownAddressError(f"{address}: not in the state (see `reconciler state list`)")
        click.echo(
            json.dumps(
                {
                    "address": record.address,
                    "kind": record.kind,
                    "provider": record.provider,
                    "status": record.status.value,
                    "remote_id": record.remote_id,
                    "operation_id": record.operation_id,
                    "attempt": record.attempt,
                    "error": record.error,
                    "created_at": record.created_at,
                    "updated_at": record.updated_at,
                    "spec_hash": record.spec_hash,
                    "spec": record.spec,
                    "remote": record.remote,
                    "refreshed_at": record.refreshed_at,
                },
                indent=2,
                ensure_ascii=False,
            )
        )


@state.command("forget")
@click.argument("address")
@common_options()
@guarded
def state_forget(common: Common, address: str) -> None:
    """Drop ADDRESS from the state. The remote object stays (neither API can delete)."""
    with _opened(common) as store, held_lock(store, holder=default_holder(), operation="state forget"):
        store.forget(address=address)
    click.echo(f"Forgot {address}; the remote object is untouched.")


@state.command("history")
@click.argument("address", required=False)
@click.option("--limit", default=50, show_default=True, help="How many entries, newest last.")
@common_options()
@guarded
def state_history(common: Common, address: str | None, limit: int) -> None:
    """The journal: every intent and outcome, oldest first (of the newest LIMIT)."""
    with _opened(common) as store:
        for entry in store.history(address=address, limit=limit):
            detail = json.dumps(entry.detail, ensure_ascii=False) if entry.detail else ""
            click.echo(
                f"{entry.seq}\t{entry.at}\t{entry.event}\t{entry.address or '-'}\t{entry.operation_id or '-'}\t{detail}"
            )


@state.command("unlock")
@click.argument("lock_id")
@common_options()
@guarded
def state_unlock(common: Common, lock_id: str) -> None:
    """Break the lock LOCK_ID left by a run that died. Only when you are sure that run is gone."""
    with _opened(common) as store:
        store.force_unlock(lock_id=lock_id)
    click.echo(f"Lock {lock_id} released.")


# --- apply -----------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _sandbox(common: Common) -> Iterator[SandboxTarget | None]:
    """With --sandbox, the embedded emulator runs for the length of the command, its data in state/."""
    if not common.sandbox:
        yield None
        return
    import reconciler.sandbox as emulator
    from reconciler.providers import SandboxTarget

    data = Path.cwd() / "state" / "sandbox-remote.db"
    data.parent.mkdir(parents=True, exist_ok=True)
    with emulator.SandboxServer(port=0, auto_create=True, data_path=data) as server:
        yield SandboxTarget(
            url=server.url,
            access_key=emulator.DEFAULT_ACCESS_KEY,
            secret_key=emulator.DEFAULT_SECRET_KEY,
            cloud_project_id=emulator.DEFAULT_CLOUD_PROJECT_ID,
            toloka_token=emulator.DEFAULT_TOLOKA_TOKEN,
        )


def _is_plan_file(paths: tuple[Path, ...]) -> bool:
    if len(paths) != 1 or not paths[0].is_file() or paths[0].suffix != ".json":
        return False
    with paths[0].open("rb") as head:
        start = head.read(4096)
    return b'"format_version"' in start and b'"lineage"' in start


@contextlib.contextmanager
def _interrupts_to(stop: threading.Event) -> Iterator[None]:
    """The first Ctrl-C lets in-flight calls finish and be recorded; a second one stops at once."""

    def handler(signum: int, frame: object) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        click.echo("\nInterrupted: finishing and recording the calls in flight (Ctrl-C again to quit now).", err=True)

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


@cli.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--auto-approve", is_flag=True, help="Do not ask for confirmation (pipelines).")
@click.option("--parallelism", default=10, show_default=True, type=click.IntRange(1, 256), help="Remote calls at once.")
@click.option(
    "--replace",
    "replace",
    multiple=True,
    metavar="ADDRESS",
    help="Create a new remote object for ADDRESS even though one exists (repeat).",
)
@click.option("--target", "targets", multiple=True, metavar="ADDRESS", help="Apply only this address (repeat).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line: the plan, every outcome, a summary.")
@common_options(sandbox=True)
@guarded
def apply(
    common: Common,
    paths: tuple[Path, ...],
    auto_approve: bool,
    parallelism: int,
    replace: tuple[str, ...],
    targets: tuple[str, ...],
    as_json: bool,
) -> None:
    """Create what the manifests (or a saved PLANFILE) say is missing, exactly once.

    \b
    reconciler apply examples/                  plan, show, ask, create
    reconciler apply plan.json --auto-approve   apply a plan saved by `plan --out`, if still current

    An interrupted apply (crash, kill, Ctrl-C) is safe to run again: it first finds out what became of the
    calls in flight, and never creates anything twice. Exit status: 0 done, 1 something failed, 130 interrupted.
    """
    from reconciler.applier import refuse_changes

    from_file = _is_plan_file(paths)
    if from_file and (replace or targets):
        raise click.UsageError("--replace and --target go to `reconciler plan` when you apply a saved plan")
    printer = common.printer()
    with (
        _sandbox(common) as sandbox_target,
        _opened(common) as store,
        held_lock(store, holder=default_holder(), operation="apply"),
    ):
        if from_file:
            the_plan = _current_saved_plan(store, paths[0])
        else:
            the_plan = _plan_from_manifests(common, store, paths, targets=targets, replace=replace)
        refuse_changes(the_plan)
        if as_json:
            for event in plan_events(the_plan):
                write_event(sys.stdout, event)
        else:
            render_plan(the_plan, printer, verbose=bool(common.verbose))
        if not the_plan.of_type(ActionType.CREATE, ActionType.REPLACE, ActionType.RESOLVE):
            if not as_json and the_plan.has_changes:
                click.echo("\nNothing to create.")
            return
        if not auto_approve:
            _confirm()
        result = _run_applier(
            the_plan,
            store,
            sandbox_target,
            printer=printer,
            as_json=as_json,
            parallelism=parallelism,
            source=str(paths[0]),
        )
    if result.interrupted:
        sys.exit(EXIT_INTERRUPTED)
    if not result.ok:
        sys.exit(1)


def _current_saved_plan(store: StateStore, path: Path) -> Plan:
    """A saved plan applies only to the state it was made against, unchanged since."""
    saved = read_plan(path)
    meta = store.meta()
    if (saved.lineage, saved.serial) != (meta.lineage, meta.serial):
        other = "" if saved.lineage == meta.lineage else " of another state"
        raise StalePlanError(
            f"{path} is stale: it was made against state serial {saved.serial}{other}, and the state is now at "
            f"serial {meta.serial}; make a new plan with `reconciler plan ... --out {path}`"
        )
    return saved


def _confirm() -> None:
    if not sys.stdin.isatty():
        raise ApplyRefusedError(
            "apply asks for confirmation and there is no terminal to ask on; nothing was sent. "
            "Pass --auto-approve in pipelines"
        )
    click.echo()
    answer = click.prompt(
        "Do you want to perform these actions? Only 'yes' will be accepted", default="", show_default=False
    )
    if answer.strip() != "yes":
        raise ApplyRefusedError("apply cancelled; nothing was sent")


def _run_applier(
    the_plan: Plan,
    store: StateStore,
    sandbox_target: SandboxTarget | None,
    *,
    printer: Printer,
    as_json: bool,
    parallelism: int,
    source: str,
) -> ApplyResult:
    from reconciler.applier import MAX_BATCH_ITEMS, Applier
    from reconciler.providers import build_clients, effective_settings

    needed = {a.provider for a in the_plan.of_type(ActionType.CREATE, ActionType.REPLACE, ActionType.RESOLVE)}
    providers = {
        name: ProviderConfig(name=name, type=p["type"], spec=p["spec"], source=SourceRef(source, None))
        for name, p in the_plan.providers.items()
        if name in needed
    }
    batch_sizes = {
        name: int(effective_settings(config, os.environ).get("batch_size", MAX_BATCH_ITEMS))
        for name, config in providers.items()
    }
    clients = build_clients(providers, environ=os.environ, sandbox=sandbox_target)
    stop = threading.Event()
    reporter = ApplyReporter(printer, as_json=as_json, total=_work_size(the_plan))
    try:
        with _interrupts_to(stop), reporter, _no_cycle_collection():
            applier = Applier(
                store=store,
                clients=clients,
                lineage=the_plan.lineage,
                parallelism=parallelism,
                batch_sizes=batch_sizes,
                on_event=reporter.event,
                stop=stop,
                each_created=as_json or reporter.total <= ApplyReporter.PER_RESOURCE_LINES_UP_TO,
            )
            result = applier.run(the_plan)
    finally:
        for client in clients.values():
            client.close()
    reporter.summary(result)
    return result


@contextlib.contextmanager
def _no_cycle_collection() -> Iterator[None]:
    """Apply holds batches of parsed JSON in flight (10 batches of 5,000 suites are half a million objects)
    beside the manifests and the plan, and the cycle collector rescans them all over and over: at 100,000
    suites it took a third of apply's time, holding the interpreter's lock. What apply allocates is freed by
    reference counting (JSON, rows, outcomes hold no cycles), so the collector is off while it runs. The
    objects that existed before are frozen, so the collections after it do not rescan them either."""
    gc.freeze()
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _work_size(the_plan: Plan) -> int:
    return len(the_plan.of_type(ActionType.CREATE, ActionType.REPLACE, ActionType.RESOLVE))


@state.command("import")
@click.argument("address")
@click.argument("remote_id")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@common_options()
@guarded
def state_import(common: Common, address: str, remote_id: str, paths: tuple[Path, ...]) -> None:
    """Record that ADDRESS (declared in the manifests at PATHS) is the existing remote object REMOTE_ID.

    Also settles an interrupted create of ADDRESS that apply could not resolve by itself.
    """
    desired = _load_manifests(common, paths)
    resource = desired.resources.get(address)
    if resource is None:
        raise UnknownAddressError(f"{address}: not declared in {', '.join(str(p) for p in paths)}")
    with _opened(common) as store, held_lock(store, holder=default_holder(), operation="state import"):
        record = store.get(address=address)
        if record is not None and record.status is Status.PENDING and record.operation_id:
            store.record_outcomes(
                operation_id=record.operation_id,
                outcomes=[Outcome(address, Status.CREATED, remote_id=remote_id)],
                resolved=True,
            )
        else:
            store.import_resource(
                address=address,
                kind=resource.kind,
                provider=resource.provider,
                remote_id=remote_id,
                spec=resource.spec,
                spec_hash=resource.spec_hash,
            )
    click.echo(f"Imported {address} as remote object {remote_id}.")


def main() -> None:
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Exit as done:
        sys.exit(done.exit_code)
    except click.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(1)
    except click.ClickException as err:
        err.show()
        sys.exit(1)
