"""Runs a plan: the core (``core``) records intents and outcomes and spreads the calls over worker threads;
one module per remote API (``toloka``, ``perftest``) owns that API's protocol: how actions become calls, how a
call is sent, how its outcome is read, how an outcome left unknown is resolved. ``work`` holds what passes
between them; ``events`` what apply reports."""

from __future__ import annotations

from reconciler.applier.core import PROVIDER_MODULES, Applier
from reconciler.applier.events import ApplyEvent, ApplyResult, EventType

__all__ = ["PROVIDER_MODULES", "Applier", "ApplyEvent", "ApplyResult", "EventType"]
