"""Holding the state lock for the length of a run, for every backend.

A run that dies keeps its lock only until the lock expires, so a lock is taken with a short TTL and a daemon
thread renews it every ``ttl / 3``: a live run keeps it through a slow batch, a SIGKILLed one frees it within
``ttl``. A run whose lock was broken or taken over meanwhile was no longer protected from a concurrent one,
so ``held_lock`` raises ``StateError`` when its block ends instead of letting it finish as a success.
"""

from __future__ import annotations

import getpass
import logging
import os
import re
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress

from reconciler.errors import StateError, StateLockedError
from reconciler.state.base import LockInfo, StateStore

log = logging.getLogger(__name__)

_ANONYMOUS_HOSTS = {"", "localhost"}


def default_holder() -> str:
    """Who to name when another run finds the state locked: ``user@host pid 1234 pidns 4026531836``.

    The PID namespace makes a process id mean something: two containers may share a host name, never a PID
    namespace, so only a holder in our own namespace is ever judged dead by its pid.
    """
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    namespace = _pid_namespace()
    suffix = f" pidns {namespace}" if namespace else ""
    return f"{user}@{socket.gethostname()} pid {os.getpid()}{suffix}"


def _pid_namespace() -> str | None:
    try:
        return str(os.stat("/proc/self/ns/pid").st_ino)
    except OSError:
        return None


@contextmanager
def held_lock(store: StateStore, *, holder: str, operation: str, ttl: float = 60.0) -> Iterator[LockInfo]:
    """Acquire the lock (or raise ``StateLockedError``), keep it alive during the block, then release it."""
    try:
        info = store.acquire_lock(holder=holder, operation=operation, ttl=ttl)
    except StateLockedError as locked:
        if not _holder_is_dead(locked.holder):
            raise
        log.warning("taking over the lock of %s, a process of this machine that is gone", locked.holder)
        with suppress(StateError):  # another run broke or took it first: acquiring again names it
            store.force_unlock(lock_id=locked.lock_id)
        info = store.acquire_lock(holder=holder, operation=operation, ttl=ttl)
    heartbeat = _Heartbeat(store, info.lock_id, ttl)
    heartbeat.start()
    try:
        yield info
    except BaseException:
        heartbeat.stop()
        try:
            store.release_lock(lock_id=info.lock_id)
        except StateError:
            log.warning("could not release state lock %s", info.lock_id, exc_info=True)
        raise
    heartbeat.stop()
    lost = heartbeat.lost or _not_ours(store, info.lock_id)
    store.release_lock(lock_id=info.lock_id)
    if lost is not None:
        raise StateError(f"the state lock was lost while {operation} ran: {_why(lost)}")


def _holder_is_dead(holder: str) -> bool:
    """Whether ``holder`` names a process of this very machine that no longer runs.

    Such a lock can only be left by a run that was killed; waiting out its TTL would just delay the next run
    (a pipeline retry, a crash-recovery loop). A holder on another machine is never judged: only its TTL
    frees it; nor is one whose host name says nothing (``localhost``), which many containers share.
    """
    match = re.fullmatch(r"(?P<user>.*)@(?P<host>[^ ]+) pid (?P<pid>\d+) pidns (?P<ns>\d+)", holder)
    host = socket.gethostname()
    if match is None or match["host"] != host or host.split(".")[0] in _ANONYMOUS_HOSTS:
        return False
    if match["ns"] != _pid_namespace():
        return False
    pid = int(match["pid"])
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return _is_zombie(pid)


def _is_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return False


class _Heartbeat:
    def __init__(self, store: StateStore, lock_id: str, ttl: float) -> None:
        self.lost: StateError | None = None
        self._store = store
        self._lock_id = lock_id
        self._ttl = ttl
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"state-lock-heartbeat-{lock_id[:8]}", daemon=True)

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
                if _not_ours(self._store, self._lock_id) is not None:
                    self.lost = e
                    log.error("state lock %s lost: %s", self._lock_id, e)
                    return
                log.warning("could not renew state lock %s: %s", self._lock_id, e)


def _not_ours(store: StateStore, lock_id: str) -> StateError | None:
    """Why the lock is no longer ours, or None if it still is (or the store cannot tell right now)."""
    try:
        current = store.current_lock()
    except StateError:
        return None
    if current is None:
        return StateError(f"the lock {lock_id} was broken (`state unlock`)")
    if current.lock_id != lock_id:
        return StateLockedError(
            lock_id=current.lock_id,
            holder=current.holder,
            operation=current.operation,
            since=current.started_at,
        )
    return None


def _why(lost: StateError) -> str:
    if isinstance(lost, StateLockedError):
        return f"{lost.holder} took it over ({lost.operation}, lock id {lost.lock_id}); plan again"
    return str(lost)
