"""Throttling as the real services do it: requests per second and task suites per minute, in rolling windows;
and the size of one request.

A client that ignores these limits works against the sandbox and then fails in production, so the sandbox
enforces them by default (300 Toloka requests/s, 200 calls/s per CPTS API, 100,000 suites a minute); tests and
benchmarks raise or lower them through ``SandboxServer``'s keyword arguments (``None`` turns a limit off).

Per request, a Toloka create takes at most 5,000 suites in synchronous mode, and at most 1 MiB of input values
in either mode (``413 REQUEST_ENTITY_TOO_LARGE``, nothing created). Toloka does not say how it counts that
mebibyte; the sandbox counts one plausible way, the values themselves as compact UTF-8 JSON
(``toloka_suites.input_values_bytes``), and a client must stay under every plausible way.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True)
class Limits:
    toloka_requests_per_second: float | None = 300
    perftest_requests_per_second: float | None = 200  # per API (route), as the gateway counts
    suites_per_minute: int | None = 100_000
    max_sync_suites: int = 5_000
    max_input_bytes: int = 1024 * 1024  # as counted by ``toloka_suites.input_values_bytes``


class RollingWindow:
    """Counts events in the last ``seconds``; ``admit`` refuses what would exceed ``limit``."""

    def __init__(self, limit: float, seconds: float) -> None:
        self.limit = limit
        self.seconds = seconds
        self._events: deque[tuple[float, int]] = deque()
        self._total = 0

    def admit(self, now: float, amount: int = 1) -> bool:
        horizon = now - self.seconds
        events = self._events
        while events and events[0][0] <= horizon:
            self._total -= events.popleft()[1]
        if self._total + amount > self.limit:
            return False
        events.append((now, amount))
        self._total += amount
        return True


class Throttle:
    """The sandbox's rate limits, keyed by the window's name (``toloka``, a CPTS route, ``suites``)."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self._windows: dict[str, RollingWindow] = {}

    def reset(self) -> None:
        self._windows.clear()

    def _window(self, key: str, limit: float, seconds: float) -> RollingWindow:
        window = self._windows.get(key)
        if window is None:
            window = self._windows[key] = RollingWindow(limit, seconds)
        return window

    def admit_request(self, api: str, route: str, now: float) -> bool:
        if api == "toloka":
            limit = self.limits.toloka_requests_per_second
            key = "toloka"
        else:
            limit = self.limits.perftest_requests_per_second
            key = f"perftest {route}"
        return limit is None or self._window(key, limit, 1.0).admit(now)

    def admit_suites(self, count: int, now: float) -> bool:
        limit = self.limits.suites_per_minute
        return limit is None or self._window("suites", limit, 60.0).admit(now, count)
