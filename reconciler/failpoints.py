"""Named places where a test can make the process die, or freeze, for real, to prove that apply survives it.

``RECONCILER_FAILPOINT=after_intent:3`` SIGKILLs the process the third time it passes ``after_intent``;
``before_send:2:stop`` SIGSTOPs it instead (as a closed laptop lid or a paused container would), for a test
to wake with SIGCONT once another run has taken its lock over. A point passed for an intent may be narrowed to
one action: ``before_send.perftest_create:2:stop``. Several may be given, comma-separated.
Without the variable, ``hit`` is a dictionary lookup and nothing else. The points, in the order apply passes
them for each intent:

- ``after_intent``: the intent is committed, the request not yet sent;
- ``before_send``: on the worker that sends it, before the lease is checked;
- ``after_send``: the remote call returned, its outcome not yet committed;
- ``after_outcome``: the outcome is committed.
"""

from __future__ import annotations

import os
import signal
import threading

_lock = threading.Lock()
_counts: dict[str, int] = {}

_SIGNALS = {"kill": signal.SIGKILL, "stop": signal.SIGSTOP}


def _armed() -> dict[str, tuple[int, signal.Signals]]:
    spec = os.environ.get("RECONCILER_FAILPOINT", "")
    armed: dict[str, tuple[int, signal.Signals]] = {}
    for part in filter(None, (p.strip() for p in spec.split(","))):
        name, _, rest = part.partition(":")
        nth, _, action = rest.partition(":")
        armed[name] = (int(nth or "1"), _SIGNALS[action or "kill"])
    return armed


_ARMED = _armed()


def hit(name: str, action: str = "") -> None:
    if action and f"{name}.{action}" in _ARMED:
        name = f"{name}.{action}"
    if name not in _ARMED:
        return
    nth, signum = _ARMED[name]
    with _lock:
        _counts[name] = _counts.get(name, 0) + 1
        due = _counts[name] == nth
    if due:
        # To this very thread: a signal to the process may be taken by another thread, and this one would run
        # on (past the lease check, say) until the stop reached it.
        signal.pthread_kill(threading.get_ident(), signum)
