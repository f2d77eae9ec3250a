"""Clients of the remote APIs, built from provider settings plus the environment.

A provider document names environment variables, never secrets; this module is where those names become
values, and it is only called to apply (planning needs no credentials). Any setting can be overridden as
``RECONCILER_<PROVIDER NAME>_<FIELD>`` (the name upper-cased, ``-`` and ``.`` as ``_``), so one manifest
serves several environments. With a ``SandboxTarget`` every provider points at the local emulator instead,
with its fixed credentials, so the quickstart needs no account and no environment.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol, Unpack

from reconciler.errors import ConfigError
from reconciler.providers.http import HttpOptions
from reconciler.providers.perftest import PerfTestClient
from reconciler.providers.toloka import MAX_BATCH_ITEMS, TolokaClient

ProviderClient = PerfTestClient | TolokaClient


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
    "perftest": ("endpoint", "region", "cloud_project_id", "rate_limit"),
    "toloka": ("endpoint", "rate_limit", "batch_size"),
}
_CLOUD_PROJECT_ID = re.compile(r"^[0-9a-f]{32}$")


@dataclass(frozen=True)
class SandboxTarget:
    """Where the local emulator listens and the credentials it accepts (its defaults unless seeded)."""

    url: str
    access_key: str = "SANDBOXAK"
    secret_key: str = "SANDBOXSK"
    cloud_project_id: str = "0123456789abcdef0123456789abcdef"
    toloka_token: str = "sandbox-token"


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


def _parse_override(provider: str, field: str, variable: str, raw: str) -> Any:
    value = raw.strip()
    problem = None
    if field == "rate_limit":
        try:
            rate = float(value)
        except ValueError:
            rate = 0.0
        if rate > 0:
            return rate
        problem = "must be a positive number of requests per second"
    elif field == "batch_size":
        if value.isdigit() and 1 <= int(value) <= MAX_BATCH_ITEMS:
            return int(value)
        problem = f"must be a whole number from 1 to {MAX_BATCH_ITEMS}"
    elif field == "endpoint" and not re.match(r"^https?://", value):
        problem = "must start with http:// or https://"
    elif field == "cloud_project_id" and not _CLOUD_PROJECT_ID.match(value):
        problem = "must be the 32-hex cloud project ID"
    elif field == "region" and not re.match(r"^[a-z0-9-]+$", value):
        problem = "must be a region name such as cn-north-4"
    if problem:
        raise ConfigError(f"provider {provider}: {variable}={value!r} {problem}")
    return value


def build_clients(
    configs: Mapping[str, ProviderSettings],
    *,
    environ: Mapping[str, str],
    sandbox: SandboxTarget | None = None,
    **http_options: Unpack[HttpOptions],
) -> dict[str, ProviderClient]:
    """One client per provider document, keyed by provider name.

    Cheap: no connection is opened until the first request. Fails with ``ConfigError`` (naming the variable,
    never its value) when a credential variable is unset, which is why only apply calls it.
    """
    clients: dict[str, ProviderClient] = {}
    try:
        for name, config in configs.items():
            clients[name] = _build_one(name, config, environ, sandbox, http_options)
    except BaseException:
        for client in clients.values():
            client.close()
        raise
    return clients


def _build_one(
    name: str,
    config: ProviderSettings,
    environ: Mapping[str, str],
    sandbox: SandboxTarget | None,
    http_options: HttpOptions,
) -> ProviderClient:
    settings = effective_settings(config, environ)
    if config.type == "perftest":
        return _perftest_client(name, settings, environ, sandbox, http_options)
    if config.type == "toloka":
        return _toloka_client(name, settings, environ, sandbox, http_options)
    raise ConfigError(f"provider {name}: unknown provider type {config.type!r} (expected perftest or toloka)")


def _perftest_client(
    name: str,
    settings: Mapping[str, Any],
    environ: Mapping[str, str],
    sandbox: SandboxTarget | None,
    http_options: HttpOptions,
) -> PerfTestClient:
    rate = float(settings.get("rate_limit") or 50.0)
    credentials: dict[str, Any] = dict(settings.get("credentials") or {})
    if sandbox is not None:
        return PerfTestClient(
            name=name,
            endpoint=sandbox.url,
            cloud_project_id=sandbox.cloud_project_id,
            access_key=sandbox.access_key,
            secret_key=sandbox.secret_key,
            rate_limit=rate,
            credentials_hint="the sandbox credentials",
            **http_options,
        )
    if credentials.get("token_env"):
        token_env = credentials["token_env"]
        return PerfTestClient(
            name=name,
            endpoint=settings["endpoint"],
            cloud_project_id=settings["cloud_project_id"],
            token=_secret(name, token_env, "the IAM token", environ),
            rate_limit=rate,
            credentials_hint=f"the IAM token in ${token_env} (it may have expired)",
            **http_options,
        )
    ak_env, sk_env = credentials.get("access_key_env"), credentials.get("secret_key_env")
    if not ak_env or not sk_env:
        raise ConfigError(f"provider {name}: credentials need access_key_env and secret_key_env, or token_env")
    return PerfTestClient(
        name=name,
        endpoint=settings["endpoint"],
        cloud_project_id=settings["cloud_project_id"],
        access_key=_secret(name, ak_env, "the access key", environ),
        secret_key=_secret(name, sk_env, "the secret key", environ),
        rate_limit=rate,
        credentials_hint=f"the access key in ${ak_env} and the secret key in ${sk_env}",
        **http_options,
    )


def _toloka_client(
    name: str,
    settings: Mapping[str, Any],
    environ: Mapping[str, str],
    sandbox: SandboxTarget | None,
    http_options: HttpOptions,
) -> TolokaClient:
    rate = float(settings.get("rate_limit") or 100.0)
    batch_size = int(settings.get("batch_size") or MAX_BATCH_ITEMS)
    credentials: dict[str, Any] = dict(settings.get("credentials") or {})
    if sandbox is not None:
        return TolokaClient(
            name=name,
            endpoint=sandbox.url,
            token=sandbox.toloka_token,
            rate_limit=rate,
            batch_size=batch_size,
            credentials_hint="the sandbox Toloka key",
            **http_options,
        )
    token_env = credentials.get("token_env")
    if not token_env:
        raise ConfigError(f"provider {name}: credentials.token_env is required")
    scheme = str(credentials.get("scheme") or "ApiKey")
    kind = "API key" if scheme == "ApiKey" else "OAuth token"
    return TolokaClient(
        name=name,
        endpoint=settings.get("endpoint") or "https://toloka.dev",
        token=_secret(name, token_env, f"the Toloka {kind}", environ),
        scheme=scheme,
        rate_limit=rate,
        batch_size=batch_size,
        credentials_hint=f"the Toloka {kind} in ${token_env}",
        **http_options,
    )


def _secret(provider: str, variable: str, what: str, environ: Mapping[str, str]) -> str:
    """A credential's value; the error names the variable and what it should hold, never a value."""
    value = environ.get(variable, "").strip()
    if not value:
        state = "is empty" if variable in environ else "is not set"
        raise ConfigError(
            f"provider {provider}: the environment variable {variable} {state}; it must hold {what} "
            f"(or run with --sandbox to use the local emulator)"
        )
    return value
