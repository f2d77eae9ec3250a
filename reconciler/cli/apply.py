"""``apply`` and ``destroy``: plan (or take a saved plan), show it, ask, and act on it exactly once."""

from __future__ import annotations

import contextlib
import re
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import click

from reconciler import readback, workflows
from reconciler.cli.commands import PRUNE_HELP, REFRESH_HELP, manifests_of_paths, plan_of_manifests, state_place_key
from reconciler.cli.drift import READS_AT_ONCE
from reconciler.cli.locking import lock_timeout_option, locked
from reconciler.cli.options import (
    EXIT_INTERRUPTED,
    PATHS_HELP,
    SANDBOX_HELP,
    Common,
    common_options,
    echo,
    guarded,
    opened,
    sandboxed,
)
from reconciler.errors import ApplyRefusedError, StalePlanError, StateAbsentError
from reconciler.manifest import DesiredState
from reconciler.plan import Plan, is_plan_file, read_plan
from reconciler.planner import check_selection
from reconciler.render import ApplyReporter, Printer, plan_events, render_plan, write_event
from reconciler.state.absent import lineage_for_new_state
from reconciler.state.base import StateStore

if TYPE_CHECKING:
    from reconciler.applier import ApplyResult
    from reconciler.providers import SandboxTarget


@contextlib.contextmanager
def _interrupts_to(stop: threading.Event) -> Iterator[None]:
    """The first Ctrl-C lets in-flight calls finish and be recorded; a second one stops at once."""

    def handler(signum: int, frame: object) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        echo("\nInterrupted: finishing and recording the calls in flight (Ctrl-C again to quit now).", err=True)

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


@dataclass(frozen=True)
class _Choices:
    """What the command line asks the plan that apply makes to do (a saved plan takes none of them)."""

    targets: tuple[str, ...] = ()
    replace: tuple[str, ...] = ()
    refresh: bool = False
    prune: bool = False
    destroy: bool = False


@click.command(epilog=PATHS_HELP)
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
@click.option("--refresh", is_flag=True, help=REFRESH_HELP)
@click.option("--prune", is_flag=True, help=PRUNE_HELP)
@lock_timeout_option
@common_options(sandbox=SANDBOX_HELP)
@guarded
def apply(
    common: Common,
    paths: tuple[Path, ...],
    auto_approve: bool,
    parallelism: int,
    replace: tuple[str, ...],
    targets: tuple[str, ...],
    as_json: bool,
    refresh: bool,
    prune: bool,
    lock_timeout: float,
) -> None:
    """Create what the manifests (or a saved PLANFILE) say is missing, and update in place what changed,
    exactly once.

    \b
    reconciler apply examples/                  plan, show, ask, create
    reconciler apply plan.json --auto-approve   apply a plan saved by `plan --out`, if still current

    An interrupted apply (crash, kill, Ctrl-C) is safe to run again: it first finds out what became of the
    calls in flight, and never creates anything twice. Exit status: 0 done, 1 something failed, 130 interrupted.
    """
    choices = _Choices(targets, replace, refresh, prune)
    _apply(
        common,
        paths,
        choices,
        auto_approve=auto_approve,
        parallelism=parallelism,
        as_json=as_json,
        lock_timeout=lock_timeout,
    )


@click.command(epilog=PATHS_HELP)
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--auto-approve", is_flag=True, help="Do not ask for confirmation.")
@click.option("--parallelism", default=10, show_default=True, type=click.IntRange(1, 256), help="Remote calls at once.")
@click.option("--target", "targets", multiple=True, metavar="ADDRESS", help="Destroy only this address (repeat).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line: the plan, every outcome, a summary.")
@lock_timeout_option
@common_options(sandbox=SANDBOX_HELP)
@guarded
def destroy(
    common: Common,
    paths: tuple[Path, ...],
    auto_approve: bool,
    parallelism: int,
    targets: tuple[str, ...],
    as_json: bool,
    lock_timeout: float,
) -> None:
    """Delete every PerfTest task and retire every Toloka suite the state holds for the manifests at PATHS.

    Toloka has no delete: a suite is retired, its overlap set to 0 (or to the least its progress allows), so it
    is issued no more. Each is dropped from the state once done. A resource whose manifest sets
    `metadata.lifecycle.prevent_destroy: true` makes the whole plan refused; nothing is sent.
    """
    _apply(
        common,
        paths,
        _Choices(targets=targets, destroy=True),
        auto_approve=auto_approve,
        parallelism=parallelism,
        as_json=as_json,
        lock_timeout=lock_timeout,
    )


def _apply(
    common: Common,
    paths: tuple[Path, ...],
    choices: _Choices,
    *,
    auto_approve: bool,
    parallelism: int,
    as_json: bool,
    lock_timeout: float,
) -> None:
    from_file = len(paths) == 1 and is_plan_file(paths[0])
    if from_file and choices != _Choices():
        raise click.UsageError(
            "--replace, --target, --refresh and --prune go to `reconciler plan` when you apply a saved plan"
        )
    printer = common.printer()
    saved = desired = None
    if from_file:
        saved = read_plan(paths[0])
        desired = manifests_of_paths(common, workflows.manifests_of(saved, paths[0]))
    else:
        desired = manifests_of_paths(common, paths)
        if choices.targets or choices.replace:
            _check_selection(common, desired, targets=choices.targets, replace=choices.replace)
    with (
        sandboxed(common) as sandbox_target,
        opened(common, lineage=_lineage_of_new_state(common, paths[0]) if from_file else None) as store,
        locked(store, operation="destroy" if choices.destroy else "apply", lock_timeout=lock_timeout) as lease,
    ):
        the_plan = _plan_for_apply(common, store, paths, saved, desired, choices, sandbox_target)
        if as_json:
            for event in plan_events(the_plan):
                write_event(sys.stdout, event)
        else:
            render_plan(the_plan, printer, verbose=bool(common.verbose))
            common.announce(printer)
        if not the_plan.applied():
            if not as_json and the_plan.has_changes:
                echo("\nNothing to do.")
            return
        if not auto_approve:
            _confirm()
        the_plan = readback.import_planned(
            the_plan, store, desired, sandbox=sandbox_target, parallelism=READS_AT_ONCE, verify=saved is not None
        )
        result = _run_applier(
            the_plan,
            store,
            sandbox_target,
            printer=printer,
            as_json=as_json,
            parallelism=parallelism,
            verbose=bool(common.verbose),
            guard=lease.check,
        )
    if result.interrupted:
        sys.exit(EXIT_INTERRUPTED)
    if not result.ok:
        sys.exit(1)


def _check_selection(
    common: Common, desired: DesiredState, *, targets: tuple[str, ...], replace: tuple[str, ...]
) -> None:
    """A mistyped --target or --replace is refused before apply opens (and so perhaps creates) the state."""
    try:
        store = common.store(read_only=True)
    except StateAbsentError:
        recorded: set[str] = set()
    else:
        try:
            recorded = {summary.address for summary in store.summaries()}
        finally:
            store.close()
    check_selection(desired.resources, recorded, targets=targets, replace=replace)


def _plan_for_apply(
    common: Common,
    store: StateStore,
    paths: tuple[Path, ...],
    saved: Plan | None,
    desired: DesiredState | None,
    choices: _Choices,
    sandbox_target: SandboxTarget | None,
) -> Plan:
    """The plan apply runs, under the lock: the saved one if it is still current, or one made now."""
    if saved is not None:
        _refuse_plan_of_no_state(common, store, paths[0])
        return workflows.plan_to_apply(
            store, saved, workspace=common.effective_workspace, planfile=paths[0], manifests=desired
        )
    assert desired is not None
    if choices.refresh:
        made = readback.refreshed_plan(
            store,
            desired,
            workspace=common.effective_workspace,
            sandbox=sandbox_target,
            parallelism=READS_AT_ONCE,
            targets=choices.targets,
            replace_addresses=choices.replace,
            manifests=paths,
            prune=choices.prune,
        )
    else:
        made = plan_of_manifests(
            common,
            store,
            desired,
            paths,
            targets=choices.targets,
            replace=choices.replace,
            prune=choices.prune,
            destroy=choices.destroy,
        )
    return workflows.plan_to_apply(store, made, workspace=common.effective_workspace)


def _planned_against(planfile: Path) -> tuple[str, int] | None:
    """The lineage and serial a saved plan names, from its head (they come first), without parsing it all."""
    try:
        with planfile.open("rb") as f:
            head = f.read(4096)
    except OSError:
        return None
    lineage = re.search(rb'"lineage"\s*:\s*"([^"]+)"', head)
    serial = re.search(rb'"serial"\s*:\s*(\d+)', head)
    if lineage is None or serial is None:
        return None
    return lineage.group(1).decode(), int(serial.group(1))


def _lineage_of_new_state(common: Common, planfile: Path) -> str | None:
    """A plan saved against no state (serial 0) at this place names the lineage of the state its apply creates;
    read only when there is no state yet."""
    path = common.state_file()
    if path is None or path.exists():
        return None
    planned = _planned_against(planfile)
    if planned is None or planned[1] != 0:
        return None
    return lineage_for_new_state(planned[0], place=state_place_key(common))


def _refuse_plan_of_no_state(common: Common, store: StateStore, planfile: Path) -> None:
    """A plan saved when there was no state here, applied once a state has been made here by another run: stale
    (the state moved on), not "another state"."""
    planned = _planned_against(planfile)
    if planned is None or planned[1] != 0 or lineage_for_new_state(planned[0], place=state_place_key(common)) is None:
        return
    meta = store.meta()
    if meta.lineage != planned[0]:
        raise StalePlanError(
            f"{planfile} is stale: it was made when there was no state yet, and the state has been made since "
            f"(serial {meta.serial}); make a new plan with `reconciler plan ... --out {planfile}`"
        )


def _confirm() -> None:
    if not sys.stdin.isatty():
        raise ApplyRefusedError(
            "apply asks for confirmation and there is no terminal to ask on; nothing was sent. "
            "Pass --auto-approve in pipelines"
        )
    echo()
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
    verbose: bool,
    guard: Callable[[], None],
) -> ApplyResult:
    stop = threading.Event()
    reporter = ApplyReporter(printer, as_json=as_json, total=len(the_plan.applied()), verbose=verbose)
    with _interrupts_to(stop), reporter:
        result = workflows.apply_plan(
            the_plan,
            store,
            sandbox=sandbox_target,
            parallelism=parallelism,
            on_event=reporter.event,
            stop=stop,
            each_created=as_json or reporter.total <= ApplyReporter.PER_RESOURCE_LINES_UP_TO,
            guard=guard,
        )
    reporter.summary(result)
    return result
