"""Provider settings and their ``RECONCILER_<PROVIDER NAME>_<FIELD>`` overrides from the environment.

What a provider points at and how it is paced (endpoint, region, rate limit, batch size, the bounds on each
request and on the wait for a Toloka operation) without any client: planning, ``show`` and the check of the
environment before a plan is printed need this and nothing else, so this module imports neither httpx nor the
clients (a test holds it to that). Credentials are not here: ``factory`` reads them,
and only when it builds the clients to apply.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Mapping
from typing import Any, Protocol

from reconciler.errors import ConfigError
from reconciler.kinds import MAX_OPERATION_TIMEOUT, MAX_REQUEST_TIMEOUT, TOLOKA_MAX_BATCH_ITEMS, endpoint_problem


class ProviderSettings(Protocol):
    """What a provider document offers: ``reconciler.resources.ProviderConfig`` fits it as is.

    Structural, because the layers contract keeps ``reconciler.providers`` and ``reconciler.resources``
    independent siblings; importing ``ProviderConfig`` here would break it.
    """

    @property
    def name(self) -> str: ...

    @property
    def type(self) -> str: ...

    @property
    def spec(self) -> Mapping[str, Any]: ...


#: Settings the environment may override, per provider type.
OVERRIDABLE_FIELDS = {
    "perftest": ("endpoint", "region", "cloud_project_id", "rate_limit", "request_timeout"),
    "toloka": ("endpoint", "rate_limit", "batch_size", "request_timeout", "operation_timeout"),
}
#: Settings in seconds, and the manifest's own bound on each (``kinds.py``).
SECONDS_FIELDS = {"request_timeout": MAX_REQUEST_TIMEOUT, "operation_timeout": MAX_OPERATION_TIMEOUT}
#: The tool's own variables, which no provider's override may be taken for (a provider called ``require``
#: would otherwise claim ``RECONCILER_REQUIRE_POSTGRES``). Where each is read: ``cli/options.py``
#: (``RECONCILER_STATE``, ``RECONCILER_WORKSPACE``), ``failpoints.py``, and the tests (``.ci/run``).
TOOL_VARIABLES = frozenset(
    {"RECONCILER_STATE", "RECONCILER_WORKSPACE", "RECONCILER_FAILPOINT", "RECONCILER_REQUIRE_POSTGRES"}
)
#: The manifest's own bound on ``rate_limit`` (``kinds.py``), so an override cannot go past what a document may.
MAX_RATE_LIMIT = 10000.0
#: An override's value quoted in an error is cut to this: the variable's name is what the reader needs.
MAX_QUOTED_VALUE = 60
_CLOUD_PROJECT_ID = re.compile(r"^[0-9a-f]{32}$")
_ANY_FIELD_SUFFIX = tuple(sorted({f"_{field.upper()}" for fields in OVERRIDABLE_FIELDS.values() for field in fields}))


def override_variable(provider_name: str, field: str) -> str:
    """``RECONCILER_<NAME>_<FIELD>`` for a provider called ``name``."""
    name = re.sub(r"[-.]", "_", provider_name).upper()
    return f"RECONCILER_{name}_{field.upper()}"


def effective_settings(config: ProviderSettings, environ: Mapping[str, str]) -> dict[str, Any]:
    """The provider's spec with environment overrides applied and the default endpoint filled in.

    Needs no credentials, so planning and ``show`` can say where a provider points.
    """
    spec = dict(config.spec)
    for field in OVERRIDABLE_FIELDS.get(config.type, ()):
        variable = override_variable(config.name, field)
        if variable in environ:
            spec[field] = _parse_override(config.name, field, variable, environ[variable])
    if config.type == "perftest" and not spec.get("endpoint"):
        spec["endpoint"] = f"https://cpts.{spec['region']}.myhuaweicloud.com"
    return spec


def check_environment(providers: Mapping[str, ProviderSettings], environ: Mapping[str, str]) -> None:
    """Refuse, before anything is planned, a ``RECONCILER_*`` variable meant for one of ``providers`` that
    names no setting of it (a misspelling, with the closest setting suggested) or holds a value it cannot take.

    A variable counts when it starts with a provider's ``RECONCILER_<NAME>_`` (as ``override_variable`` spells
    it); the longest such prefix is the provider it is meant for when names nest (``cpts`` and ``cpts-prod``).
    A ``RECONCILER_`` variable that starts with no provider's prefix is left alone, on purpose: one CI
    environment often serves several workspaces or manifest sets, and the variables of providers that are not
    in this one are no mistake. For the same reason a variable that is a known setting of a provider whose name
    extends one of these is left alone: ``RECONCILER_CPTS_PROD_ENDPOINT`` may be another workspace's
    ``cpts-prod`` while this one has only ``cpts`` (a misspelt setting does not end that way). The tool's own
    variables (``TOOL_VARIABLES``) are never taken for overrides.

    Raises ``ConfigError`` on the first problem, in the variables' order: one line that names the variable.
    A value is quoted only when it is that of an overridable setting (never a credential), and cut short.
    """
    prefixes = sorted(
        ((override_variable(config.name, ""), config) for config in providers.values()),
        key=lambda pair: len(pair[0]),
        reverse=True,
    )
    for variable in sorted(environ):
        if not variable.startswith("RECONCILER_") or variable in TOOL_VARIABLES:
            continue
        meant_for = [(config, variable[len(prefix) :]) for prefix, config in prefixes if variable.startswith(prefix)]
        if not meant_for:
            continue
        matched = False
        for config, rest in meant_for:
            for field in OVERRIDABLE_FIELDS.get(config.type, ()):
                if field.upper() == rest:
                    _parse_override(config.name, field, variable, environ[variable])
                    matched = True
        if not matched:
            config, rest = meant_for[0]
            if not rest.endswith(_ANY_FIELD_SUFFIX):
                raise ConfigError(_unknown_override(variable, config, rest))


def _unknown_override(variable: str, config: ProviderSettings, rest: str) -> str:
    """The message for ``RECONCILER_<NAME>_<REST>`` where ``REST`` is no setting of that provider."""
    fields = OVERRIDABLE_FIELDS.get(config.type, ())
    message = f"the environment variable {variable} matches no setting of provider {config.name}"
    close = difflib.get_close_matches(rest, [f.upper() for f in fields], n=1, cutoff=0.6)
    if close:
        return f"{message}; did you mean {override_variable(config.name, close[0])}?"
    if re.search(r"TOKEN|KEY|SECRET|PASSWORD|CREDENTIAL|(^|_)[AS]K($|_)", rest):
        return (
            f"{message}; credentials are not overridden: set the variables its credentials name "
            f"(token_env, access_key_env, secret_key_env)"
        )
    if not fields:
        return f"{message}; a {config.type} provider has no setting the environment may override"
    return f"{message}; the settings it takes from the environment: {', '.join(f.upper() for f in fields)}"


def _parse_override(provider: str, field: str, variable: str, raw: str) -> Any:
    value = raw.strip()
    problem = None
    if field == "rate_limit":
        try:
            rate = float(value)
        except ValueError:
            rate = math.nan
        if 0 < rate <= MAX_RATE_LIMIT:  # False for NaN too
            return rate
        problem = f"must be a number of requests per second, above 0 and at most {MAX_RATE_LIMIT:g}"
    elif field in SECONDS_FIELDS:
        seconds = _number(value)
        if 0 < seconds <= SECONDS_FIELDS[field]:  # False for NaN too
            return seconds
        problem = f"must be a number of seconds, above 0 and at most {SECONDS_FIELDS[field]:g}"
    elif field == "batch_size":
        if value.isascii() and value.isdigit() and 1 <= int(value) <= TOLOKA_MAX_BATCH_ITEMS:
            return int(value)
        problem = f"must be a whole number from 1 to {TOLOKA_MAX_BATCH_ITEMS}"
    elif field == "endpoint" and (wrong := endpoint_problem(value)) is not None:
        problem = wrong
    elif field == "cloud_project_id" and not _CLOUD_PROJECT_ID.match(value):
        problem = "must be the 32-hex cloud project ID"
    elif field == "region" and not re.match(r"^[a-z0-9-]+$", value):
        problem = "must be a region name such as cn-north-4"
    if problem:
        raise ConfigError(f"provider {provider}: {variable}={_quote(value)} {problem}")
    return value


def _number(value: str) -> float:
    """``value`` as a number, NaN when it is none."""
    try:
        return float(value)
    except ValueError:
        return math.nan


def _quote(value: str) -> str:
    if len(value) > MAX_QUOTED_VALUE:
        value = value[: MAX_QUOTED_VALUE - 3] + "..."
    return repr(value)
