"""YAML as reconciler reads it: JSON values only, within limits, every refusal one problem with its line.

Manifests come from pull requests, so a file may be built to hurt the machine that reads it. Before a
document is composed, one pass over its parser events (``check_limits``, in constant memory, stopping at the
first limit) refuses:

- a file of more than ``MAX_FILE_BYTES`` (checked by the reader, before parsing: limit "file size");
- more than ``MAX_VALUES`` values written (limit "values per file"): composing a million already takes
  seconds and hundreds of megabytes, and a 16 MiB file could hold eight million;
- aliases that add more than ``MAX_EXPANSION`` values once expanded: a 667-byte "billion laughs" file expands
  to millions, each one walked again by every later step (limit "alias expansion");
- more than ``MAX_ALIASES`` alias uses (limit "aliases");
- nesting deeper than ``values.MAX_DEPTH``, counting what aliases bring in (limit "nesting depth");
- an alias inside the very value it names (``&k {a: [*k]}``): a cycle, which no JSON value is.

Then the constructors keep to JSON. What YAML can say and JSON cannot is refused where it is written, naming
the tag, instead of becoming a Python object that fails later or is sent as something else:

- ``!!set``, ``!!binary``, ``!!omap``, ``!!pairs``, ``!!python/...`` and any other tag;
- ``.nan``, ``.inf`` (and ``NaN``, ``Infinity`` written bare in a ``.json`` file), and floats that overflow;
- integers of more than 4,300 digits (Python could not write them back as text);
- keys that are not strings (``1:``, and ``on:``, which YAML 1.1 reads as ``true``): quote them;
- lone surrogates (only a pure-Python YAML reader lets them through).

Timestamps stay the text they were written as: ``date: 2024-01-01`` is the string ``"2024-01-01"``, never a
date object. JSON has no dates, the APIs take text, and that is what a user who typed it expects to be sent.
A refused value becomes ``None`` in the document, which the refusal keeps from being validated further; a
file that turns out not to be a manifest is skipped, refusals and all, so a CI workflow's ``on:`` is nobody's
problem.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

import yaml

from reconciler.datasource.values import (
    MAX_DEPTH,
    MAX_INT_DIGITS,
    Unusable,
    decode_json,
    depth_message,
    int_digits_message,
    non_finite_message,
    text_problem,
)

__all__ = [
    "MAX_ALIASES",
    "MAX_EXPANSION",
    "MAX_FILE_BYTES",
    "MAX_VALUES",
    "LimitExceeded",
    "Refusal",
    "StrictLoader",
    "check_limits",
]

#: The largest manifest file read; a manifest of thousands of resources is a few megabytes.
MAX_FILE_BYTES = 16 * 1024 * 1024
#: Values (scalars, keys included, lists and mappings) written in one file: what composing costs memory for.
MAX_VALUES = 1_000_000
#: Values that aliases add to a file, expanded: what every step after parsing walks again.
MAX_EXPANSION = 100_000
#: Alias uses in one file; a hand-written manifest has a few dozen.
MAX_ALIASES = 10_000

_INT_BOUND = 10**MAX_INT_DIGITS
_YAML_PREFIX = "tag:yaml.org,2002:"
_STR, _TIMESTAMP, _VALUE, _MERGE = (_YAML_PREFIX + name for name in ("str", "timestamp", "value", "merge"))
_KEY_TAGS = frozenset({_STR, _TIMESTAMP, _VALUE})
_JSON_CONSTANTS = frozenset({"NaN", "Infinity", "-Infinity", "+Infinity"})
_JSON_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?")

_BaseLoader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class LimitExceeded(Exception):
    """A file over one of the limits; ``line`` is where the limit was crossed."""

    def __init__(self, message: str, line: int | None) -> None:
        super().__init__(message)
        self.line = line


def file_size_message(size: int) -> str:
    return f"the file is {size:,} bytes or more; a manifest file may be at most {MAX_FILE_BYTES:,} (limit: file size)"


def check_limits(text: str) -> None:
    """Raise ``LimitExceeded`` at the first limit ``text`` crosses (see the module), reading parser events only.

    Each anchor's expanded size and depth are kept when its value ends, so an alias adds what it stands for
    without anything being expanded; YAML syntax errors are left to the composer that follows."""
    count = _Count()
    events: Any = yaml.parse(text, Loader=_BaseLoader)
    for event in events:
        kind = type(event)
        line = event.start_mark.line + 1
        if kind is yaml.ScalarEvent:
            count.value(event.anchor, line)
        elif kind is yaml.AliasEvent:
            count.alias(event.anchor, line)
        elif kind is yaml.SequenceStartEvent or kind is yaml.MappingStartEvent:
            count.open(event.anchor, line)
        elif kind is yaml.SequenceEndEvent or kind is yaml.MappingEndEvent:
            count.close()
        elif kind is yaml.DocumentStartEvent:
            count.anchors.clear()


class _Count:
    """What a file's events add up to: values written, values aliases add, aliases, and the nesting open now."""

    def __init__(self) -> None:
        self.written = self.added = self.aliases = 0
        self.anchors: dict[str, tuple[int, int]] = {}  # anchor -> (expanded values, depth) of its finished value
        self.nesting: list[list[Any]] = []  # per open list or mapping: [anchor, values before it, depth below it]

    def value(self, anchor: str | None, line: int) -> None:
        self.written += 1
        if anchor is not None:
            self.anchors[anchor] = (1, 0)
        if self.written > MAX_VALUES:
            raise LimitExceeded(
                f"more than {MAX_VALUES:,} values in one file (limit: values per file); split it, or give many "
                "tasks as a TaskSuiteSet's data file",
                line,
            )

    def open(self, anchor: str | None, line: int) -> None:
        self.value(None, line)
        self.anchors.pop(anchor or "", None)
        self.nesting.append([anchor, self.written + self.added - 1, 0])
        if len(self.nesting) > MAX_DEPTH:
            raise LimitExceeded(depth_message(), line)

    def close(self) -> None:
        anchor, before, below = self.nesting.pop()
        if anchor is not None:
            self.anchors[anchor] = (self.written + self.added - before, below + 1)
        if self.nesting:
            self.nesting[-1][2] = max(self.nesting[-1][2], below + 1)

    def alias(self, anchor: str, line: int) -> None:
        self.aliases += 1
        if self.aliases > MAX_ALIASES:
            raise LimitExceeded(f"more than {MAX_ALIASES:,} alias uses in one file (limit: aliases)", line)
        size, depth = self._aliased(anchor, line)
        self.added += size
        if self.added > MAX_EXPANSION:
            raise LimitExceeded(
                f"aliases repeat more than {MAX_EXPANSION:,} values (limit: alias expansion); a manifest needs no "
                "alias repeated that often",
                line,
            )
        if len(self.nesting) + depth > MAX_DEPTH:
            raise LimitExceeded(depth_message(), line)
        if self.nesting:
            self.nesting[-1][2] = max(self.nesting[-1][2], depth)

    def _aliased(self, anchor: str, line: int) -> tuple[int, int]:
        """The expanded size and depth an alias stands for; an alias to a value still open is a cycle."""
        if anchor in self.anchors:
            return self.anchors[anchor]
        if any(frame[0] == anchor for frame in self.nesting):
            raise LimitExceeded(
                f"the alias *{anchor} is inside the value &{anchor} names: a structure that contains itself, "
                "which no JSON value can; write the value out instead",
                line,
            )
        return 1, 0  # an undefined alias: the composer reports it


@dataclass(frozen=True)
class Refusal:
    """A value the manifest may not hold, written at ``node``; when a key is the problem, ``node`` is the key
    and ``owner`` its mapping (whose path, with ``key``, names the field)."""

    node: yaml.Node
    message: str
    owner: yaml.Node | None = None
    key: str | None = None

    @property
    def line(self) -> int:
        return int(self.node.start_mark.line) + 1


class StrictLoader(_BaseLoader):
    """The safe loader, held to JSON values (see the module); repeated keys are noted too, since YAML would
    silently keep only the last one. ``refusals`` and ``duplicates`` grow as documents are constructed."""

    def __init__(self, stream: str, *, json_file: bool = False) -> None:
        super().__init__(stream)
        self.json_file = json_file
        self.duplicates: list[tuple[yaml.Node, yaml.Node]] = []
        self.refusals: list[Refusal] = []

    def refuse(self, node: yaml.Node, message: str) -> None:
        self.refusals.append(Refusal(node, message))

    def construct_mapping(self, node: yaml.Node, deep: bool = False) -> Any:
        if not isinstance(node, yaml.MappingNode):
            return super().construct_mapping(node, deep=deep)
        seen: set[str] = set()
        for key, _ in node.value:
            if isinstance(key, yaml.ScalarNode) and key.tag != _MERGE:
                if key.value in seen:
                    self.duplicates.append((node, key))
                seen.add(key.value)
        self.flatten_mapping(node)
        mapping: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag not in _KEY_TAGS:
                self.refusals.append(Refusal(key_node, _key_message(key_node), node, _key_text(key_node)))
                continue
            key = self.construct_object(key_node, deep=deep)
            mapping[key] = self.construct_object(value_node, deep=deep)
        return mapping

    def construct_yaml_str(self, node: yaml.Node) -> Any:
        value = super().construct_yaml_str(node)
        if self.json_file and not getattr(node, "style", None):  # a bare word in JSON is a number or nothing
            if value in _JSON_CONSTANTS:
                return self.refuse(node, non_finite_message(value))
            if _JSON_NUMBER.fullmatch(value):  # 1e5: a JSON number that YAML 1.1 would read as text
                return self.construct_json_number(node, value)
        problem = text_problem(value)
        if problem is not None:
            return self.refuse(node, problem)
        return value

    def construct_json_number(self, node: yaml.Node, text: str) -> Any:
        value = decode_json(text)
        if isinstance(value, Unusable):
            return self.refuse(node, value.message)
        return value

    def construct_yaml_int(self, node: yaml.Node) -> Any:
        try:
            value = super().construct_yaml_int(node)
        except ValueError:
            digits = sum(char.isdigit() for char in node.value)
            if digits > MAX_INT_DIGITS:
                return self.refuse(node, int_digits_message(digits))
            return self.refuse(node, f"{node.value!r} is not an integer")
        if not -_INT_BOUND < value < _INT_BOUND:
            return self.refuse(node, f"an integer of more than {MAX_INT_DIGITS:,} digits; reconciler reads no more")
        return value

    def construct_yaml_float(self, node: yaml.Node) -> Any:
        try:
            value = super().construct_yaml_float(node)
        except ValueError:
            return self.refuse(node, f"{node.value!r} is not a number")
        if not math.isfinite(value):
            return self.refuse(node, non_finite_message(node.value))
        return value

    def construct_yaml_bool(self, node: yaml.Node) -> Any:
        try:
            return super().construct_yaml_bool(node)
        except KeyError:
            return self.refuse(node, f"{node.value!r} is not a boolean")

    def construct_not_json(self, node: yaml.Node) -> None:
        tag = _shown_tag(node.tag)
        self.refuse(
            node,
            f"{tag} is not a JSON type: a manifest holds strings, numbers, booleans, null, lists and mappings only",
        )


StrictLoader.add_constructor(_STR, StrictLoader.construct_yaml_str)
StrictLoader.add_constructor(_TIMESTAMP, StrictLoader.construct_yaml_str)
StrictLoader.add_constructor(_VALUE, StrictLoader.construct_yaml_str)
StrictLoader.add_constructor(_YAML_PREFIX + "int", StrictLoader.construct_yaml_int)
StrictLoader.add_constructor(_YAML_PREFIX + "float", StrictLoader.construct_yaml_float)
StrictLoader.add_constructor(_YAML_PREFIX + "bool", StrictLoader.construct_yaml_bool)
for _tag in ("set", "binary", "omap", "pairs"):
    StrictLoader.add_constructor(_YAML_PREFIX + _tag, StrictLoader.construct_not_json)
StrictLoader.add_constructor(None, StrictLoader.construct_not_json)


def _shown_tag(tag: str) -> str:
    return "!!" + tag.removeprefix(_YAML_PREFIX) if tag.startswith(_YAML_PREFIX) else tag


def _key_text(node: yaml.Node) -> str | None:
    return str(node.value) if isinstance(node, yaml.ScalarNode) else None


def _key_message(node: yaml.Node) -> str:
    if not isinstance(node, yaml.ScalarNode):
        return "a key must be a string, not a list or a mapping"
    read_as = {"null": "null", "bool": "a boolean", "int": "a number", "float": "a number"}
    what = read_as.get(node.tag.removeprefix(_YAML_PREFIX)) if node.tag.startswith(_YAML_PREFIX) else None
    if what is None:
        return f"the key {node.value!r} is tagged {_shown_tag(node.tag)}; a key must be a string"
    return f"YAML reads the key {node.value!r} as {what}; a key must be a string: quote it ({json.dumps(node.value)})"
