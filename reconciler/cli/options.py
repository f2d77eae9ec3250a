"""What every command shares: the common options, and the one place errors are rendered.

``guarded`` is the only code that prints errors: a ``ReconcilerError`` becomes its one-line message and exit
status 1; anything else is a bug, written with its traceback to a debug log, reported in one line, exit status
1 (never 2, which ``plan --detailed-exitcode`` reserves for "changes").
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
import tempfile
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import click

from reconciler import workflows
from reconciler.errors import ManifestError, ReconcilerError
from reconciler.manifest import DesiredState
from reconciler.render import Printer
from reconciler.state import open_store
from reconciler.state.base import StateStore

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


@contextlib.contextmanager
def opened(common: Common) -> Iterator[StateStore]:
    """The state store of the command's workspace, closed when the command is done."""
    store = common.store()
    try:
        yield store
    finally:
        store.close()


def load_manifests(common: Common, paths: tuple[Path, ...]) -> DesiredState:
    desired = workflows.load_manifests(paths)
    if common.verbose:
        for path in desired.skipped:
            click.echo(f"skipped {path}: no apiVersion, not a manifest", err=True)
    return desired
