"""What every command shares: the common options, and the one place errors are rendered.

``guarded`` is the only code that prints errors: a ``ReconcilerError`` becomes its one-line message and exit
status 1; anything else is a bug, written with its traceback to a debug log, reported in one line, exit status
1 (never 2, which ``plan --detailed-exitcode`` reserves for "changes"). A reader that closes the pipe early
(``reconciler plan | head``) is no error: ``exit_closed_pipe`` ends the command quietly with status 141.

Every message printed here, and every log record, passes through ``reconciler.redaction``: credentials masked,
control characters escaped. ``--debug`` logs what happens (requests, retries, tracebacks) to standard error,
through the same step; a command starts with no credential registered from an earlier one of this process.

The common options (``--state``, ``--workspace``, ``--no-color``, ``-v``, ``--debug``) are accepted before the
command as well as after it (``reconciler --no-color plan``): the group keeps what it was given in a
``GroupOptions``, and ``common_options`` merges it in, the command's own option winning when both are given.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import shlex
import signal
import sys
import tempfile
import traceback
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import click
from click.core import ParameterSource

from reconciler import redaction, workflows
from reconciler.cli.place import STATE_DIR, StatePlace, place_of
from reconciler.errors import ManifestError, ReconcilerError
from reconciler.manifest import DesiredState, find_backend
from reconciler.render import Printer
from reconciler.state import open_store
from reconciler.state.base import StateStore

if TYPE_CHECKING:
    from reconciler.providers import SandboxTarget

F = TypeVar("F", bound=Callable[..., Any])

log = logging.getLogger(__name__)

SANDBOX_WORKSPACE = workflows.SANDBOX_WORKSPACE
DEFAULT_WORKSPACE = "default"
EXIT_INTERRUPTED = 130
#: A shell's status for a process that SIGPIPE ended (128 + 13): what ``yes | head -1`` leaves for ``yes``.
EXIT_CLOSED_PIPE = 128 + signal.SIGPIPE

PATHS_HELP = """\b
PATHS are files or directories (*.yaml, *.yml, *.json, recursively), or `-`
for manifests read from standard input, as kubectl does:
  cat m.yaml | reconciler validate -
A TaskSuiteSet read from standard input finds its relative `source` from the
current directory, which is then the manifest root.
"""


@dataclass
class Common:
    state: str | None
    workspace: str
    sandbox: bool
    color: bool
    verbose: int
    #: Whether --state was typed on the command line (not taken from RECONCILER_STATE).
    state_typed: bool = False
    #: Where the state is, once the command knows its manifests (``use_manifests``, ``use_paths``).
    place: StatePlace | None = None
    #: ``--manifests`` of the commands that take no manifests of their own: where to look for the state.
    near: tuple[Path, ...] = ()

    def use_manifests(self, desired: DesiredState, paths: Iterable[Path]) -> None:
        """Find the state from the manifests the command read (their ``StateBackend``, or beside them)."""
        self.place = place_of(flag=self.state, flag_typed=self.state_typed, backend=desired.backend, near=paths)

    def use_paths(self, paths: Iterable[Path]) -> None:
        """Find the state from manifests at ``paths`` without loading them (only a ``StateBackend`` is read)."""
        paths = list(paths)
        backend = None if self.state is not None or not paths else find_backend(paths)
        self.place = place_of(flag=self.state, flag_typed=self.state_typed, backend=backend, near=paths)

    def where(self) -> StatePlace:
        if self.place is None:
            self.use_paths(self.near)
        assert self.place is not None
        return self.place

    def announce(self, printer: Printer) -> None:
        """The line under a plan that says which state it was made against, and why that one."""
        place = self.where()
        printer.line(
            f"State: {place.shown(self.effective_workspace)} (workspace {self.effective_workspace}; {place.source})"
        )

    @property
    def effective_workspace(self) -> str:
        return SANDBOX_WORKSPACE if self.sandbox and self.workspace == DEFAULT_WORKSPACE else self.workspace

    def printer(self, err: bool = False) -> Printer:
        stream = sys.stderr if err else sys.stdout
        return Printer(stream, color=self.color and stream.isatty())

    def store(self, *, read_only: bool = False, lineage: str | None = None, replace_empty: bool = False) -> StateStore:
        """The state store; ``read_only`` for commands that only read (a missing state: StateAbsentError)."""
        place = self.where()
        place.legacy_check(self.effective_workspace)
        place.password()
        return open_store(
            place.location,
            workspace=self.effective_workspace,
            root=place.root,
            read_only=read_only,
            lineage=lineage,
            replace_empty=replace_empty,
        )

    def store_at(self, location: str, *, lineage: str | None = None) -> StateStore:
        """Another state than this command's (``state migrate --to``), of the same workspace."""
        return open_store(location, workspace=self.effective_workspace, root=self.where().root, lineage=lineage)

    def state_file(self) -> Path | None:
        """The SQLite file of the state, None for a database URL."""
        return self.where().file(self.effective_workspace)

    def sandbox_data(self) -> Path:
        """Where ``--sandbox`` keeps the emulator's objects: beside the state it records them in."""
        place = self.where()
        file = place.file(self.effective_workspace)
        return (place.root / STATE_DIR if file is None else file.parent) / "sandbox-remote.db"

    def selecting_options(self) -> str:
        """The options that pick this command's workspace and state again, for a command printed as a hint.

        ``--state`` is repeated only when it was typed: a value from ``RECONCILER_STATE`` comes from that
        variable again (and may be a URL with a password, which is never printed).
        """
        parts = []
        if self.sandbox:
            parts.append("--sandbox")
        if self.workspace != DEFAULT_WORKSPACE:
            parts.append(f"--workspace {shlex.quote(self.workspace)}")
        if self.state is not None and self.state_typed:
            parts.append(f"--state {shlex.quote(self.state)}")
        return " ".join(parts)


@dataclass
class GroupOptions:
    """The common options given before the command (``reconciler --no-color plan``)."""

    state: str | None = None
    workspace: str | None = None
    no_color: bool = False
    verbose: int = 0
    debug: bool = False


def _state_option(envvar: str | None) -> Callable[[F], F]:
    return click.option(
        "--state",
        "state",
        metavar="PATH|URL",
        envvar=envvar,
        help="State store: a SQLite file or folder, or a postgresql:// URL (default: the manifests' StateBackend, "
        "else .reconciler/WORKSPACE.db beside the manifests) [env RECONCILER_STATE].",
    )


def _workspace_option(default: str | None, envvar: str | None) -> Callable[[F], F]:
    return click.option(
        "--workspace",
        default=default,
        show_default=default is not None,
        envvar=envvar,
        help="Separate state per workspace (e.g. staging, production) [env RECONCILER_WORKSPACE].",
    )


_no_color_option = click.option("--no-color", is_flag=True, help="Plain output, even on a terminal.")
_verbose_option = click.option("-v", "--verbose", count=True, help="Say more (skipped files, every suite of a set).")
_debug_option = click.option(
    "--debug",
    is_flag=True,
    help="Log what happens (requests, retries, tracebacks) to standard error; credentials are masked.",
)


def group_options(fn: F) -> F:
    """The common options on the ``reconciler`` group itself, kept in the context for the command to merge."""

    @_state_option(None)
    @_workspace_option(None, None)
    @_no_color_option
    @_verbose_option
    @_debug_option
    @functools.wraps(fn)
    def wrapper(
        *args: Any, state: str | None, workspace: str | None, no_color: bool, verbose: int, debug: bool, **kwargs: Any
    ) -> Any:
        ctx = click.get_current_context()
        ctx.obj = GroupOptions(state=state, workspace=workspace, no_color=no_color, verbose=verbose, debug=debug)
        return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


SANDBOX_HELP = (
    "Run against the embedded emulator of both APIs (no cloud account needed); uses the workspace 'sandbox' "
    "and keeps the emulator's data in .reconciler/sandbox-remote.db beside the manifests."
)
SANDBOX_STATE_HELP = "Use the workspace 'sandbox', where `apply --sandbox` records what it created."


def common_options(*, sandbox: str | None = None, state: bool = True, manifests: bool = False) -> Callable[[F], F]:
    """The options every command takes, in the same words everywhere; ``sandbox`` is the help of ``--sandbox``
    for the commands that take it; ``state=False`` for a command that reads no state; ``manifests`` adds
    ``--manifests`` to a command that has no manifests of its own, to find their state."""

    def decorate(fn: F) -> F:
        @_no_color_option
        @_verbose_option
        @_debug_option
        @functools.wraps(fn)
        def wrapper(
            *args: Any, no_color: bool, verbose: int, debug: bool, workspace: str = DEFAULT_WORKSPACE, **kwargs: Any
        ) -> Any:
            ctx = click.get_current_context()
            before = ctx.find_object(GroupOptions) or GroupOptions()
            state_value: str | None = kwargs.pop("state", None)
            state_typed = _typed(ctx, "state")
            if not state_typed and before.state is not None:
                state_value, state_typed = before.state, True
            if not _typed(ctx, "workspace") and before.workspace is not None:
                workspace = before.workspace
            if not _typed(ctx, "verbose"):
                verbose = before.verbose
            common = Common(
                state=state_value,
                workspace=workspace,
                sandbox=bool(kwargs.pop("sandbox", False)),
                color=not (no_color or before.no_color) and "NO_COLOR" not in os.environ,
                verbose=verbose,
                state_typed=state_typed,
                near=tuple(kwargs.pop("manifests", None) or ()),
            )
            with command_scope(debug=debug or before.debug):
                return fn(common, *args, **kwargs)

        decorated = wrapper
        if state:  # a command that reads no state has no workspace either (validate)
            decorated = _workspace_option(DEFAULT_WORKSPACE, "RECONCILER_WORKSPACE")(decorated)
            decorated = _state_option("RECONCILER_STATE")(decorated)
        if sandbox is not None:
            decorated = click.option("--sandbox", is_flag=True, help=sandbox)(decorated)
        if manifests:
            decorated = click.option(
                "-m",
                "--manifests",
                "manifests",
                multiple=True,
                type=click.Path(path_type=Path),
                metavar="PATH",
                help="The manifests whose state this is (their StateBackend, or the .reconciler/ beside them); "
                "default: the nearest .reconciler/ from here.",
            )(decorated)
        return decorated  # type: ignore[return-value]

    return decorate


def _typed(ctx: click.Context, name: str) -> bool:
    return ctx.get_parameter_source(name) is ParameterSource.COMMANDLINE


class _StderrHandler(logging.Handler):
    """Writes to the standard error of the moment (click's test runner swaps it), as ``click.echo`` does."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stderr.write(self.format(record) + "\n")
            sys.stderr.flush()
        except Exception:  # noqa: BLE001 - logging's own contract: a failing handler reports, never raises
            self.handleError(record)


_LOG_HANDLER = _StderrHandler()
_LOG_HANDLER.addFilter(redaction.RedactingFilter())
_PLAIN_FORMAT = logging.Formatter("%(message)s")
_DEBUG_FORMAT = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")


@contextlib.contextmanager
def command_scope(*, debug: bool) -> Iterator[None]:
    """What one command runs within: no credential registered by an earlier command of this process, and every
    log record sent to standard error through the redaction filter (warnings as plain lines, as Python shows
    them by default; with ``debug``, every record of every library, timed and named).

    The filter sits on a handler, not on a logger, because a logger's filters miss records that other
    loggers (httpx, httpcore) pass up to it; it changes the record itself, so the handler goes first. All of it
    is undone at the end, for a process (a test) that runs several commands.
    """
    root = logging.getLogger()
    level_before = root.level
    level = logging.DEBUG if debug else logging.WARNING
    _LOG_HANDLER.setLevel(level)
    _LOG_HANDLER.setFormatter(_DEBUG_FORMAT if debug else _PLAIN_FORMAT)
    redaction.forget_all()
    root.handlers.insert(0, _LOG_HANDLER)  # first, so that handlers set up by others get the masked record
    if debug:
        root.setLevel(level)
        log.debug("reconciler %s (version %s)", shlex.join(sys.argv[1:]), _version())
    try:
        yield
    finally:
        root.removeHandler(_LOG_HANDLER)
        root.setLevel(level_before)
        redaction.forget_all()


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("perftest-toloka-reconciler")
    except PackageNotFoundError:
        return "unknown"


def exit_closed_pipe() -> NoReturn:
    """The reader of our output went away (``| head``): normal shell use, so no message, and the status a shell
    gives a process SIGPIPE ended, which a pipeline never takes for success or for "changes" (2).

    Standard output is pointed at /dev/null first, so that flushing it at exit does not fail again.
    """
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # not a real file (a test runner's capture): nothing to redirect
        pass
    sys.exit(EXIT_CLOSED_PIPE)


def echo(message: str = "", *, err: bool = False) -> None:
    """``click.echo`` of text that may quote untrusted input (addresses, paths, server messages): redacted, and
    control characters shown escaped, never sent to the terminal raw."""
    click.echo(redaction.safe_lines(message), err=err)


def guarded(fn: F) -> F:
    """Render every error once, as promised in the module docstring."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ManifestError as err:
            for problem in err.problems:
                click.echo(redaction.safe_line(str(problem)), err=True)
            noun = "error" if len(err.problems) == 1 else "errors"
            click.echo(f"{len(err.problems)} {noun} in the manifests; nothing was sent.", err=True)
            sys.exit(1)
        except ReconcilerError as err:
            log.debug("%s, raised here:", type(err).__name__, exc_info=True)
            click.echo(f"Error: {redaction.safe_line(str(err))}", err=True)
            sys.exit(err.exit_code)
        except (click.exceptions.Exit, click.ClickException, SystemExit, click.Abort):
            raise
        except KeyboardInterrupt:
            click.echo("Interrupted.", err=True)
            sys.exit(EXIT_INTERRUPTED)
        except BrokenPipeError:
            exit_closed_pipe()
        except Exception as err:  # noqa: BLE001 - the last line of defence; see the module docstring
            log.debug("unexpected %s, raised here:", type(err).__name__, exc_info=True)
            written = _write_debug_log()
            message = redaction.safe_line(f"unexpected {type(err).__name__}: {err}")
            click.echo(
                f"Error: {message}. This is a bug in reconciler; the details are in {written}; please report it "
                "with that file.",
                err=True,
            )
            sys.exit(1)

    return wrapper  # type: ignore[return-value]


def _write_debug_log() -> str:
    """The traceback of the error being handled, in a file of its own, masked as everything else is."""
    fd, path = tempfile.mkstemp(prefix="reconciler-debug-", suffix=".log")
    with os.fdopen(fd, "w") as out:
        out.write(redaction.safe_lines(f"reconciler {' '.join(sys.argv[1:])}\n\n{traceback.format_exc()}"))
    return path


@contextlib.contextmanager
def opened(
    common: Common, *, read_only: bool = False, lineage: str | None = None, replace_empty: bool = False
) -> Iterator[StateStore]:
    """The state store of the command's workspace, closed when the command is done; ``read_only`` for a command
    that only reads (it never creates the state, nor writes a byte of it)."""
    store = common.store(read_only=read_only, lineage=lineage, replace_empty=replace_empty)
    try:
        yield store
    finally:
        store.close()


@contextlib.contextmanager
def sandboxed(common: Common) -> Iterator[SandboxTarget | None]:
    """With --sandbox, the embedded emulator runs for the length of the command, its data beside the state."""
    if not common.sandbox:
        yield None
        return
    import reconciler.sandbox as emulator
    from reconciler.providers import SandboxTarget

    data = common.sandbox_data()
    data.parent.mkdir(parents=True, exist_ok=True)
    with emulator.SandboxServer(port=0, auto_create=True, data_path=data) as server:
        yield SandboxTarget(
            url=server.url,
            access_key=emulator.DEFAULT_ACCESS_KEY,
            secret_key=emulator.DEFAULT_SECRET_KEY,
            cloud_project_id=emulator.DEFAULT_CLOUD_PROJECT_ID,
            toloka_token=emulator.DEFAULT_TOLOKA_TOKEN,
        )


def load_manifests(common: Common, paths: tuple[Path, ...]) -> DesiredState:
    desired = workflows.load_manifests(paths)
    if common.verbose:
        for path in desired.skipped:
            click.echo(f"skipped {path}: no apiVersion, not a manifest", err=True)
    return desired
