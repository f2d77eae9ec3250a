"""``reconciler state ...``: inspect and repair the recorded state."""

from __future__ import annotations

import json
import tempfile
from contextlib import closing
from pathlib import Path

import click

from reconciler import readback, redaction, workflows
from reconciler.cli.locking import lock_timeout_option, locked
from reconciler.cli.options import (
    PATHS_HELP,
    SANDBOX_STATE_HELP,
    Common,
    common_options,
    echo,
    guarded,
    load_manifests,
    opened,
    sandboxed,
)
from reconciler.errors import StateAbsentError, StateError, UnknownAddressError
from reconciler.render import plural
from reconciler.state import inspect_state_file


@click.group()
def state() -> None:
    """Inspect and repair the recorded state."""


@state.command("list")
@common_options(sandbox=SANDBOX_STATE_HELP, manifests=True)
@guarded
def state_list(common: Common) -> None:
    """List every recorded resource: address, status, remote id."""
    if _absent(common):
        return
    with opened(common, read_only=True) as store:
        for summary in sorted(store.summaries(), key=lambda s: s.address):
            echo(f"{summary.address}\t{summary.status.value}\t{summary.remote_id or '-'}")


@state.command("show")
@click.argument("address")
@common_options(sandbox=SANDBOX_STATE_HELP, manifests=True)
@guarded
def state_show(common: Common, address: str) -> None:
    """Show everything recorded about ADDRESS, as JSON."""
    with opened(common, read_only=True) as store:
        record = store.get(address=address)
        if record is None:
            raise UnknownAddressError(f"{address}: not in the state (see `reconciler state list`)")
        click.echo(
            redaction.safe_json(
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
        )


@state.command("forget")
@click.argument("address")
@lock_timeout_option
@common_options(sandbox=SANDBOX_STATE_HELP, manifests=True)
@guarded
def state_forget(common: Common, address: str, lock_timeout: float) -> None:
    """Drop ADDRESS from the state. The remote object stays (neither API can delete)."""
    with opened(common) as store, locked(store, operation="state forget", lock_timeout=lock_timeout):
        store.forget(address=address)
    echo(f"Forgot {address}; the remote object is untouched.")


@state.command("history")
@click.argument("address", required=False)
@click.option("--limit", default=50, show_default=True, help="How many entries, newest last.")
@common_options(sandbox=SANDBOX_STATE_HELP, manifests=True)
@guarded
def state_history(common: Common, address: str | None, limit: int) -> None:
    """The journal: every intent and outcome, oldest first (of the newest LIMIT)."""
    if _absent(common):
        return
    with opened(common, read_only=True) as store:
        for entry in store.history(address=address, limit=limit):
            detail = json.dumps(entry.detail, ensure_ascii=False) if entry.detail else ""
            echo(
                f"{entry.seq}\t{entry.at}\t{entry.event}\t{entry.address or '-'}\t{entry.operation_id or '-'}\t{detail}"
            )


def _absent(common: Common) -> bool:
    """Whether there is no state at all (said in one line on standard error): nothing is recorded, for sure."""
    path = common.state_file()
    if path is not None and path.exists():
        return False
    try:
        common.store(read_only=True).close()
    except StateAbsentError:
        echo(f"No state at {common.where().shown(common.effective_workspace)}: nothing is recorded yet.", err=True)
        return True
    return False


@state.command("pull")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@common_options(sandbox=SANDBOX_STATE_HELP, manifests=True)
@guarded
def state_pull(common: Common, file: Path) -> None:
    """Write a consistent copy of the state to FILE (a backup, or to move it), without changing the state."""
    with opened(common, read_only=True) as store:
        meta = store.copy_to(path=file)
    echo(f"Wrote the state (lineage {meta.lineage}, serial {meta.serial}) to {file}.")


@state.command("migrate")
@click.option(
    "--to",
    "target",
    required=True,
    metavar="PATH|URL",
    help="The state to copy into: a SQLite file or folder, or a postgresql:// URL; it must hold nothing yet.",
)
@lock_timeout_option
@common_options(sandbox=SANDBOX_STATE_HELP, manifests=True)
@guarded
def state_migrate(common: Common, target: str, lock_timeout: float) -> None:
    """Copy this workspace's state, journal and all, into another state that holds nothing yet (SQLite to
    PostgreSQL, say). Both are locked while it runs; the source is left as it was.

    \b
    reconciler state migrate --to postgresql://reconciler@db/reconciler -m manifests/
    Then point the manifests at it (a StateBackend document) or set RECONCILER_STATE.
    """
    with tempfile.TemporaryDirectory(prefix="reconciler-migrate-") as scratch:
        copy = Path(scratch) / "state.db"
        with opened(common) as source, locked(source, operation="state migrate", lock_timeout=lock_timeout):
            meta = source.copy_to(path=copy)
            with (
                closing(common.store_at(target, lineage=meta.lineage)) as destination,
                locked(destination, operation="state migrate", lock_timeout=lock_timeout),
            ):
                now = destination.meta()
                held = sum(1 for _ in destination.summaries())
                if now.serial != 0 or held or destination.open_intents():
                    raise StateError(
                        f"{redaction.safe_line(target)} already holds a state (lineage {now.lineage}, serial "
                        f"{now.serial}, {held} resource(s)); migrate only into an empty one, or use `state push`"
                    )
                _, _, after = destination.restore_from(path=copy, force=False)
    echo(
        f"Copied the state (lineage {meta.lineage}, serial {meta.serial}) into {redaction.safe_line(target)}; "
        f"serial there now {after.serial}. The source is unchanged: point the manifests at the new state."
    )


@state.command("push")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--force",
    is_flag=True,
    help="Replace a state of another lineage, or go back to an older serial (what the state records now is lost).",
)
@lock_timeout_option
@common_options(sandbox=SANDBOX_STATE_HELP, manifests=True)
@guarded
def state_push(common: Common, file: Path, force: bool, lock_timeout: float) -> None:
    """Replace the state by FILE, a copy made by `state pull`, after checking it is a complete state of this
    state's lineage and not older than it (an absent or empty state takes any)."""
    inspect_state_file(file)  # refused before the state is opened, let alone created
    with (
        opened(common, replace_empty=True) as store,
        locked(store, operation="state push", lock_timeout=lock_timeout),
    ):
        before, count, after = store.restore_from(path=file, force=force)
    if before.lineage != after.lineage and (before.serial or count):
        echo(
            f"Replaced the state of lineage {before.lineage} (serial {before.serial}, {count} resource(s)), which "
            f"is lost, by {file} (lineage {after.lineage}); serial now {after.serial}."
        )
    else:
        echo(f"Restored the state from {file} (lineage {after.lineage}); serial now {after.serial}.")


@state.command("unlock")
@click.argument("lock_id")
@common_options(sandbox=SANDBOX_STATE_HELP, manifests=True)
@guarded
def state_unlock(common: Common, lock_id: str) -> None:
    """Break the lock LOCK_ID left by a run that died. Only when you are sure that run is gone."""
    with opened(common) as store:
        store.force_unlock(lock_id=lock_id)
    echo(f"Lock {lock_id} released.")


@state.command("import", epilog=PATHS_HELP)
@click.argument("arguments", nargs=-1, required=True, metavar="[ADDRESS REMOTE_ID] PATHS...")
@click.option(
    "--discover",
    is_flag=True,
    help="Find the remote objects that match the manifests exactly, and adopt each that matches one resource.",
)
@click.option(
    "--parallelism", default=16, show_default=True, type=click.IntRange(1, 256), help="PerfTest tasks read at once."
)
@common_options(
    sandbox="Import from the embedded emulator (started for this command) into the workspace 'sandbox', where "
    "`apply --sandbox` records."
)
@lock_timeout_option
@guarded
def state_import(
    common: Common, arguments: tuple[str, ...], discover: bool, parallelism: int, lock_timeout: float
) -> None:
    """Record that ADDRESS (declared in the manifests at PATHS) is the existing remote object REMOTE_ID; or,
    with --discover, rebuild a lost state from what the remote holds.

    \b
    reconciler state import PerfTestTask/soak 100042 manifests/
    reconciler state import --discover manifests/

    REMOTE_ID is read from the API first (with the provider's credentials, as apply reads them), and refused if
    it does not exist. Also settles an interrupted create of ADDRESS that apply could not resolve by itself.

    --discover lists the pools and test projects the manifests name and adopts, for each declared resource the
    state does not hold, the remote object that holds exactly what apply would send: a PerfTest task by test
    project, name and body, a Toloka suite by its content. Two objects matching one resource are reported and
    adopted by neither (import the right one by id). Nothing is created.
    """
    if discover:
        _import_discovered(common, tuple(Path(a) for a in arguments), parallelism, lock_timeout)
        return
    if len(arguments) < 3:
        raise click.UsageError("give ADDRESS REMOTE_ID PATHS..., or --discover PATHS...")
    address, remote_id, paths = arguments[0], arguments[1], tuple(Path(a) for a in arguments[2:])
    desired = load_manifests(common, paths)
    common.use_manifests(desired, paths)
    if address not in desired.resources:
        raise UnknownAddressError(f"{address}: not declared in {', '.join(str(p) for p in paths)}")
    with (
        sandboxed(common) as sandbox_target,
        opened(common) as store,
        locked(store, operation="state import", lock_timeout=lock_timeout),
    ):
        workflows.import_resource(
            store, desired, address=address, remote_id=remote_id, paths=paths, sandbox=sandbox_target
        )
    echo(f"Imported {address} as remote object {remote_id}.")


def _import_discovered(common: Common, paths: tuple[Path, ...], parallelism: int, lock_timeout: float) -> None:
    desired = load_manifests(common, paths)
    common.use_manifests(desired, paths)
    with (
        sandboxed(common) as sandbox_target,
        opened(common) as store,
        locked(store, operation="state import --discover", lock_timeout=lock_timeout),
    ):
        found = readback.discover_resources(store, desired, sandbox=sandbox_target, parallelism=parallelism)
        adopted = readback.adopt(store, desired, {m.address: m.remote_id for m in found.matches})
    for address, ids in found.ambiguous.items():
        echo(
            f"{address}: {len(ids)} remote objects match it exactly ({', '.join(ids)}); none was adopted. Import "
            f"the right one with `reconciler state import {address} ID {' '.join(map(str, paths))}`.",
            err=True,
        )
    for error in found.errors:
        echo(f"Error: {error}", err=True)
    echo(
        f"Adopted {plural(adopted, 'remote object')} matching the manifests exactly; "
        f"{plural(len(found.ambiguous), 'resource')} matched more than one; nothing was created."
    )
    if found.errors:
        raise SystemExit(1)


@state.command("refresh", epilog=PATHS_HELP)
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--parallelism", default=16, show_default=True, type=click.IntRange(1, 256), help="PerfTest tasks read at once."
)
@common_options(sandbox=SANDBOX_STATE_HELP)
@lock_timeout_option
@guarded
def state_refresh(common: Common, paths: tuple[Path, ...], parallelism: int, lock_timeout: float) -> None:
    """Read back every object the state records (of a provider the manifests at PATHS declare) and record what
    was read, with a journal entry. Creates and sends nothing.

    `reconciler state show ADDRESS` then shows each object's remote view and when it was read; an object gone
    remotely is recorded as gone, and `plan --refresh` plans it again. An object that cannot be read keeps the
    view it had, and the command exits 1.
    """
    desired = load_manifests(common, paths)
    common.use_manifests(desired, paths)
    with (
        sandboxed(common) as sandbox_target,
        opened(common, read_only=False) as store,
        locked(store, operation="state refresh", lock_timeout=lock_timeout),
    ):
        refreshed = readback.refresh_state(store, desired, sandbox=sandbox_target, parallelism=parallelism)
    for read in refreshed.unreadable:
        echo(f"Error: {read.address} (remote id {read.remote_id}) could not be read: {read.error}", err=True)
    for read in refreshed.gone:
        echo(f"{read.address}: gone remotely (remote id {read.remote_id}); `reconciler plan --refresh` plans it again.")
    read_count = len(refreshed.reads) - len(refreshed.unreadable)
    echo(
        f"Refreshed {plural(read_count, 'object')}: {len(refreshed.gone)} gone, "
        f"{len(refreshed.unreadable)} could not be read."
    )
    if refreshed.unreadable:
        raise SystemExit(1)
