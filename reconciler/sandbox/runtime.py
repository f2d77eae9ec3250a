"""The running sandbox's moving parts, shared by routes and middleware: world, limits, faults, stats."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request

from .faults import FaultInjector, FaultSpec
from .limits import Limits, Throttle
from .world import World


@dataclass
class Stats:
    """Requests per route template and status, and the faults injected: what ``GET /_sandbox/stats`` shows."""

    routes: dict[str, Counter[str]] = field(default_factory=dict)
    faults: Counter[str] = field(default_factory=Counter)
    throttled: int = 0

    def count(self, route: str, status: int | str) -> None:
        counter = self.routes.get(route)
        if counter is None:
            counter = self.routes[route] = Counter()
        counter[str(status)] += 1

    def clear(self) -> None:
        self.routes.clear()
        self.faults.clear()
        self.throttled = 0

    def as_json(self) -> dict[str, Any]:
        return {
            "routes": {route: dict(counts) for route, counts in sorted(self.routes.items())},
            "faults": dict(self.faults),
            "throttled": self.throttled,
            "total": sum(sum(c.values()) for c in self.routes.values()),
        }


class SandboxRuntime:
    """``admin_anywhere``: the ``/_sandbox`` routes answer any client, not only loopback ones."""

    def __init__(self, world: World, limits: Limits, faults: FaultSpec, *, admin_anywhere: bool = False) -> None:
        self.world = world
        self.admin_anywhere = admin_anywhere
        self.limits = limits
        self.throttle = Throttle(limits)
        self.stats = Stats()
        self.initial_faults = faults
        self.faults = FaultInjector(faults)

    def set_faults(self, spec: FaultSpec) -> None:
        """Replace the faults; the generator and the request count start again, so a spec replays."""
        self.faults = FaultInjector(spec)

    def reset(self) -> None:
        """Back to the seed: no created objects, no stats, the faults the sandbox was started with."""
        self.world.reset()
        self.stats.clear()
        self.throttle.reset()
        self.faults = FaultInjector(self.initial_faults)


def sandbox_of(request: Request) -> SandboxRuntime:
    runtime: SandboxRuntime = request.app.state.sandbox
    return runtime
