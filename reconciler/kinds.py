"""The kinds a manifest can hold: the manifest format's single source of truth.

The JSON Schemas under ``schemas/`` are generated from these pydantic models (``reconciler schema KIND``), so an
editor's schema, ``reconciler validate`` and the program agree on every field. The constraints are the ones the
remote APIs document (a PerfTest task name is 1-42 characters, a Toloka overlap 1..30000, ...), so a manifest
that validates is one the API will accept.
"""

from __future__ import annotations

import functools
import ipaddress
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator

API_VERSION = "reconciler/v1"

PERFTEST_TASK = "PerfTestTask"
TASK_SUITE = "TaskSuite"
TASK_SUITE_SET = "TaskSuiteSet"
PERFTEST_PROVIDER = "PerfTestProvider"
TOLOKA_PROVIDER = "TolokaProvider"
STATE_BACKEND = "StateBackend"

PROVIDER_KINDS = (PERFTEST_PROVIDER, TOLOKA_PROVIDER)
RESOURCE_KINDS = (PERFTEST_TASK, TASK_SUITE, TASK_SUITE_SET)
#: Documents that configure the run rather than declare remote objects.
SETTINGS_KINDS = (*PROVIDER_KINDS, STATE_BACKEND)
KINDS = RESOURCE_KINDS + SETTINGS_KINDS

#: The URL schemes of a PostgreSQL state.
POSTGRES_SCHEMES = ("postgresql://", "postgres://")

#: Toloka's limit on the suites of one create request: the bound of ``batch_size``, and the client's batch limit.
TOLOKA_MAX_BATCH_ITEMS = 5000

#: Seconds one request may take in all (connecting, sending, the whole answer): the default of a provider's
#: ``request_timeout``, and its bound.
DEFAULT_REQUEST_TIMEOUT = 120.0
MAX_REQUEST_TIMEOUT = 3600.0
#: Seconds apply waits for a Toloka operation to finish: the default of ``operation_timeout``, and its bound.
DEFAULT_OPERATION_TIMEOUT = 600.0
MAX_OPERATION_TIMEOUT = 86400.0

#: Which provider type serves each resource kind.
#: The fields of each kind's spec that its API changes in place: PerfTest's ``PUT`` takes the whole task body
#: but cannot move it to another test project; Toloka's ``PATCH`` of a suite takes only these three (and the
#: ``options`` are query parameters of a request, not fields of the suite). A change of any other field needs
#: a new object (a replacement).
IN_PLACE_FIELDS: dict[str, frozenset[str]] = {
    PERFTEST_TASK: frozenset({"name", "parallel", "enable_full_link", "operate_mode", "case_id_list"}),
    TASK_SUITE: frozenset({"overlap", "infinite_overlap", "issuing_order_override", "options"}),
    TASK_SUITE_SET: frozenset({"overlap", "infinite_overlap", "issuing_order_override", "options"}),
}

PROVIDER_TYPE_OF_KIND = {PERFTEST_TASK: "perftest", TASK_SUITE: "toloka", TASK_SUITE_SET: "toloka"}
PROVIDER_KIND_OF_TYPE = {"perftest": PERFTEST_PROVIDER, "toloka": TOLOKA_PROVIDER}

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"


class _Strict(BaseModel):
    """Unknown fields are errors: a typo in a manifest must not silently become a default."""

    model_config = ConfigDict(extra="forbid")


class Lifecycle(_Strict):
    """What apply may do to a resource beyond creating and updating it, as Terraform's lifecycle block says."""

    prevent_destroy: bool = Field(
        default=False,
        description="Refuse any plan that would delete this resource, or retire it (a suite of a set: each suite).",
    )
    replace_on_change: bool = Field(
        default=False,
        description="Replace the resource (create the new, then delete or retire the old) when the manifest changes "
        "a field its API cannot change in place, without --replace.",
    )
    ignore_changes: list[Annotated[str, Field(min_length=1)]] = Field(
        default_factory=list,
        description="Spec fields (top-level names, e.g. overlap) whose changes in the manifest are not acted on: "
        "the value the object was created or last updated with is kept.",
    )


class Metadata(_Strict):
    name: str = Field(pattern=NAME_PATTERN, description="Unique per kind; the address is KIND/NAME.")
    lifecycle: Lifecycle | None = Field(default=None, description="Opt-ins and guards for deleting the resource.")
    provider: str | None = Field(
        default=None,
        pattern=NAME_PATTERN,
        description="Name of the provider document to use; default: the only provider of the matching type.",
    )


# --- CodeArts PerfTest -------------------------------------------------------------------------------------

#: CodeArts PerfTest's longest task name (the API reference: 1-42 characters).
PERFTEST_TASK_NAME_MAX = 42

#: What CodeArts PerfTest accepts as a task name: the rule of ``spec.name``, and of ``metadata.name`` when that is
#: the name sent (``perftest_task_name_error``).
PerfTestTaskName = Annotated[str, Field(min_length=1, max_length=PERFTEST_TASK_NAME_MAX)]


class PerfTestTaskSpec(_Strict):
    """The body of ``POST /v3/{project_id}/tasks``."""

    name: PerfTestTaskName | None = Field(default=None, description="Task name; defaults to metadata.name.")
    parallel: bool = Field(description="Whether the task's cases run concurrently.")
    enable_full_link: bool | None = Field(default=None, description="Whether full-link pressure test is on.")
    project_id: int = Field(ge=1, description="Integer ID of the CPTS test project (not the cloud project).")
    operate_mode: Literal[0, 1, 2] = Field(
        default=2, description="0 by duration, 1 by count, 2 both; documented as legacy with fixed value 2."
    )
    case_id_list: list[Annotated[int, Field(ge=1)]] = Field(description="IDs of the cases the task runs.")


def perftest_task_name(metadata: Metadata, spec: PerfTestTaskSpec) -> str:
    """The name a task is created with: ``spec.name``, or else ``metadata.name``."""
    return spec.name if spec.name is not None else metadata.name


def perftest_task_name_error(name: str) -> str | None:
    """Why CodeArts PerfTest would refuse ``name`` as a task name, or None: the very rules of ``spec.name``,
    for a name that reaches the API another way (``metadata.name``, when ``spec.name`` is not given)."""
    try:
        _task_name_adapter().validate_python(name)
    except ValidationError as err:
        error = err.errors()[0]
        if error["type"] in ("string_too_long", "string_too_short"):
            limit = PERFTEST_TASK_NAME_MAX
            return f"a PerfTest task name is 1-{limit} characters long and {name!r} has {len(name)}"
        return f"CodeArts PerfTest would refuse {name!r} as a task name: {error['msg']}"
    return None


@functools.cache
def _task_name_adapter() -> TypeAdapter[str]:
    # built on first use: only a task without spec.name needs it
    return TypeAdapter(PerfTestTaskName)


# --- Toloka --------------------------------------------------------------------------------------------------


class KnownSolution(_Strict):
    output_values: dict[str, Any]
    correctness_weight: float = Field(default=1.0, ge=0, le=1)


class Task(_Strict):
    input_values: dict[str, Any]
    known_solutions: list[KnownSolution] | None = None
    message_on_unknown_solution: str | None = None


class SuiteOptions(_Strict):
    """Query parameters of the create request; a change here is a change of the resource."""

    allow_defaults: bool = Field(default=False, description="Take overlap from the pool's default_overlap.")
    open_pool: bool = Field(default=False, description="Open the pool after the suites are created.")
    skip_invalid_items: bool = Field(
        default=False, description="Create the valid suites of a batch even if others are invalid."
    )


class SuiteFields(_Strict):
    """The fields of a Toloka task suite other than its tasks."""

    pool_id: str = Field(pattern=r"^[0-9]{1,20}$", description="The pool the suite belongs to.")
    overlap: int | None = Field(default=None, ge=1, le=30000)
    infinite_overlap: bool | None = None
    reserved_for: list[str] | None = None
    unavailable_for: list[str] | None = None
    issuing_order_override: float | None = Field(default=None, ge=-99999.99999, le=99999.99999)
    mixed: bool | None = None
    latitude: float | None = Field(default=None, ge=-90, le=90)
    longitude: float | None = Field(default=None, ge=-180, le=180)
    traits_all_of: list[str] | None = None
    traits_any_of: list[str] | None = None
    traits_none_of_any: list[str] | None = None


def _require_overlap(fields: SuiteFields, options: SuiteOptions) -> None:
    if fields.overlap is None and not fields.infinite_overlap and not options.allow_defaults:
        raise ValueError("overlap is required unless infinite_overlap or options.allow_defaults is true")


class TaskSuiteSpec(SuiteFields):
    """One Toloka task suite, as sent in ``POST /api/v1/task-suites``, plus the request's options."""

    tasks: list[Task] = Field(min_length=1)
    options: SuiteOptions = Field(default_factory=SuiteOptions)

    @model_validator(mode="after")
    def _overlap(self) -> TaskSuiteSpec:
        _require_overlap(self, self.options)
        return self


class TaskSuiteSetSpec(_Strict):
    """Many suites generated from a data file, one resource per suite."""

    source: str = Field(description="JSONL, CSV or TSV file, relative to the manifest; never outside its root.")
    format: Literal["jsonl", "csv", "tsv"] | None = Field(
        default=None, description="Data format; default: from the file's extension."
    )
    key: str = Field(min_length=1, description="The column that names each task; its values must be unique.")
    tasks_per_suite: int | None = Field(
        default=None,
        ge=1,
        le=1000,
        description="Consecutive rows per suite (default 1); a suite's key is the key of its first row.",
    )
    group_by: str | None = Field(
        default=None, min_length=1, description="Column whose value groups rows into one suite and names it."
    )
    input_fields: list[str] | None = Field(
        default=None, description="Columns copied into each task's input_values; default: every column."
    )
    template: SuiteFields = Field(description="Suite fields shared by every generated suite.")
    options: SuiteOptions = Field(default_factory=SuiteOptions)

    @model_validator(mode="after")
    def _grouping(self) -> TaskSuiteSetSpec:
        if self.tasks_per_suite is not None and self.group_by is not None:
            raise ValueError("give tasks_per_suite or group_by, not both")
        _require_overlap(self.template, self.options)
        return self


# --- Providers -----------------------------------------------------------------------------------------------


class PerfTestCredentials(_Strict):
    """Names of environment variables holding the secrets; never the secrets themselves."""

    access_key_env: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    secret_key_env: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    token_env: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")

    @model_validator(mode="after")
    def _one_scheme(self) -> PerfTestCredentials:
        aksk = self.access_key_env is not None or self.secret_key_env is not None
        if aksk and self.token_env is not None:
            raise ValueError("give access_key_env and secret_key_env, or token_env, not both")
        if aksk and (self.access_key_env is None or self.secret_key_env is None):
            raise ValueError("access_key_env and secret_key_env go together")
        if not aksk and self.token_env is None:
            raise ValueError("give access_key_env and secret_key_env, or token_env")
        return self


def endpoint_problem(url: str) -> str | None:
    """Why reconciler will not send credentials to ``url``, or None: ``https://``, or plain ``http://`` to this
    machine only (the sandbox, a local proxy), since over plain HTTP the API key or signature travels in clear."""
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return None
    if parts.scheme == "http" and parts.hostname and _is_loopback(parts.hostname):
        return None
    if parts.scheme == "http":
        return (
            "plain http:// would send the credentials in clear; use https:// (http:// is accepted only to this "
            "machine: localhost, 127.0.0.1, ::1)"
        )
    return "must be an https:// URL (or http:// to this machine)"


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _checked_endpoint(url: str) -> str:
    problem = endpoint_problem(url)
    if problem is not None:
        raise ValueError(problem)
    return url


Endpoint = Annotated[str, Field(pattern=r"^https?://"), AfterValidator(_checked_endpoint)]


#: A provider's ``request_timeout``, the same for both APIs.
RequestTimeout = Annotated[
    float | None,
    Field(
        gt=0,
        le=MAX_REQUEST_TIMEOUT,
        description=f"Seconds one request may take in all: connect, send, the whole answer "
        f"(default {DEFAULT_REQUEST_TIMEOUT:g}).",
    ),
]


class PerfTestProviderSpec(_Strict):
    endpoint: Endpoint | None = Field(
        default=None,
        pattern=r"^https?://",
        description="Base URL; default https://cpts.{region}.myhuaweicloud.com.",
    )
    cloud_project_id: str = Field(pattern=r"^[0-9a-f]{32}$", description="The 32-hex cloud project ID.")
    region: str = Field(pattern=r"^[a-z0-9-]+$", description="e.g. cn-north-4")
    credentials: PerfTestCredentials
    rate_limit: float = Field(default=50.0, gt=0, le=10000, description="Requests per second, at most.")
    request_timeout: RequestTimeout = None


class TolokaCredentials(_Strict):
    token_env: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", description="Variable holding the API key.")
    scheme: Literal["ApiKey", "OAuth"] = "ApiKey"


class TolokaProviderSpec(_Strict):
    endpoint: Endpoint = Field(
        default="https://toloka.dev", pattern=r"^https?://", description="Base URL, without /api/v1."
    )
    credentials: TolokaCredentials
    rate_limit: float = Field(default=100.0, gt=0, le=10000, description="Requests per second, at most.")
    batch_size: int = Field(
        default=TOLOKA_MAX_BATCH_ITEMS,
        ge=1,
        le=TOLOKA_MAX_BATCH_ITEMS,
        description="Suites per create request (Toloka takes at most 5,000).",
    )
    request_timeout: RequestTimeout = None
    operation_timeout: float | None = Field(
        default=None,
        gt=0,
        le=MAX_OPERATION_TIMEOUT,
        description=f"Seconds apply waits for a batch's operation to finish before leaving it for the next run "
        f"(default {DEFAULT_OPERATION_TIMEOUT:g}).",
    )


# --- The state -----------------------------------------------------------------------------------------------


class StateBackendSpec(_Strict):
    """Where the state of these manifests lives, as Terraform's backend block says it: beside the manifests, so
    the same manifests reach the same state from any directory and on any runner."""

    path: str | None = Field(
        default=None,
        min_length=1,
        max_length=4096,
        description="A SQLite state: a folder (one <workspace>.db per workspace) or a file, relative to this "
        "manifest's directory.",
    )
    url: str | None = Field(
        default=None,
        max_length=4096,
        description="A PostgreSQL state: postgresql://USER@HOST:PORT/DATABASE, without a password (libpq's "
        "PGPASSWORD or PGPASSFILE, or password_env).",
    )
    password_env: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        description="Variable holding the database password, if libpq's own do not.",
    )

    @model_validator(mode="after")
    def _one_place(self) -> StateBackendSpec:
        if (self.path is None) == (self.url is None):
            raise ValueError("give path (a SQLite state) or url (a PostgreSQL state), one of them")
        if self.url is not None:
            if not self.url.startswith(POSTGRES_SCHEMES):
                raise ValueError("url must start with postgresql://")
            userinfo = urlsplit(self.url).netloc.rpartition("@")[0]
            if ":" in userinfo:
                raise ValueError("url must not hold a password: use password_env, PGPASSWORD or PGPASSFILE")
        elif self.password_env is not None:
            raise ValueError("password_env goes with url")
        if self.path is not None and "\0" in self.path:
            raise ValueError("path must not hold NUL")
        return self


# --- Documents -----------------------------------------------------------------------------------------------


class _Document(_Strict):
    apiVersion: Literal["reconciler/v1"]  # noqa: N815 - the manifest's own key
    metadata: Metadata


class PerfTestTaskDocument(_Document):
    kind: Literal["PerfTestTask"]
    spec: PerfTestTaskSpec


class TaskSuiteDocument(_Document):
    kind: Literal["TaskSuite"]
    spec: TaskSuiteSpec


class TaskSuiteSetDocument(_Document):
    kind: Literal["TaskSuiteSet"]
    spec: TaskSuiteSetSpec


class PerfTestProviderDocument(_Document):
    kind: Literal["PerfTestProvider"]
    spec: PerfTestProviderSpec


class TolokaProviderDocument(_Document):
    kind: Literal["TolokaProvider"]
    spec: TolokaProviderSpec


class StateBackendDocument(_Document):
    kind: Literal["StateBackend"]
    spec: StateBackendSpec


DOCUMENT_MODELS: dict[str, type[_Document]] = {
    PERFTEST_TASK: PerfTestTaskDocument,
    TASK_SUITE: TaskSuiteDocument,
    TASK_SUITE_SET: TaskSuiteSetDocument,
    PERFTEST_PROVIDER: PerfTestProviderDocument,
    TOLOKA_PROVIDER: TolokaProviderDocument,
    STATE_BACKEND: StateBackendDocument,
}


def json_schema(kind: str) -> dict[str, Any]:
    """The JSON Schema of one kind's documents, as committed under ``schemas/``."""
    schema = _drop_nullable(DOCUMENT_MODELS[kind].model_json_schema())
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = f"https://reconciler.dev/schemas/{kind}.json"
    return schema


def _drop_nullable(node: Any) -> Any:
    """Turn pydantic's ``anyOf: [X, null]`` for optional fields into plain ``X``.

    A manifest never needs an explicit null, and jsonschema's message for a failed ``anyOf`` ("is not valid
    under any of the given schemas") hides the real problem ("is not of type 'integer'").
    """
    if isinstance(node, list):
        return [_drop_nullable(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: _drop_nullable(value) for key, value in node.items()}
    branches = out.get("anyOf")
    if isinstance(branches, list):
        kept = [b for b in branches if b != {"type": "null"}]
        if len(kept) == 1 and len(kept) < len(branches):
            del out["anyOf"]
            out = {**kept[0], **out}
            if out.get("default", 0) is None:
                del out["default"]
    return out


def spec_fields(kind: str) -> frozenset[str]:
    """The top-level fields of what a resource of ``kind`` sends (a set's: each suite's), which
    ``lifecycle.ignore_changes`` may name."""
    if kind == PERFTEST_TASK:
        return frozenset(PerfTestTaskSpec.model_fields)
    return frozenset(TaskSuiteSpec.model_fields)
