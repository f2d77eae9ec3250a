"""Holding the state lock for the length of a run, for every backend.

A run that dies keeps its lock only until the lock expires, so a lock is taken with a short TTL and a daemon
thread renews it every ``ttl / 3``: a live run keeps it through a slow batch, a SIGKILLed one frees it within
``ttl``. If renewal finds the lock broken or taken over, the run is no longer protected from a concurrent one;
``held_lock`` then raises ``StateError`` when the block ends, so the run cannot finish as a success.
"""

from __future__ import annotations

import getpass
import logging
import os
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from reconciler.errors import StateError, StateLockedError
from reconciler.state.base import LockInfo, StateStore

log = logging.getLogger(__name__)


def default_holder() -> str:
    """Who to name when another run finds the state locked: ``user@host pid 1234``."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()} pid {os.getpid()}"


@contextmanager
def held_lock(store: StateStore, *, holder: str, operation: str, ttl: float = 60.0) -> Iterator[LockInfo]:
    """Acquire the lock (or raise ``StateLockedError``), keep it alive during the block, then release it."""
    info = store.acquire_lock(holder=holder, operation=operation, ttl=ttl)
    heartbeat = _Heartbeat(store, info.lock_id, ttl)
    heartbeat.start()
    failed = False
    try:
        yield info
    except BaseException:
        failed = True
        raise
    finally:
        heartbeat.stop()
        try:
            store.release_lock(lock_id=info.lock_id)
        except StateError:
            if not failed:
                raise
            log.warning("could not release state lock %s", info.lock_id, exc_info=True)
    if heartbeat.lost is not None:
        raise StateError(f"the state lock was lost while {operation} ran: {_why(heartbeat.lost)}")


class _Heartbeat:
    def __init__(self, store: StateStore, lock_id: str, ttl: float) -> None:
        self.lost: StateError | None = None
        self._store = store
        self._lock_id = lock_id
        self._ttl = ttl
        self._stopping = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"state-lock-heartbeat-{lock_id[:8]}", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join()

    def _run(self) -> None:
        """A renewal that fails for a passing reason (a busy file) is retried at the next beat, which is why
        beats come three to a TTL; only a lock that is gone or someone else's ends the heartbeat."""
        while not self._stopping.wait(self._ttl / 3):
            try:
                self._store.renew_lock(lock_id=self._lock_id, ttl=self._ttl)
            except StateError as e:
                if _lock_is_gone(self._store, self._lock_id):
                    self.lost = e
                    log.error("state lock %s lost: %s", self._lock_id, e)
                    return
                log.warning("could not renew state lock %s: %s", self._lock_id, e)


def _why(lost: StateError) -> str:
    if isinstance(lost, StateLockedError):
        return f"{lost.holder} took it over ({lost.operation}, lock id {lost.lock_id}); plan again"
    return str(lost)


def _lock_is_gone(store: StateStore, lock_id: str) -> bool:
    try:
        current = store.current_lock()
    except StateError:
        return False
    return current is None or current.lock_id != lock_id
