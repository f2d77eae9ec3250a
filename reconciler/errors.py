"""Every error a user can meet, as one tree.

Errors are raised where their cause is known, carry a message written for the person at the terminal, and are
rendered exactly once, by ``reconciler.cli`` (one line each, exit status 1). Anything that is not a
``ReconcilerError`` is a bug: the CLI writes its traceback to a debug log and exits 1 (2 is what
``plan --detailed-exitcode`` means by "changes").

::

    ReconcilerError
     +-- ManifestError              one or more problems in manifest or data files (all of them, at once)
     +-- PlanError
     |    +-- StalePlanError        the state moved on since the plan file was written
     |    +-- PlanFileError         not a plan file, or one from a newer reconciler
     +-- ApplyRefusedError          the plan holds something apply will not do (a change without --replace)
     +-- StateError
     |    +-- StateLockedError      another run holds the lock
     |    +-- StateVersionError     the state was written by a newer reconciler
 |    +-- StateAbsentError      no state exists there yet (a command that only reads never creates one)
     |    +-- UnknownAddressError   no such resource in the state
     +-- ConfigError                a provider or credential setting is missing or wrong
     +-- ProviderError              a remote API answered badly (carries provider, address, operation id)
          +-- TransientProviderError   worth retrying later (timeouts, 429, 5xx after our own retries)
          +-- PermanentProviderError   the API said no (4xx); retrying the same request cannot help
          |    +-- EndpointError          nothing was sent: the endpoint refused the first connection, or its TLS
          +-- OutcomeUnknownError      the request may or may not have taken effect; resolve before resending
          +-- AmbiguousAdoptionError   recovery found more than one remote object that could be ours
"""

from __future__ import annotations

from dataclasses import dataclass


class ReconcilerError(Exception):
    """Base of every error meant for the user; ``str(err)`` is the line the CLI prints."""

    exit_code = 1


@dataclass(frozen=True)
class Problem:
    """One problem found in a manifest or data file."""

    path: str
    line: int | None
    address: str | None
    field: str | None
    message: str

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line is not None else self.path
        parts = [where]
        if self.address:
            parts.append(self.address)
        if self.field:
            parts.append(self.field)
        parts.append(self.message)
        return ": ".join(parts)


class ManifestError(ReconcilerError):
    """Validation failed; holds every problem so the user can fix them all in one pass."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class PlanError(ReconcilerError):
    pass


class StalePlanError(PlanError):
    pass


class PlanFileError(PlanError):
    pass


class ApplyRefusedError(ReconcilerError):
    pass


class StateError(ReconcilerError):
    pass


class StateLockedError(StateError):
    def __init__(self, *, lock_id: str, holder: str, operation: str, since: str, waited: float | None = None) -> None:
        self.lock_id = lock_id
        self.holder = holder
        self.operation = operation
        self.since = since
        if waited is None:
            what = "wait for it to finish (or let this command wait: --lock-timeout 5m)"
        else:
            what = f"waited {waited:g}s for it; wait longer (--lock-timeout)"
        super().__init__(
            f"the state is locked by {holder} ({operation}, since {since}, lock id {lock_id}); {what}, or if that "
            f"run is dead and its lock has not expired, run `reconciler state unlock {lock_id}`"
        )


class StateVersionError(StateError):
    pass


class StateAbsentError(StateError):
    pass


class UnknownAddressError(StateError):
    pass


class LeaseLostError(StateError):
    """This run may no longer hold the state lock, so it sends and records nothing more.

    Raised before a send when the lease was not renewed in time (the process was suspended, or the state could
    not be reached), and by the store when a write carries the fencing generation of a lock since taken over.
    What the run left open is resolved by the next apply, whoever runs it.
    """


class ConfigError(ReconcilerError):
    pass


class ProviderError(ReconcilerError):
    """A remote API failed us. ``status`` and ``code`` are the API's own, when it gave them."""

    def __init__(
        self,
        message: str,
        *,
        provider: str = "",
        status: int | None = None,
        code: str | None = None,
        address: str | None = None,
        operation_id: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.provider = provider
        self.status = status
        self.code = code
        self.address = address
        self.operation_id = operation_id
        self.retry_after = retry_after
        self.message = message
        super().__init__(message)

    def __str__(self) -> str:
        prefix = f"{self.provider}: " if self.provider else ""
        where = f"{self.address}: " if self.address else ""
        detail = self.message
        if self.status is not None or self.code:
            tag = " ".join(str(x) for x in (self.status, self.code) if x)
            detail = f"{detail} ({tag})"
        return f"{prefix}{where}{detail}"


class TransientProviderError(ProviderError):
    pass


class PermanentProviderError(ProviderError):
    pass


class EndpointError(PermanentProviderError):
    """The endpoint is wrong, not busy: its host refused the very first connection, or its TLS could not be
    trusted. Nothing was sent, and every other call to it would fail the same way."""


class OutcomeUnknownError(ProviderError):
    pass


class AmbiguousAdoptionError(ProviderError):
    pass


class RefreshError(ReconcilerError):
    """What a refresh read cannot be planned or recorded on: objects it could not read, listings it could not
    read, remote objects that match a resource more than one way."""
