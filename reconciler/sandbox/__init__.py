"""A local HTTP/1.1 emulator of the CodeArts PerfTest and Toloka APIs, with fault injection.

It exists so that every promise ``reconciler`` makes (exactly-once creation across retries, crashes and lost
answers) can be tested end to end over real HTTP, and so the quickstart needs no cloud account. It follows
``shared/api-notes.md``; the official clients (``toloka-kit``, ``huaweicloudsdkcpts``) run against it
unchanged in ``tests/conformance``.

Layout: ``world`` (what exists; pure Python, no HTTP) over a shared ``ledger`` (lock, clock, id counters) and
``persistence`` (memory or SQLite), with one part per API: ``perftest_world`` and ``toloka_world`` (over
``toloka_suites`` and ``toloka_operations``); ``validation`` (what a request body may hold); ``perftest``,
``toloka`` and ``admin`` (the routes); ``runtime`` (the running server's world, limits, faults and stats);
``app`` (the middleware: request ids, stats, rate limits, faults); ``server`` (uvicorn in a thread); ``cli``
(``reconciler sandbox serve``).
"""

from .client import SandboxAdmin
from .faults import FaultSpec, FaultSpecError
from .persistence import StoreError
from .seed import (
    DEFAULT_ACCESS_KEY,
    DEFAULT_CLOUD_PROJECT_ID,
    DEFAULT_IAM_TOKEN,
    DEFAULT_SECRET_KEY,
    DEFAULT_TOLOKA_TOKEN,
    Credentials,
    PerfTestProjectSeed,
    PoolSeed,
    SandboxSeed,
    SeedError,
)
from .server import SandboxServer

__all__ = [
    "DEFAULT_ACCESS_KEY",
    "DEFAULT_CLOUD_PROJECT_ID",
    "DEFAULT_IAM_TOKEN",
    "DEFAULT_SECRET_KEY",
    "DEFAULT_TOLOKA_TOKEN",
    "Credentials",
    "FaultSpec",
    "FaultSpecError",
    "PerfTestProjectSeed",
    "PoolSeed",
    "SandboxAdmin",
    "SandboxSeed",
    "SandboxServer",
    "SeedError",
    "StoreError",
]
