"""The few places where reconciler trades plain Python for speed, each with the measured reason it stays.

Every trick here runs once per resource on a path that handles 100,000 of them (loading a data file,
planning, recording outcomes). A trick is kept only while ``bench/`` shows it worth at least 5% of the
command it speeds up; the figures are in ``docs/performance.md``.

- ``cycle_collection_paused``: loading, planning and applying allocate millions of containers, none of them
  garbage, and Python's cycle collector would rescan all of them again and again.

Tricks measured and dropped as worth less than 5% (``docs/performance.md``): building frozen dataclasses by
their slot setters instead of ``__init__``, and ``tuple.__new__`` for named tuples.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

__all__ = ["cycle_collection_paused"]


@contextlib.contextmanager
def cycle_collection_paused() -> Iterator[None]:
    """No cyclic garbage collection inside; on leaving, the collector is as it was.

    Loading 100,000 suites, planning them and applying them allocate no reference cycles that matter (JSON,
    rows, actions and outcomes are trees), yet each allocation burst triggers collections that walk every
    object alive: a third of the load time, and a third of apply's. Nested uses leave the collector to the
    outermost. The outermost, on leaving, moves the survivors straight to the oldest generation (freeze, then
    unfreeze: what surviving those scans would do, at no cost), unless something else froze objects.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            if gc.get_freeze_count() == 0:
                gc.freeze()
                gc.unfreeze()
            gc.enable()
