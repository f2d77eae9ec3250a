"""Small builders for state tests: resources, intents and outcomes with plausible values."""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import Any

from reconciler.state import Intent, Outcome, PendingResource, StateStore, Status


def spec_hash(spec: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()


def pending(
    address: str, *, attempt: int = 0, replaces: str | None = None, spec: dict[str, Any] | None = None
) -> PendingResource:
    spec = spec if spec is not None else {"pool_id": "pool-1", "name": address}
    kind = address.split("/")[0]
    provider = "perftest" if kind == "PerfTestTask" else "toloka"
    return PendingResource(address, kind, provider, spec, spec_hash(spec), attempt, replaces)


def intent_for(
    resources: list[PendingResource], *, operation_id: str | None = None, detail: dict[str, Any] | None = None
) -> Intent:
    return Intent(
        operation_id=operation_id or str(uuid.uuid4()),
        provider=resources[0].provider,
        action="perftest_create" if resources[0].provider == "perftest" else "toloka_batch",
        addresses=tuple(r.address for r in resources),
        fingerprint=hashlib.sha256("".join(r.spec_hash for r in resources).encode()).hexdigest(),
        detail=detail or {},
    )


def record(store: StateStore, *addresses: str, attempt: int = 0) -> Intent:
    resources = [pending(a, attempt=attempt) for a in addresses]
    intent = intent_for(resources)
    store.record_intent(intent=intent, resources=resources)
    return intent


def create(store: StateStore, *addresses: str) -> Intent:
    intent = record(store, *addresses)
    outcomes = [Outcome(a, Status.CREATED, remote_id=f"remote-{a}") for a in addresses]
    store.record_outcomes(operation_id=intent.operation_id, outcomes=outcomes, resolved=True)
    return intent
