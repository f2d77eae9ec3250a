"""The few places where reconciler trades plain Python for speed, each with the measured reason it stays.

Every trick here runs once per resource on a path that handles 100,000 of them (loading a data file,
planning, recording outcomes). A trick is kept only while ``bench/`` shows it worth at least 5% of the
command it speeds up; the figures are in ``docs/performance.md``.

- ``cycle_collection_paused``: loading, planning and applying allocate millions of containers, none of them
  garbage, and Python's cycle collector would rescan all of them again and again.
- ``slot_setters``: a frozen slotted dataclass's ``__init__`` stores each field through
  ``object.__setattr__`` and a lookup by name; storing straight into the slots gives the same object in half
  the time. Used for the one object per resource built while loading (``Resource``) and planning
  (``Action``) and read back from the state (``ResourceSummary``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
from collections.abc import Callable, Iterator
from typing import Any

__all__ = ["cycle_collection_paused", "slot_setters"]


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


def slot_setters(cls: type[Any], names: tuple[str, ...]) -> tuple[Callable[[Any, Any], None], ...]:
    """The slot setters of a frozen slotted dataclass's fields, in order: ``object.__new__(cls)`` then one
    call per field builds the same object as ``cls(...)``.

    Refused unless ``names`` are exactly its fields, in order, and the class has slots and no
    ``__post_init__``: a field added later must not be silently left unset.
    """
    found = tuple(f.name for f in dataclasses.fields(cls))
    if found != names:
        raise TypeError(f"{cls.__name__} fields are {found}, not {names}: update its fast constructor")
    if hasattr(cls, "__post_init__") or not hasattr(cls, "__slots__"):
        raise TypeError(f"{cls.__name__} is no longer a plain slotted dataclass: update its fast constructor")
    return tuple(cls.__dict__[name].__set__ for name in names)
