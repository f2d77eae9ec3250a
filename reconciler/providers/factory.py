"""Clients of the remote APIs, built from provider settings plus the environment.

A provider document names environment variables, never secrets; this module is where those names become
values, and it is only called to apply (planning needs no credentials). Settings come through
``settings.effective_settings``, with their ``RECONCILER_<PROVIDER NAME>_<FIELD>`` overrides, so one manifest
serves several environments. With a ``SandboxTarget`` every provider points at the local emulator instead,
with its fixed credentials, so the quickstart needs no account and no environment.

Every credential is handed to ``reconciler.redaction`` as it is read, before any request carries it, so that a
server echoing it back (or anything else) cannot bring it into output, logs or the state.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Unpack

from reconciler import redaction
from reconciler.errors import ConfigError
from reconciler.providers.http import HttpOptions
from reconciler.providers.perftest import PerfTestClient
from reconciler.providers.settings import ProviderSettings, effective_settings
from reconciler.providers.toloka import MAX_BATCH_ITEMS, TolokaClient

log = logging.getLogger(__name__)

ProviderClient = PerfTestClient | TolokaClient


@dataclass(frozen=True)
class SandboxTarget:
    """Where the local emulator listens and the credentials it accepts (its defaults unless seeded)."""

    url: str
    access_key: str = "SANDBOXAK"
    secret_key: str = "SANDBOXSK"
    cloud_project_id: str = "0123456789abcdef0123456789abcdef"
    toloka_token: str = "sandbox-token"


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
    credentials: dict[str, Any] = dict(settings.get("credentials") or {})
    access_key = secret_key = token = None
    if sandbox is not None:
        endpoint, cloud_project_id = sandbox.url, sandbox.cloud_project_id
        access_key, secret_key = sandbox.access_key, sandbox.secret_key
        redaction.register(access_key, secret_key)
        hint = "the sandbox credentials"
    else:
        endpoint, cloud_project_id = settings["endpoint"], settings["cloud_project_id"]
        token_env = credentials.get("token_env")
        ak_env, sk_env = credentials.get("access_key_env"), credentials.get("secret_key_env")
        if token_env:
            token = _secret(name, token_env, "the IAM token", environ)
            hint = f"the IAM token in ${token_env} (it may have expired)"
        elif ak_env and sk_env:
            access_key = _secret(name, ak_env, "the access key", environ)
            secret_key = _secret(name, sk_env, "the secret key", environ)
            hint = f"the access key in ${ak_env} and the secret key in ${sk_env}"
        else:
            raise ConfigError(f"provider {name}: credentials need access_key_env and secret_key_env, or token_env")
    log.debug("provider %s: CodeArts PerfTest at %s, with %s", name, endpoint, hint)
    return PerfTestClient(
        name=name,
        endpoint=endpoint,
        cloud_project_id=cloud_project_id,
        access_key=access_key,
        secret_key=secret_key,
        token=token,
        rate_limit=float(settings.get("rate_limit") or 50.0),
        credentials_hint=hint,
        request_timeout=settings.get("request_timeout"),
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
        redaction.register(sandbox.toloka_token)
        log.debug("provider %s: Toloka at %s, with the sandbox Toloka key", name, sandbox.url)
        return TolokaClient(
            name=name,
            endpoint=sandbox.url,
            token=sandbox.toloka_token,
            rate_limit=rate,
            batch_size=batch_size,
            credentials_hint="the sandbox Toloka key",
            request_timeout=settings.get("request_timeout"),
            operation_timeout=settings.get("operation_timeout"),
            **http_options,
        )
    token_env = credentials.get("token_env")
    if not token_env:
        raise ConfigError(f"provider {name}: credentials.token_env is required")
    scheme = str(credentials.get("scheme") or "ApiKey")
    kind = "API key" if scheme == "ApiKey" else "OAuth token"
    endpoint = settings.get("endpoint") or "https://toloka.dev"
    token = _secret(name, token_env, f"the Toloka {kind}", environ)
    log.debug("provider %s: Toloka at %s, with the %s in $%s", name, endpoint, kind, token_env)
    return TolokaClient(
        name=name,
        endpoint=endpoint,
        token=token,
        scheme=scheme,
        rate_limit=rate,
        batch_size=batch_size,
        credentials_hint=f"the Toloka {kind} in ${token_env}",
        request_timeout=settings.get("request_timeout"),
        operation_timeout=settings.get("operation_timeout"),
        **http_options,
    )


def _secret(provider: str, variable: str, what: str, environ: Mapping[str, str]) -> str:
    """A credential's value, registered for redaction; the error names the variable and what it should hold,
    never a value."""
    value = environ.get(variable, "").strip()
    redaction.register(value)
    if not value:
        state = "is empty" if variable in environ else "is not set"
        raise ConfigError(
            f"provider {provider}: the environment variable {variable} {state}; it must hold {what} "
            f"(or run with --sandbox to use the local emulator)"
        )
    return value
