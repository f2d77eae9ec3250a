"""``drift``: what a cron job runs to find what changed behind the tool's back."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from reconciler import readback
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
from reconciler.errors import StateAbsentError, StateError
from reconciler.render_drift import render_drift, write_drift_json
from reconciler.render_markdown import drift_markdown

#: Reads at once; each provider's rate limit still holds across them.
READS_AT_ONCE = 16
FORMATS = ("text", "markdown", "json")


@click.command(epilog=PATHS_HELP)
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="The report as one JSON object (= --format json).")
@click.option(
    "--format",
    "output_format",
    type=click.Choice(FORMATS),
    help="text (default), markdown (an issue or pull-request comment) or json (one object, with fingerprints).",
)
@click.option(
    "--parallelism",
    default=READS_AT_ONCE,
    show_default=True,
    type=click.IntRange(1, 256),
    help="PerfTest tasks read at once (within the provider's rate limit).",
)
@common_options(sandbox=SANDBOX_HELP)
@guarded
def drift(common: Common, paths: tuple[Path, ...], as_json: bool, output_format: str | None, parallelism: int) -> None:
    """Compare the manifests, the state and the remote, and report every difference.

    \b
    Reported: objects changed remotely (each field, as sent and as read),
    objects gone remotely, objects that could not be read, and changes in the
    manifests not yet applied. Fields the server manages or that move with
    normal work (a suite's remaining_overlap, a pool opened or closed, a
    task's runs) are never drift.

    Reads only: never writes the state and never takes its lock, so it can run
    from cron while an apply runs. Each finding has a fingerprint that stays the
    same while the drift does (--json), for a job to alert on new drift only.

    Exit status: 0 in sync, 2 drift, 1 an error (something could not be read).
    """
    if as_json and output_format not in (None, "json"):
        raise click.UsageError(f"--json and --format {output_format} ask for two formats; pass one of them")
    output_format = "json" if as_json else output_format or "text"
    desired = load_manifests(common, paths)
    common.use_manifests(desired, paths)
    try:
        store = common.store(read_only=True)
    except StateAbsentError as err:
        where = common.where().shown(common.effective_workspace)
        raise StateError(
            f"no state at {where}: drift compares the remote with what a state records, and there is none "
            "(wrong --state, --workspace or directory? a new project has nothing to drift yet)"
        ) from err
    try:
        with sandboxed(common) as sandbox_target:
            report = readback.check_drift(
                store, desired, workspace=common.effective_workspace, sandbox=sandbox_target, parallelism=parallelism
            )
    finally:
        store.close()
    if output_format == "json":
        write_drift_json(report, sys.stdout)
    elif output_format == "markdown":
        echo(drift_markdown(report).rstrip("\n"))
    else:
        render_drift(report, common.printer(), verbose=bool(common.verbose))
    if report.exit_code:
        sys.exit(report.exit_code)
