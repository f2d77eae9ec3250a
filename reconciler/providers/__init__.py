"""Clients of the remote APIs: one module per API (``perftest``, ``toloka``), the HTTP boundary they share
(``http``: retries, rate limits, errors), request signing (``signing``), and ``factory``, which builds the
clients from provider settings and the environment (the only place credentials are read).

Providers know nothing of plans or of the state: they speak each API's protocol and nothing else.
"""

from __future__ import annotations

from reconciler.providers.factory import (
    OVERRIDABLE_FIELDS,
    ProviderClient,
    ProviderSettings,
    SandboxTarget,
    build_clients,
    effective_settings,
    override_variable,
)
from reconciler.providers.perftest import PerfTestClient
from reconciler.providers.toloka import TolokaClient

__all__ = [
    "OVERRIDABLE_FIELDS",
    "PerfTestClient",
    "ProviderClient",
    "ProviderSettings",
    "SandboxTarget",
    "TolokaClient",
    "build_clients",
    "effective_settings",
    "override_variable",
]
