"""``validate``, ``plan``, ``show`` and ``schema``: each parses, calls ``reconciler.workflows`` and renders, top
to bottom (``apply`` has a module of its own)."""

from __future__ import annotations

import json
import shlex
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import click

from reconciler import readback, workflows
from reconciler.cli.drift import READS_AT_ONCE
from reconciler.cli.options import (
    PATHS_HELP,
    SANDBOX_HELP,
    Common,
    common_options,
    echo,
    guarded,
    load_manifests,
    sandboxed,
)
from reconciler.errors import ApplyRefusedError, ManifestError, StateAbsentError
from reconciler.kinds import KINDS, json_schema
from reconciler.manifest import DesiredState
from reconciler.plan import Plan, read_plan, write_plan
from reconciler.render import plan_events, plural, render_plan, write_event
from reconciler.render_markdown import plan_markdown
from reconciler.state.absent import AbsentState
from reconciler.state.base import StateStore

if TYPE_CHECKING:
    from reconciler.resources import Resource


@click.command(epilog=PATHS_HELP)
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="For editors and hooks: one JSON object per problem (file, line, address, field, message), then a "
    "summary object.",
)
@common_options(state=False)
@guarded
def validate(common: Common, paths: tuple[Path, ...], as_json: bool) -> None:
    """Check manifests and data files in full; report every error as FILE:LINE: ADDRESS: FIELD: MESSAGE.

    Sends nothing and reads no state. Exit status 0 if valid, 1 otherwise.
    """
    if as_json:
        _validate_json(common, paths)
        return
    desired = load_manifests(common, paths)
    kinds = _kinds(desired.resources.values())
    detail = ", ".join(f"{n} {k}" for k, n in sorted(kinds.items())) or "no resources"
    resources, providers = plural(len(desired.resources), "resource"), plural(len(desired.providers), "provider")
    echo(f"Valid: {resources} ({detail}), {providers}.")


def _kinds(resources: Iterable[Resource]) -> dict[str, int]:
    kinds: dict[str, int] = {}
    for resource in resources:
        kinds[resource.kind] = kinds.get(resource.kind, 0) + 1
    return kinds


def _validate_json(common: Common, paths: tuple[Path, ...]) -> None:
    """``validate --json``: the problems are the output here, on standard output, not errors to render."""
    try:
        desired = load_manifests(common, paths)
    except ManifestError as err:
        for problem in err.problems:
            write_event(
                sys.stdout,
                {
                    "type": "problem",
                    "file": problem.path,
                    "line": problem.line,
                    "address": problem.address,
                    "field": problem.field,
                    "message": problem.message,
                },
            )
        write_event(sys.stdout, {"type": "summary", "valid": False, "problems": len(err.problems)})
        sys.exit(1)
    write_event(
        sys.stdout,
        {
            "type": "summary",
            "valid": True,
            "problems": 0,
            "resources": len(desired.resources),
            "kinds": _kinds(desired.resources.values()),
            "providers": len(desired.providers),
        },
    )


def manifests_of_paths(common: Common, paths: tuple[Path, ...]) -> DesiredState:
    """Load the manifests, and find their state from them."""
    desired = load_manifests(common, paths)
    common.use_manifests(desired, paths)
    return desired


def plan_of_manifests(
    common: Common,
    store: StateStore,
    desired: DesiredState,
    paths: tuple[Path, ...],
    *,
    targets: tuple[str, ...] = (),
    replace: tuple[str, ...] = (),
    prune: bool = False,
    destroy: bool = False,
) -> Plan:
    return workflows.plan_from_manifests(
        store,
        desired,
        workspace=common.effective_workspace,
        targets=targets,
        replace=replace,
        manifests=paths,
        prune=prune,
        destroy=destroy,
    )


PRUNE_HELP = (
    "Delete what the state holds and the manifests no longer declare: PerfTest tasks are deleted, Toloka suites "
    "retired (overlap set to 0; Toloka has no delete)."
)


REFRESH_HELP = (
    "Read the remote first: objects gone remotely are planned again, remote changes shown, and objects that "
    "match an unrecorded resource exactly are imported instead of created."
)

OUTPUT_FORMATS = ("text", "markdown", "json")
FORMAT_HELP = "text (default), markdown (a pull-request or issue comment) or json (one object per line)."


def _output_format(as_json: bool, output_format: str | None) -> str:
    """``--json`` is ``--format json``, kept for the pipelines that pass it; two different formats are an error."""
    if as_json and output_format not in (None, "json"):
        raise click.UsageError(f"--json and --format {output_format} ask for two formats; pass one of them")
    return "json" if as_json else output_format or "text"


def _plan_markdown(
    common: Common, result: Plan, absent: Path | None, out: Path | None, refused: tuple[str, str] | None
) -> None:
    """The plan as one comment; the lines text output prints around the plan become its closing notes."""
    place = common.where()
    notes = [f"State: {place.shown(common.effective_workspace)} (workspace {common.effective_workspace})."]
    if absent is not None:
        notes.append(no_state_yet(absent))
    if refused is not None:
        notes.append(f"Warning: apply would refuse this plan: {refused[0]}; {refused[1]}")
    echo(plan_markdown(result, notes=notes).rstrip("\n"))
    if out is not None:
        echo(f"Saved the plan to {out}.", err=True)


@click.command(epilog=PATHS_HELP)
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--out", "out", type=click.Path(path_type=Path), help="Save the plan as JSON for `apply FILE`.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line instead of text (= --format json).")
@click.option("--format", "output_format", type=click.Choice(OUTPUT_FORMATS), help=FORMAT_HELP)
@click.option(
    "--detailed-exitcode",
    is_flag=True,
    help="Exit 0 when apply would change nothing (orphans are only reported), 2 when it would create, update, "
    "replace, delete, import or resolve something, 1 on error or when apply would refuse the plan (a change "
    "without --replace).",
)
@click.option("--target", "targets", multiple=True, metavar="ADDRESS", help="Plan only this address (repeat).")
@click.option("--replace", "replace", multiple=True, metavar="ADDRESS", help="Plan a new remote object for ADDRESS.")
@click.option("--refresh", is_flag=True, help=REFRESH_HELP)
@click.option("--prune", is_flag=True, help=PRUNE_HELP)
@common_options(sandbox=SANDBOX_HELP)
@guarded
def plan(
    common: Common,
    paths: tuple[Path, ...],
    out: Path | None,
    as_json: bool,
    output_format: str | None,
    detailed_exitcode: bool,
    targets: tuple[str, ...],
    replace: tuple[str, ...],
    refresh: bool,
    prune: bool,
) -> None:
    """Compare manifests with the recorded state and show what `apply` would do.

    \b
    Signs:  + create   ~ update in place, or a change that needs --replace   -/+ replace
            - delete (a Toloka suite: retire)   ! orphaned (in the state, not in the manifests)
            <= import (--refresh found it remotely)   ? resolve an interrupted apply
    Nothing is sent; with --refresh the remote is read (never written).
    """
    output_format = _output_format(as_json, output_format)
    as_json = output_format == "json"
    desired = manifests_of_paths(common, paths)
    store: StateStore
    absent = None
    try:
        store = common.store(read_only=True)
    except StateAbsentError:
        absent = common.state_file() or Path(common.where().shown(common.effective_workspace))
        store = AbsentState(absent, place=state_place_key(common))
    try:
        if refresh:
            with sandboxed(common) as sandbox_target:
                result = readback.refreshed_plan(
                    store,
                    desired,
                    workspace=common.effective_workspace,
                    sandbox=sandbox_target,
                    parallelism=READS_AT_ONCE,
                    targets=targets,
                    replace_addresses=replace,
                    manifests=paths,
                    prune=prune,
                )
        else:
            result = plan_of_manifests(common, store, desired, paths, targets=targets, replace=replace, prune=prune)
    finally:
        store.close()
    refused = workflows.refusal(result)
    if out is not None:
        write_plan(result, out)
    if as_json:
        for event in plan_events(result):
            write_event(sys.stdout, event)
        if absent is not None:
            echo(no_state_yet(absent), err=True)  # beside the JSON lines, not among them
    elif output_format == "markdown":
        _plan_markdown(common, result, absent, out, refused)
    else:
        render_plan(result, common.printer(), verbose=bool(common.verbose))
        common.announce(common.printer())
        if absent is not None:
            echo(f"\n{no_state_yet(absent)}")
        if out is not None and refused is None:
            command = " ".join(filter(None, ("reconciler apply", shlex.quote(str(out)), common.selecting_options())))
            echo(f"\nSaved the plan to {out}. Apply exactly this plan with: {command}")
        elif out is not None:
            echo(f"\nSaved the plan to {out}, but apply would refuse it as it stands.")
    if refused is not None:
        reason, fix = refused
        if detailed_exitcode:
            raise ApplyRefusedError(f"apply would refuse this plan: {reason}; {fix}")
        warning = f"Warning: apply would refuse this plan: {reason}; {fix}"
        # After the plan, where a person reads it; with --json, on standard error, beside the JSON lines.
        if output_format != "markdown":
            echo(warning if as_json else f"\n{warning}", err=as_json)
    if detailed_exitcode and result.would_apply:
        sys.exit(2)


@click.command()
@click.argument("planfile", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line instead of text (= --format json).")
@click.option("--format", "output_format", type=click.Choice(OUTPUT_FORMATS), help=FORMAT_HELP)
@common_options()
@guarded
def show(common: Common, planfile: Path, as_json: bool, output_format: str | None) -> None:
    """Show a saved plan file (made by `plan --out`)."""
    output_format = _output_format(as_json, output_format)
    saved = read_plan(planfile)
    if output_format == "json":
        for event in plan_events(saved):
            write_event(sys.stdout, event)
        return
    made = f"Plan for workspace {saved.workspace!r}, made {saved.created_at} against state serial {saved.serial}."
    if output_format == "markdown":
        echo(plan_markdown(saved, heading=f"reconciler plan: {planfile.name}", notes=[made]).rstrip("\n"))
        return
    echo(made)
    render_plan(saved, common.printer(), verbose=bool(common.verbose))


@click.command()
@click.argument("kind", required=False)
def schema(kind: str | None) -> None:
    """Print the JSON Schema of KIND (or of `plan`, the plan file); without KIND, list the kinds.

    Point your editor's YAML language server at these for completion and checking while you type.
    """
    if kind is None:
        for name in (*KINDS, "plan"):
            echo(name)
        return
    if kind == "plan":
        from reconciler.schema_files import plan_schema  # imported here: only this command uses it

        echo(json.dumps(plan_schema(), indent=2, sort_keys=True))
        return
    if kind not in KINDS:
        echo(f"Error: unknown kind {kind!r}; one of: {', '.join(KINDS)}, plan", err=True)
        sys.exit(1)
    echo(json.dumps(json_schema(kind), indent=2, sort_keys=True))


def no_state_yet(path: Path) -> str:
    """Planning against no state is a first run, said in one line."""
    return f"No state yet at {path}: planned against an empty state; apply creates it."


def state_place_key(common: Common) -> str:
    """Where the state is, as the user named it: a plan saved against no state applies only there."""
    return f"{common.state or ''}\0{common.effective_workspace}"
