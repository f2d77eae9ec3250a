"""Holding the state lock for the length of a run, for every backend.

A run that dies keeps its lock only until the lock expires, so a lock is taken with a short TTL and a daemon
thread renews it every ``ttl / 3``: a live run keeps it through a slow batch, a SIGKILLed one frees it within
``ttl``. A run whose lock was broken or taken over meanwhile was no longer protected from a concurrent one,
so ``held_lock`` raises ``StateError`` when its block ends instead of letting it finish as a success.

A run that is suspended (SIGSTOP, a closed laptop lid, a paused CI container) does not die: it wakes up later,
maybe after another run took its expired lock over and resolved its open intents by sending them again. Two
guards keep it from acting on a lock it no longer holds:

- The ``Lease`` it holds is trusted only until its last successful renewal (the moment the renewal was sent)
  plus ``ttl`` less a safety margin of a quarter of it, measured on ``CLOCK_BOOTTIME`` (a monotonic clock that
  also counts time the machine slept). ``Lease.check`` runs immediately before every request that may create
  something; a lapsed lease raises ``LeaseLostError`` and the run stops sending.
- Every write the run makes carries the lock's generation (``StateStore.fence``): a woken run whose lock was
  taken over cannot record anything either.

What is left is the window between ``check`` and the request's bytes leaving the socket: a suspension that
lands in it, and lasts past the TTL, still sends that one request. The window is the time of a few Python
statements in one thread (microseconds; see ``docs/design.md``), so closing it would need the server's help
(a conditional request carrying the fencing token), which neither API offers.
"""

from __future__ import annotations

import getpass
import logging
import os
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress

from reconciler.errors import ConfigError, LeaseLostError, StateError, StateLockedError
from reconciler.state.base import LockInfo, StateStore

log = logging.getLogger(__name__)

_ANONYMOUS_HOSTS = {"", "localhost"}

#: The lock's TTL unless ``RECONCILER_LOCK_TTL`` says otherwise: how long a killed run keeps others out.
DEFAULT_TTL = 60.0

#: The part of the TTL a lease is not trusted for: covers the renewal's own time and clocks that run at
#: slightly different rates. Renewals come every third of the TTL, so two in a row may fail before it matters.
SAFETY_MARGIN = 0.25

_CLOCK = getattr(time, "CLOCK_BOOTTIME", time.CLOCK_MONOTONIC)


def _clock() -> float:
    """Monotonic, and counting suspend on Linux: a laptop that slept an hour must not trust an hour-old lease."""
    return time.clock_gettime(_CLOCK)


def lock_ttl(environ: Mapping[str, str] = os.environ) -> float:
    """``RECONCILER_LOCK_TTL`` in seconds: shorter frees a killed run's lock sooner, but a run that cannot
    renew (a state over a slow network) for three quarters of it stops."""
    raw = environ.get("RECONCILER_LOCK_TTL")
    if raw is None or raw == "":
        return DEFAULT_TTL
    try:
        ttl = float(raw)
    except ValueError:
        ttl = -1.0
    if not 1.0 <= ttl <= 86400.0:
        raise ConfigError(f"RECONCILER_LOCK_TTL={raw!r}: give the lock's TTL in seconds, from 1 to 86400")
    return ttl


class Lease:
    """The lock as this run holds it, and until when it may trust that (see the module docstring)."""

    def __init__(self, info: LockInfo, ttl: float, *, taken_at: float) -> None:
        self.info = info
        self.ttl = ttl
        self.lost: StateError | None = None
        self._taken_at = taken_at
        self._renewed_at = taken_at

    @property
    def lock_id(self) -> str:
        return self.info.lock_id

    def renewed(self, sent_at: float) -> None:
        self._renewed_at = max(self._renewed_at, sent_at)

    def check(self) -> None:
        """Raise ``LeaseLostError`` unless the lock is surely still ours; cheap enough to call before every send."""
        if self.lost is not None:
            raise LeaseLostError(f"the state lock was lost: {_why(self.lost)}; this run sends nothing more")
        silent = _clock() - self._renewed_at
        if silent > self.ttl * (1 - SAFETY_MARGIN):
            raise LeaseLostError(
                f"the state lock's lease may have lapsed: it was last renewed {silent:.0f}s ago and its TTL is "
                f"{self.ttl:g}s (was this process suspended, or the state out of reach?), so another run may hold "
                "it now; this run sends nothing more. Run `reconciler apply` again: it resolves what this run left "
                "open"
            )


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
def held_lock(
    store: StateStore,
    *,
    holder: str,
    operation: str,
    ttl: float | None = None,
    wait: float = 0.0,
    on_wait: Callable[[StateLockedError], None] | None = None,
) -> Iterator[Lease]:
    """Acquire the lock, keep it alive during the block, then release it; while it is held, the store's writes
    are fenced with its generation. A lock held by another run raises ``StateLockedError``, at once or, with
    ``wait`` seconds, when they have passed (``on_wait`` is told once that we wait). ``ttl`` defaults to
    ``lock_ttl()``."""
    ttl = lock_ttl() if ttl is None else ttl
    taken_at = _clock()
    info = _acquire(store, holder=holder, operation=operation, ttl=ttl, wait=wait, on_wait=on_wait)
    lease = Lease(info, ttl, taken_at=taken_at)
    store.fence(generation=info.generation)
    heartbeat = _Heartbeat(store, lease)
    heartbeat.start()
    try:
        yield lease
    except BaseException:
        heartbeat.stop()
        store.fence(generation=None)
        try:
            store.release_lock(lock_id=info.lock_id)
        except StateError:
            log.warning("could not release state lock %s", info.lock_id, exc_info=True)
        raise
    heartbeat.stop()
    store.fence(generation=None)
    lost = lease.lost or _not_ours(store, info.lock_id)
    store.release_lock(lock_id=info.lock_id)
    if lost is not None:
        raise StateError(f"the state lock was lost while {operation} ran: {_why(lost)}")


def _acquire(
    store: StateStore,
    *,
    holder: str,
    operation: str,
    ttl: float,
    wait: float,
    on_wait: Callable[[StateLockedError], None] | None,
) -> LockInfo:
    deadline = _clock() + wait
    pause = 0.1
    told = False
    while True:
        try:
            return store.acquire_lock(holder=holder, operation=operation, ttl=ttl)
        except StateLockedError as locked:
            if _holder_is_dead(locked.holder):
                log.warning("taking over the lock of %s, a process of this machine that is gone", locked.holder)
                with suppress(StateError):  # another run broke or took it first: acquiring again names it
                    store.force_unlock(lock_id=locked.lock_id)
                continue
            left = deadline - _clock()
            if left <= 0:
                if wait > 0:
                    raise StateLockedError(
                        lock_id=locked.lock_id,
                        holder=locked.holder,
                        operation=locked.operation,
                        since=locked.since,
                        waited=wait,
                    ) from None
                raise
            if on_wait is not None and not told:
                on_wait(locked)
                told = True
            time.sleep(min(pause, left))
            pause = min(pause * 2, 2.0)


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
    def __init__(self, store: StateStore, lease: Lease) -> None:
        self._store = store
        self._lease = lease
        self._lock_id = lease.lock_id
        self._ttl = lease.ttl
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"state-lock-heartbeat-{self._lock_id[:8]}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join()

    def _run(self) -> None:
        """A renewal that fails for a passing reason (a busy file) is retried at the next beat, which is why
        beats come three to a TTL; only a lock that is gone or someone else's ends the heartbeat."""
        while not self._stopping.wait(self._ttl / 3):
            sent_at = _clock()
            try:
                self._store.renew_lock(lock_id=self._lock_id, ttl=self._ttl)
            except StateError as e:
                if _not_ours(self._store, self._lock_id) is not None:
                    self._lease.lost = e
                    log.error("state lock %s lost: %s", self._lock_id, e)
                    return
                log.warning("could not renew state lock %s: %s", self._lock_id, e)
            else:
                self._lease.renewed(sent_at)


def _not_ours(store: StateStore, lock_id: str) -> StateError | None:
    """Why the lock is no longer ours, or None if it still is (or the store cannot tell right now)."""
    try:
        current = store.current_lock()
    except StateError:
        return None
    if current is None:
        return StateError(
            f"the lock {lock_id} is no longer this run's: another run took it over after it expired (and is done), "
            "or it was broken (`state unlock`)"
        )
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
