"""Resources and providers as the program holds them, their addresses, and the request specs built for them.

The manifest's pydantic models (``reconciler.kinds``) are the format a user writes; past validation the program
works on the plain frozen objects here, because 100,000 of them must be cheap to build, compare and keep. A
``Resource`` carries the exact spec that will be sent and that spec's content hash
(``reconciler.encoding.content_hash``): the planner compares hashes, so planning a million unchanged resources
never needs a deep comparison.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from reconciler.encoding import content_hash
from reconciler.kinds import Metadata, PerfTestTaskSpec, TaskSuiteSpec, perftest_task_name


def address_of(kind: str, *names: str) -> str:
    return "/".join((kind, *names))


def kind_of_address(address: str) -> str:
    return address.split("/", 1)[0]


@dataclass(frozen=True, slots=True)
class SourceRef:
    """Where a resource was declared, for error messages."""

    path: str
    line: int | None


@dataclass(frozen=True, slots=True)
class Resource:
    """A desired remote object. ``spec`` is exactly what will be sent (for suites: plus ``options``).

    ``row_keys``: for a suite of several data rows (``tasks_per_suite``), the key of each task's row, so that
    a suite that grew when rows were appended can keep the rows it was created with and put the new ones in
    a suite of their own, named by its first row (``planner``)."""

    address: str
    kind: str
    provider: str
    spec: dict[str, Any]
    spec_hash: str
    source: SourceRef
    row_keys: tuple[str, ...] = ()
    prevent_destroy: bool = False
    ignore_changes: frozenset[str] = frozenset()
    replace_on_change: bool = False


@dataclass(frozen=True, slots=True)
class ProviderConfig:
    """A provider document: its name, its type (``perftest`` or ``toloka``) and its validated spec.

    ``source`` is None for a provider rebuilt from a plan file, which records no manifest line.
    """

    name: str
    type: str
    spec: dict[str, Any]
    source: SourceRef | None = None


@dataclass(frozen=True, slots=True)
class StateBackendConfig:
    """A ``StateBackend`` document: a SQLite ``path`` (absolute, resolved against its manifest's directory; a
    trailing slash for a folder of workspaces) or a PostgreSQL ``url``, with the variable of its password."""

    path: str | None
    url: str | None
    password_env: str | None
    source: SourceRef

    @property
    def location(self) -> str:
        return self.url if self.url is not None else str(self.path)


def make_resource(
    *,
    address: str,
    kind: str,
    provider: str,
    spec: dict[str, Any],
    source: SourceRef,
    prevent_destroy: bool = False,
    ignore_changes: frozenset[str] = frozenset(),
    replace_on_change: bool = False,
) -> Resource:
    return Resource(
        address=address,
        kind=kind,
        provider=provider,
        spec=spec,
        spec_hash=content_hash(spec),
        source=source,
        prevent_destroy=prevent_destroy,
        ignore_changes=ignore_changes,
        replace_on_change=replace_on_change,
    )


def perftest_task_spec(metadata: Metadata, spec: PerfTestTaskSpec) -> dict[str, Any]:
    """The request body for a task, with the documented defaults filled in (the name: ``perftest_task_name``)."""
    body = spec.model_dump(exclude_none=True)
    body["name"] = perftest_task_name(metadata, spec)
    body["operate_mode"] = spec.operate_mode
    return body


def task_suite_spec(spec: TaskSuiteSpec) -> dict[str, Any]:
    return spec.model_dump(exclude_none=True)
