"""A per-provider rate limit, shared by every thread of one client."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

__all__ = ["RateLimiter", "Sleep"]

Sleep = Callable[[float], None]


class RateLimiter:
    """A token bucket (in its GCRA form), shared by every thread using one client.

    Each caller reserves the next free slot under the lock and sleeps outside it, so threads queue fairly and
    a slow sleeper never blocks the others from reserving. ``burst`` requests may go back to back.
    """

    def __init__(
        self,
        rate: float,
        *,
        burst: int = 1,
        clock: Callable[[], float] = time.monotonic,
        sleep: Sleep = time.sleep,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        if burst < 1:
            raise ValueError("burst must be at least 1")
        self._interval = 1.0 / rate
        self._tolerance = (burst - 1) * self._interval
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._tat = float("-inf")  # theoretical arrival time of the next request

    def acquire(self) -> float:
        """Wait for a slot; returns how long this call waited."""
        with self._lock:
            now = self._clock()
            wait = max(0.0, self._tat - self._tolerance - now)
            self._tat = max(self._tat, now) + self._interval
        if wait > 0:
            self._sleep(wait)
        return wait
