"""Named places where a test can make the process die for real, to prove that apply survives a crash there.

``RECONCILER_FAILPOINT=after_intent:3`` SIGKILLs the process the third time it passes ``after_intent``.
Several may be given, comma-separated. Without the variable, ``hit`` is a dictionary lookup and nothing else.
The points, in the order apply passes them for each intent:

- ``after_intent``: the intent is committed, the request not yet sent;
- ``after_send``: the remote call returned, its outcome not yet committed;
- ``after_outcome``: the outcome is committed.
"""

from __future__ import annotations

import os
import signal
import threading

_lock = threading.Lock()
_counts: dict[str, int] = {}


def _armed() -> dict[str, int]:
    spec = os.environ.get("RECONCILER_FAILPOINT", "")
    armed: dict[str, int] = {}
    for part in filter(None, (p.strip() for p in spec.split(","))):
        name, _, nth = part.partition(":")
        armed[name] = int(nth or "1")
    return armed


_ARMED = _armed()


def hit(name: str) -> None:
    if name not in _ARMED:
        return
    with _lock:
        _counts[name] = _counts.get(name, 0) + 1
        if _counts[name] == _ARMED[name]:
            os.kill(os.getpid(), signal.SIGKILL)
