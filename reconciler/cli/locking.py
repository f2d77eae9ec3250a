"""Taking the state lock from the command line: ``--lock-timeout``, and saying that we wait.

Terraform's ``-lock-timeout`` is the model: by default a locked state fails the command at once (a CI job
should not hang on a forgotten lock); with a duration, the command waits that long for the lock, says once
that it waits and for whom, then fails naming the holder.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import click

from reconciler.errors import StateLockedError
from reconciler.state import StateStore
from reconciler.state.lock import Lease, default_holder, held_lock

F = TypeVar("F", bound=Callable[..., Any])

_UNITS = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0}
_LIMIT = 86400.0


class Duration(click.ParamType):
    """``90``, ``90s``, ``5m``, ``1h``, ``1m30s``: seconds, as Terraform and Go spell durations."""

    name = "duration"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        if isinstance(value, int | float):
            return float(value)
        text = str(value).strip().lower()
        parts = re.findall(r"(\d+(?:\.\d+)?)([hms]?)", text)
        if not text or "".join(n + u for n, u in parts) != text or (len(parts) > 1 and not all(u for _, u in parts)):
            self.fail(f"{value!r} is not a duration: give seconds or e.g. 30s, 5m, 1h, 1m30s", param, ctx)
        seconds = sum(float(n) * _UNITS[u] for n, u in parts)
        if seconds > _LIMIT:
            self.fail(f"{value!r} is longer than a day", param, ctx)
        return seconds


def lock_timeout_option(fn: F) -> F:
    return click.option(
        "--lock-timeout",
        "lock_timeout",
        type=Duration(),
        default="0s",
        show_default=True,
        help="How long to wait for the state lock when another run holds it (e.g. 30s, 5m); 0 fails at once.",
    )(fn)


@contextmanager
def locked(store: StateStore, *, operation: str, lock_timeout: float) -> Iterator[Lease]:
    """The state lock for this command, waiting up to ``lock_timeout`` seconds for it."""

    def tell(held: StateLockedError) -> None:
        click.echo(
            f"The state is locked by {held.holder} ({held.operation}, since {held.since}); waiting up to "
            f"{lock_timeout:g}s for it...",
            err=True,
        )

    with held_lock(store, holder=default_holder(), operation=operation, wait=lock_timeout, on_wait=tell) as lease:
        yield lease
