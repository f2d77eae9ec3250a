"""Clients of the remote APIs: one module per API (``perftest``, ``toloka``), the HTTP boundary they share
(``http``: retries, rate limits, errors), request signing (``signing``), provider settings and their
environment overrides (``settings``), and ``factory``, which builds the clients from those settings and the
environment (the only place credentials are read).

Providers know nothing of plans or of the state: they speak each API's protocol and nothing else.

The names below are loaded on first use, not when the package is: ``reconciler.providers.settings`` serves
planning, which must not pay for importing httpx and the clients (nor does ``signing``, for the sandbox).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from reconciler.providers.factory import ProviderClient, SandboxTarget, build_clients
    from reconciler.providers.perftest import PerfTestClient
    from reconciler.providers.settings import (
        OVERRIDABLE_FIELDS,
        ProviderSettings,
        check_environment,
        effective_settings,
        override_variable,
    )
    from reconciler.providers.toloka import TolokaClient

#: Each name this package offers, and the module of the package that defines it.
_EXPORTS = {
    "OVERRIDABLE_FIELDS": "settings",
    "PerfTestClient": "perftest",
    "ProviderClient": "factory",
    "ProviderSettings": "settings",
    "SandboxTarget": "factory",
    "TolokaClient": "toloka",
    "build_clients": "factory",
    "check_environment": "settings",
    "effective_settings": "settings",
    "override_variable": "settings",
}

__all__ = [
    "OVERRIDABLE_FIELDS",
    "PerfTestClient",
    "ProviderClient",
    "ProviderSettings",
    "SandboxTarget",
    "TolokaClient",
    "build_clients",
    "check_environment",
    "effective_settings",
    "override_variable",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # the next lookup finds it without coming here
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
