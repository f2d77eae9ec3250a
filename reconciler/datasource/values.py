"""The JSON values reconciler accepts from a user's file: what every later step can hash, store and send.

A manifest or a data row is decoded once, then hashed (canonical JSON as UTF-8), stored, compared and sent.
Some values decode without complaint yet break one of those steps far from the line that holds them, so they
are refused where they are read, each with its own message:

- NaN and Infinity (JSON ``NaN``, ``Infinity``; numbers such as ``1e999`` that overflow to infinity): JSON has
  no such numbers, and an encoder would write them as ``null`` or as text no API reads.
- Integers of more than ``MAX_INT_DIGITS`` digits: Python refuses to write them as text (its int-conversion
  limit), so they could be neither hashed nor sent.
- Lone surrogates (``"\\ud800"``): not text, with no UTF-8 form, so no hash.
- Nesting deeper than ``MAX_DEPTH``: later steps (validation, diffs, the emulator) recurse, and no real manifest
  or row nests anywhere near so deep.
- Keys that are not strings (YAML's ``1:`` or ``on:``): JSON objects have string keys only.

The checks are one iterative walk, so a hostile depth cannot crash the check itself.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

__all__ = [
    "MAX_DEPTH",
    "MAX_INT_DIGITS",
    "Unusable",
    "UnusableValue",
    "checked_json",
    "decode_json",
    "depth_message",
    "dotted",
    "int_digits_message",
    "non_finite_message",
    "surrogate_message",
    "text_problem",
    "value_problem",
]

#: The deepest nesting of lists and objects accepted, the outermost counting as 1.
MAX_DEPTH = 64
#: Python's limit on turning an integer into text (``sys.get_int_max_str_digits``'s default).
MAX_INT_DIGITS = 4300
_INT_BOUND = 10**MAX_INT_DIGITS
_SURROGATE = re.compile("[\ud800-\udfff]")

Where = tuple[str | int, ...]


class UnusableValue(ValueError):
    """A decoded value holds something reconciler refuses; ``path`` is where (keys and list indexes)."""

    def __init__(self, message: str, path: Where = ()) -> None:
        super().__init__(message)
        self.path = path


def dotted(path: Where, most: int = 8) -> str:
    """A path as a problem shows it: ``a.0.b``, its first ``most`` parts only (a path 64 levels deep is noise)."""
    parts = [str(part) for part in path]
    return ".".join(parts[:most]) + ("..." if len(parts) > most else "")


def depth_message() -> str:
    return f"nested more than {MAX_DEPTH} levels deep (limit: nesting depth)"


def int_digits_message(digits: int) -> str:
    return f"an integer of {digits:,} digits; reconciler reads integers of at most {MAX_INT_DIGITS:,} digits"


def non_finite_message(written: str) -> str:
    """Why ``written`` (as the file spells it) is refused: JSON numbers are finite."""
    if written.lstrip("+-.").lower() in ("nan", "inf", "infinity"):
        return f"{written} is not a JSON number (JSON has no NaN or Infinity); write null or a string instead"
    return f"the number {written} is out of range (it would be infinity, which JSON has not)"


def surrogate_message(text: str) -> str:
    found = _SURROGATE.search(text)
    code = ord(found.group()) if found else 0
    return f"holds a lone surrogate (\\u{code:04x}), which is not text: it has no UTF-8 form and cannot be sent"


def text_problem(text: str) -> str | None:
    """Why a string cannot be used, or None."""
    if not text.isascii() and _SURROGATE.search(text):
        return surrogate_message(text)
    return None


def value_problem(value: Any) -> tuple[Where, str] | None:
    """The first thing in ``value`` (in document order) that reconciler refuses, with where it is; or None.

    Iterative, with an explicit stack, so the depth it refuses cannot exhaust Python's own stack first."""
    stack: list[tuple[Any, Where, int]] = [(value, (), 0)]
    while stack:
        item, path, depth = stack.pop()
        kind = type(item)
        if kind is str:
            problem = text_problem(item)
            if problem is not None:
                return path, problem
        elif kind is dict or kind is list:
            if depth + 1 > MAX_DEPTH:
                return path, depth_message()
            if kind is dict:
                for key in item:
                    if type(key) is not str:
                        return path, f"the key {key!r} is not a string; JSON keys are strings"
                    problem = text_problem(key)
                    if problem is not None:
                        return path, f"a key {problem}"
                children = list(item.items())
            else:
                children = list(enumerate(item))
            stack.extend((child, (*path, at), depth + 1) for at, child in reversed(children))
        elif kind is float:
            if not math.isfinite(item):
                return path, non_finite_message(repr(item).replace("inf", "Infinity").replace("nan", "NaN"))
        elif kind is int:
            if not -_INT_BOUND < item < _INT_BOUND:
                return path, int_digits_message(_digits(item))
        elif kind is Unusable:
            return path, item.message
        elif item is not None and kind is not bool:
            return path, f"a {kind.__name__} is not a JSON value"
    return None


def _digits(value: int) -> int:
    """The count of decimal digits of a huge integer, without writing it as text (which Python refuses)."""
    estimate = int(abs(value).bit_length() * math.log10(2))
    return estimate + 1 if abs(value) >= 10**estimate else estimate


class Unusable:
    """Stands, in a decoded value, for a number the decoder refused, so ``value_problem`` finds it where it is."""

    __slots__ = ("message",)

    def __init__(self, message: str) -> None:
        self.message = message


def _refuse_constant(name: str) -> Unusable:
    return Unusable(non_finite_message(name))


def _finite_float(text: str) -> float | Unusable:
    number = float(text)
    return number if math.isfinite(number) else Unusable(non_finite_message(text))


def _bounded_int(text: str) -> int | Unusable:
    digits = len(text) - (text[0] == "-")
    return Unusable(int_digits_message(digits)) if digits > MAX_INT_DIGITS else int(text)


_DECODER = json.JSONDecoder(parse_constant=_refuse_constant, parse_float=_finite_float, parse_int=_bounded_int)


def decode_json(text: str) -> Any:
    """``text`` as the standard library reads JSON, a refused number left in place as an ``Unusable``: the
    caller asks ``value_problem`` of the parts it reports on. Raises ``json.JSONDecodeError`` for text that is
    not JSON, ``UnusableValue`` for nesting too deep to decode at all."""
    try:
        return _DECODER.decode(text)
    except RecursionError:
        raise UnusableValue(depth_message()) from None


def checked_json(text: str) -> Any:
    """``decode_json``, raising ``UnusableValue`` at the first thing ``value_problem`` refuses."""
    value = decode_json(text)
    found = value_problem(value)
    if found is not None:
        raise UnusableValue(found[1], found[0])
    return value
