"""The command line: parse, call the library (``reconciler.workflows``), render. No business logic lives here.

``options`` holds what every command shares (and ``guarded``, the one place errors are rendered); ``commands``
the commands that validate and plan; ``apply`` the one that creates; ``drift`` the one that reads the remote
back for cron jobs; ``state`` the ``state`` group.
"""

from __future__ import annotations

import sys

import click

from reconciler.cli import commands
from reconciler.cli.apply import apply, destroy
from reconciler.cli.drift import drift
from reconciler.cli.options import exit_closed_pipe, group_options
from reconciler.cli.state import state


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
@click.version_option(package_name="perftest-toloka-reconciler")
@group_options
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
      reconciler drift examples/                     what changed behind the tool's back (cron)

    The common options (--state, --workspace, --no-color, -v) go before or after the command; the command's
    own wins when both are given.
    """


for command in (commands.validate, commands.plan, commands.show, apply, destroy, drift, commands.schema, state):
    cli.add_command(command)


def main() -> None:
    try:
        status = _run()
        sys.stdout.flush()  # output that fit in the buffer meets a closed pipe here, not in a command
    except BrokenPipeError:
        exit_closed_pipe()
    sys.exit(status)


def _run() -> int | str | None:
    """The command's exit status (usage errors are 1, like every other error: 2 means "changes")."""
    try:
        status = cli.main(standalone_mode=False)  # a code when the command called ctx.exit, else None
    except click.exceptions.Exit as done:
        return done.exit_code
    except click.Abort:
        click.echo("Aborted.", err=True)
        return 1
    except click.ClickException as err:
        err.show()
        return 1
    except SystemExit as done:
        return done.code
    return status if isinstance(status, int) else 0
