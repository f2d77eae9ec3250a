"""The one canonical form of a JSON value, its content hash, and the bytes reconciler sends and stores.

Two encodings, for two jobs:

- **Canonical** (``canonical_json``, ``content_hash``, ``SpecHasher``): sorted keys, no spaces, UTF-8 kept.
  A resource's *spec hash* is the sha256 of its spec's canonical text. It names a resource's content in the
  state, in plan files and in operation ids, so one value has one hash, forever, whichever code path made it.
  The standard library's ``json.dumps(sort_keys=True, separators=(",", ":"), ensure_ascii=False)`` is the
  reference; every faster path here is proven byte-identical to it for the values it accepts and falls back
  to it for everything else.
- **Wire and storage** (``dumps``, ``dumps_text``): request bodies and state columns. Keys keep their order;
  a body is encoded once and resent as the same bytes, so a retried create is byte-identical to the first.

The fast paths, and what they are worth (``bench/bench_speedups.py``, 100,000 one-row suites; set against the
whole command in ``docs/performance.md``):

- ``SpecHasher`` renders the canonical text of everything but a suite's ``tasks`` once per set and splices
  each suite's tasks between that prefix and suffix, instead of re-encoding the whole spec with sorted keys
  per suite; tasks of plain values (strings, 64-bit integers, booleans, null) are encoded by orjson, whose
  sorted-keys text is byte-identical to the standard library's for those values. Hashing 100,000 one-row
  suites with ``of_plain_row`` takes a sixth of the time ``content_hash`` takes.
- ``dumps`` uses orjson: a 5,000-suite batch body is encoded in a tenth of the standard library's time.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

import orjson

__all__ = ["SpecHasher", "canonical_json", "content_hash", "dumps", "dumps_text"]

_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)
_PLAIN_TYPES = frozenset({str, int, bool, type(None)})
_SENTINEL = "\x00tasks\x00"


def canonical_json(value: Any) -> str:
    """One text per value: sorted keys, no spaces, UTF-8 kept, so equal specs hash equally."""
    return _CANONICAL.encode(value)


def content_hash(value: Any) -> str:
    """The spec hash: sha256 of the canonical text, as hex."""
    return hashlib.sha256(canonical_json(value).encode("utf-8")).hexdigest()


def is_plain_row(row: Mapping[str, Any]) -> bool:
    """Whether every value of a flat row is one whose orjson text is the canonical text (see the module).

    A plain loop rather than ``all()`` over a generator: it runs once per row of a data file, and the
    generator would cost more than the checks for a row of a few values.
    """
    plain = _PLAIN_TYPES
    for value in row.values():  # noqa: SIM110 - see the docstring
        if type(value) not in plain:
            return False
    return True


class SpecHasher:
    """``content_hash`` of many specs that differ only in ``tasks``: the suites of one TaskSuiteSet.

    ``rest`` is everything of the spec but its tasks. Gives exactly ``content_hash({**rest, "tasks": tasks})``.
    When ``rest`` holds a lone surrogate (a JSON manifest can), its text cannot be UTF-8 encoded up front:
    then every hash takes the reference path, and fails exactly where and how ``content_hash`` would.
    """

    def __init__(self, rest: Mapping[str, Any]) -> None:
        rendered = canonical_json({**rest, "tasks": _SENTINEL})
        self._prefix, self._suffix = rendered.split(canonical_json(_SENTINEL), 1)
        self._head: bytes | None = None
        self._tail: bytes | None = None
        self._row_tail = b""
        self._row_start: Any = None
        try:
            self._head, self._tail = self._prefix.encode("utf-8"), self._suffix.encode("utf-8")
        except UnicodeEncodeError:
            return
        self._row_start = hashlib.sha256(self._head + b'[{"input_values":').copy
        self._row_tail = b"}]" + self._tail

    @property
    def rows_fast(self) -> bool:
        """Whether ``of_plain_row`` may be used (the rest of the spec has a UTF-8 text)."""
        return self._row_start is not None

    def __call__(self, tasks: list[dict[str, Any]]) -> str:
        if self._head is not None and self._tail is not None:
            body = _plain_canonical(tasks)
            if body is not None:
                return hashlib.sha256(self._head + body + self._tail).hexdigest()
        return hashlib.sha256((self._prefix + canonical_json(tasks) + self._suffix).encode("utf-8")).hexdigest()

    def of_plain_row(self, row: dict[str, Any]) -> str:
        """The hash of the suite whose one task is ``{"input_values": row}``, for a row ``is_plain_row`` passed
        (decoded by orjson, so it holds no lone surrogate or 65-bit integer), when ``rows_fast``."""
        sha = self._row_start()
        sha.update(orjson.dumps(row, option=orjson.OPT_SORT_KEYS))
        sha.update(self._row_tail)
        return sha.hexdigest()


def _plain_canonical(tasks: list[dict[str, Any]]) -> bytes | None:
    """``canonical_json(tasks)`` as UTF-8 by orjson, or None when orjson's text could differ or fail.

    Integers beyond 64 bits and lone surrogates make orjson raise: the reference path then fails or succeeds
    as ``content_hash`` would.
    """
    for task in tasks:
        values = task.get("input_values")
        if type(values) is not dict or not is_plain_row(values) or len(task) != 1:
            return None
    try:
        return orjson.dumps(tasks, option=orjson.OPT_SORT_KEYS)
    except orjson.JSONEncodeError:
        return None


def dumps(value: Any) -> bytes:
    """A value as compact JSON bytes, keys in their order: for request bodies and state columns.

    orjson without options first (the common case, and the fastest); ``OPT_NON_STR_KEYS`` only for a value
    with non-string keys; the standard library for what orjson refuses (integers beyond 64 bits).
    """
    try:
        return orjson.dumps(value)
    except TypeError:
        pass
    try:
        return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS)
    except TypeError:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode("utf-8")


def dumps_text(value: Any) -> str:
    """``dumps`` as text, for database columns."""
    return dumps(value).decode("utf-8")
