"""The rows of a TaskSuiteSet's data file, turned into task suites: one ``Resource`` each.

Real labelling jobs have tens of thousands of rows, so this module streams the file once, never runs JSON
Schema per row (the set's template and options were validated once, as part of the manifest) and hashes each
suite with ``encoding.SpecHasher``, which renders the canonical text shared by a set's suites only once.

Rules a data file must follow, each broken one reported as a ``Problem`` with the data file's line:

- JSONL: one JSON object per line, blank lines skipped. CSV and TSV: a header row; every value is a string.
  TSV has no quoting (IANA ``text/tab-separated-values``), so quotes inside values are kept as typed.
- The ``key`` column exists in every row, is a string or an integer, and is unique in the file: it names
  the task, and through it the suite, so the same row always lands in the same resource.
- A column the spec names (``key``, ``group_by``, ``input_fields``) that a CSV or TSV header lacks is one
  problem at the header, with the columns there are; one that no JSONL row has is one problem too (a misspelt
  name, not a thousand bad rows); one that only some rows lack is a problem per row.
- Suites are ``tasks_per_suite`` consecutive rows (default 1, named by the first row's key) or the rows
  sharing a ``group_by`` value (named by that value, in order of first appearance). A suite of several rows
  keeps its rows' keys (``Resource.row_keys``): when appended rows make a created trailing suite grow, the
  planner keeps the suite as created and puts the new rows in a suite of their own, so appending rows only
  ever adds suites.
- A suite's key becomes part of its address ``TaskSuiteSet/<set>/<key>``: no ``/``, no whitespace, not empty.
- A JSONL value no later step could hash or send is a problem of its row (``values``): NaN or Infinity, an
  integer of more than 4,300 digits, a lone surrogate, nesting deeper than 64 levels. CSV and TSV cells are
  text, so a cell ``NaN`` is the three letters, sent as such.
- ``source`` must name a file under a directory the user named (``resolve_source``).

The generated specs share their template values and ``options`` dict between suites to keep 100,000 suites
small in memory: treat them as read-only.

Rows are decoded with orjson, several times faster than the standard library, but only where the two provably
agree: orjson is stricter than ``json`` (no NaN, no lone surrogates, integers beyond 64 bits read as floats),
so a row orjson refuses, or one holding anything but strings, integers, booleans and nulls
(``encoding.is_plain_row``), is read by the standard library. Accepted inputs, problems and content hashes
are therefore the same whichever path a row takes.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from reconciler.datasource.rows import (
    MAX_PROBLEMS_PER_FILE,
    Reporter,
    columns_text,
    did_you_mean,
    json_type,
    read_rows,
    stdlib_row,
)
from reconciler.datasource.values import text_problem
from reconciler.encoding import SpecHasher, is_plain_row
from reconciler.errors import Problem
from reconciler.kinds import TASK_SUITE_SET, TaskSuiteSetSpec
from reconciler.resources import Resource, SourceRef

__all__ = [
    "FORMAT_OF_SUFFIX",
    "MAX_PROBLEMS_PER_FILE",
    "SourceError",
    "SuiteSet",
    "data_format",
    "display_source",
    "generate_suites",
    "resolve_source",
]

FORMAT_OF_SUFFIX = {".jsonl": "jsonl", ".csv": "csv", ".tsv": "tsv"}
#: The longest file name (one path component) and path, in bytes, that Linux and macOS take.
MAX_NAME_BYTES = 255
MAX_PATH_BYTES = 4096


_UNSAFE_KEY = re.compile(r"[/\s]")


class SourceError(ValueError):
    """The ``source`` of a TaskSuiteSet cannot be used; the message says why, for the manifest's line."""


@dataclass
class SuiteSet:
    """What a data file yielded: one resource per suite by address, in file order, and every problem found on
    the way."""

    suites: dict[str, Resource] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)


def resolve_source(source: str, manifest: Path, roots: Sequence[Path]) -> Path:
    """The data file, refused unless it resolves (symlinks included) to an existing file under one of ``roots``.

    The roots check keeps a manifest from reading arbitrary files of the machine that runs the pipeline
    (``source: ../../../etc/passwd`` in a pull request). The name is checked first, so that what the operating
    system would refuse (a NUL, a lone surrogate, an over-long name) is a problem, not a crash.
    """
    _check_source_name(source)
    try:
        candidate = (manifest.parent / source).resolve()
        allowed = [root.resolve() for root in roots]
    except (OSError, RuntimeError, ValueError) as err:
        raise SourceError(f"{source!r} cannot be resolved: {getattr(err, 'strerror', None) or err}") from None
    if not any(candidate.is_relative_to(root) for root in allowed):
        shown = ", ".join(str(root) for root in allowed)
        if len(allowed) == 1:
            where = f"the manifest root {shown}; data files must live under the directory of the manifests"
        else:
            where = f"the manifest roots {shown}; data files must live under a directory of the manifests"
        raise SourceError(f"{source!r} resolves outside {where}")
    try:
        found = candidate.is_file()
    except OSError as err:
        raise SourceError(f"{source!r} cannot be read: {err.strerror}") from None
    if not found:
        raise SourceError(f"{source!r}: no such file (looked for {candidate})")
    return candidate


def _check_source_name(source: str) -> None:
    """What no file name can hold, in words: the operating system would only raise."""
    if "\0" in source:
        raise SourceError(f"{source!r} holds a NUL character, which no file name can")
    problem = text_problem(source)
    if problem is not None:
        raise SourceError(f"{source!r} {problem}")
    for part in source.split("/"):
        if len(part.encode("utf-8")) > MAX_NAME_BYTES:
            shown = part[:40] + "..."
            raise SourceError(
                f"the name {shown!r} in source is {len(part.encode('utf-8'))} bytes long; a file name is at most "
                f"{MAX_NAME_BYTES}"
            )
    if len(source.encode("utf-8")) > MAX_PATH_BYTES:
        raise SourceError(f"source is {len(source.encode('utf-8'))} bytes long; a path is at most {MAX_PATH_BYTES}")


def data_format(spec: TaskSuiteSetSpec, data: Path) -> str:
    """``spec.format``, or the one the extension names; anything else must be said explicitly."""
    if spec.format is not None:
        return spec.format
    fmt = FORMAT_OF_SUFFIX.get(data.suffix.lower())
    if fmt is None:
        raise SourceError(
            f"cannot tell the format of {data.name!r} from its extension; set spec.format to jsonl, csv or tsv"
        )
    return fmt


def display_source(manifest_display: str, source: str) -> str:
    """The data file's path as the user would type it: next to the manifest path they gave."""
    return os.path.normpath(os.path.join(os.path.dirname(manifest_display), source))


def generate_suites(
    spec: TaskSuiteSetSpec,
    data: Path,
    fmt: str,
    *,
    display: str,
    address: str,
    provider: str,
    prevent_destroy: bool = False,
    ignore_changes: frozenset[str] = frozenset(),
    replace_on_change: bool = False,
) -> SuiteSet:
    """Read ``data`` once and build the resource of every suite of the set at ``address`` (each at
    ``address/key``), collecting every problem instead of stopping.

    The resources are built here rather than by the manifest so that 100,000 suites are not first built as
    one kind of object and then copied into another."""
    out = SuiteSet()
    report = Reporter(display, address, out.problems)
    factory = _SuiteFactory(spec, address, provider, display, prevent_destroy, ignore_changes, replace_on_change)
    checker = _Rows(spec, report, keys_name_suites=not spec.group_by)
    if fmt == "jsonl" and _one_row_per_suite(spec) and factory.hasher.rows_fast:
        _row_suites(spec, data, factory, checker, out.suites)
    else:
        rows = read_rows(data, fmt, report, _named_columns(spec))
        groups = _group(spec, rows, checker) if spec.group_by else _chunk(spec, rows, checker)
        chunked = not spec.group_by and (spec.tasks_per_suite or 1) > 1
        for key, tasks, lines, keys in groups:
            resource = factory.build(key, tasks, lines, tuple(keys) if chunked else ())
            out.suites[resource.address] = resource
    checker.finish(keyed=bool(out.suites))
    report.finish()
    return out


def _named_columns(spec: TaskSuiteSetSpec) -> list[tuple[str, str]]:
    """(field, column) of every column the spec names, which each row must have."""
    named = [("spec.key", spec.key)]
    if spec.group_by:
        named.append(("spec.group_by", spec.group_by))
    named.extend(("spec.input_fields", name) for name in spec.input_fields or ())
    return named


def _one_row_per_suite(spec: TaskSuiteSetSpec) -> bool:
    return not spec.group_by and spec.input_fields is None and (spec.tasks_per_suite or 1) == 1


def _row_suites(
    spec: TaskSuiteSetSpec, data: Path, factory: _SuiteFactory, checker: _Rows, suites: dict[str, Resource]
) -> None:
    """The common case, one JSONL row per suite, as one loop with everything it calls bound to locals.

    One function, not helpers: at 100,000 rows the generator, per-row calls and attribute lookups of the
    general path cost as much as the work itself. Only rows that pass every check stay in this loop; anything
    unusual (a row orjson refuses or that holds floats or nested values, a missing, repeated or unusable key)
    is handed to the general path's own functions, so it gets exactly the same treatment and problems there.
    A key is unique when its address is not yet in ``suites``, which spares a second table of 100,000 keys.
    """
    report = checker.report
    key_name, unsafe, loads, plain_row = spec.key, _UNSAFE_KEY.search, orjson.loads, is_plain_row
    base, options, spec_hash, row_hash = factory.base, factory.options, factory.hasher, factory.hasher.of_plain_row
    address_prefix, provider, display = factory.address_prefix, factory.provider, factory.display
    new_resource, new_source, kind = Resource, SourceRef, TASK_SUITE_SET
    guarded, ignored, replacing = factory.prevent_destroy, factory.ignore_changes, factory.replace_on_change
    with data.open("rb") as handle:
        for number, raw in enumerate(handle, 1):
            try:
                row = loads(raw)
            except orjson.JSONDecodeError:
                row = None
            plain = type(row) is dict and plain_row(row)
            if not plain:
                row = stdlib_row(number, raw, report)
                if row is None:
                    continue
            key = row.get(key_name)
            address = address_prefix + key if type(key) is str else None
            if address is None or address in suites or not key or unsafe(key):
                key = _checked_key(checker, suites, address_prefix, number, row)
                if key is None:
                    continue
                address = address_prefix + key
            tasks = [{"input_values": row}]
            digest = row_hash(row) if plain else spec_hash(tasks)
            suite = base.copy()
            suite["tasks"] = tasks
            suite["options"] = options
            suites[address] = new_resource(
                address, kind, provider, suite, digest, new_source(display, number), (), guarded, ignored, replacing
            )


def _checked_key(
    checker: _Rows, suites: dict[str, Resource], address_prefix: str, line: int, row: dict[str, Any]
) -> str | None:
    """``checker.task``'s verdict on a row's key, once told where the key was first used if ``_row_suites``
    took it without the checker."""
    key = _key_text(row.get(checker.key))
    earlier = suites.get(address_prefix + key) if key is not None else None
    if key is not None and earlier is not None and earlier.source.line is not None:
        checker.first_line.setdefault(key, earlier.source.line)
    made = checker.task(line, row)
    return None if made is None else made[0]


# --- rows to suites -----------------------------------------------------------------------------------------


#: A suite in the making: its key, its tasks, their lines, and their rows' keys.
_Group = tuple[str, list[dict[str, Any]], list[int], list[str]]


class _Rows:
    """Checks each row's key and turns the row into a task; remembers where every key was first seen.

    A row without a column the spec names is held back until the whole file is read (``finish``): a column no
    row has is a misspelt name, one problem; one that only some rows lack is a problem for each of them."""

    def __init__(self, spec: TaskSuiteSetSpec, report: Reporter, *, keys_name_suites: bool) -> None:
        self.key = spec.key
        self.fields = spec.input_fields
        self.group_by = spec.group_by
        self.report = report
        self.keys_name_suites = keys_name_suites
        self.first_line: dict[str, int] = {}
        self.keyed = False  # some row has the key column
        self.grouped = False  # some row has the group_by column
        self.fields_unseen = set(spec.input_fields or ())  # input_fields columns no row has had so far
        self.lacking: list[tuple[int, str, tuple[str, ...]]] = []  # (line, spec field, columns it lacks) per row
        self.columns_of: dict[str, list[str]] = {}  # spec field -> the columns of the first row lacking one

    def task(self, line: int, row: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
        """(key, task) of a row, or None after reporting why the row cannot be used."""
        if self.key not in row:
            self._lacks(line, "spec.key", (self.key,), row)
            return None
        self.keyed = True
        key = _key_text(row[self.key])
        if key is None:
            self.report(line, f"{self.key!r} must be a string or an integer, not {json_type(row[self.key])}")
            return None
        first = self.first_line.setdefault(key, line)
        if first != line:
            self.report(line, f"key {key!r} repeated; first used on line {first}")
            return None
        if self.keys_name_suites and not _key_ok(key, self.report, line, what="key"):
            return None
        if self.fields is None:
            return key, {"input_values": row}
        missing = [name for name in self.fields if name not in row]
        if missing:
            self.fields_unseen.intersection_update(missing)
            self._lacks(line, "spec.input_fields", tuple(missing), row)
            return None
        if self.fields_unseen:
            self.fields_unseen.clear()
        return key, {"input_values": {name: row[name] for name in self.fields}}

    def group(self, line: int, row: dict[str, Any]) -> str | None:
        """The ``group_by`` value of a row, or None after reporting why it has none."""
        column = self.group_by
        assert column is not None
        if column not in row:
            self._lacks(line, "spec.group_by", (column,), row)
            return None
        self.grouped = True
        value = _key_text(row[column])
        if value is None:
            self.report(line, f"{column!r} must be a string or an integer, not {json_type(row[column])}")
        return value

    def _lacks(self, line: int, where: str, columns: tuple[str, ...], row: dict[str, Any]) -> None:
        self.lacking.append((line, where, columns))
        if where not in self.columns_of:
            self.columns_of[where] = list(row)

    def finish(self, *, keyed: bool) -> None:
        """Report the rows held back for a missing column; ``keyed``: some row made a suite (so had the key)."""
        if not self.lacking:
            return
        nowhere = {
            "spec.key": () if keyed or self.keyed else (self.key,),
            "spec.group_by": () if self.grouped or self.group_by is None else (self.group_by,),
            "spec.input_fields": tuple(name for name in self.fields or () if name in self.fields_unseen),
        }
        counts: dict[tuple[str, str], int] = {}
        for _, where, columns in self.lacking:
            for column in columns:
                if column in nowhere[where]:
                    counts[(where, column)] = counts.get((where, column), 0) + 1
        told: set[tuple[str, str]] = set()
        for line, where, columns in self.lacking:
            everywhere = [c for c in columns if c in nowhere[where]]
            for column in everywhere:
                if (where, column) not in told:
                    told.add((where, column))
                    self.report.late(line, self._nowhere(column, where, counts[(where, column)]), where)
            somewhere = [c for c in columns if c not in nowhere[where]]
            if somewhere:
                self.report.late(line, _lacking_message(where, somewhere[0]))

    def _nowhere(self, column: str, where: str, rows: int) -> str:
        columns = self.columns_of[where]
        which = "the only row has" if rows == 1 else f"none of the {rows} rows has"
        return f"{which} the column {column!r}{did_you_mean(column, columns)}; {columns_text('this one has', columns)}"


def _lacking_message(where: str, column: str) -> str:
    if where == "spec.input_fields":
        return f"the row has no {column!r} column (listed in spec.input_fields)"
    return f"the row has no {column!r} column ({where})"


def _key_text(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def _key_ok(key: str, report: Reporter, line: int, *, what: str) -> bool:
    if not key or _UNSAFE_KEY.search(key):
        report(line, f"{what} {key!r} cannot name a suite: it must be non-empty, without '/' or whitespace")
        return False
    return True


def _chunk(spec: TaskSuiteSetSpec, rows: Iterator[tuple[int, dict[str, Any]]], checker: _Rows) -> list[_Group]:
    size = spec.tasks_per_suite or 1
    groups: list[_Group] = []
    current: _Group | None = None
    for line, row in rows:
        made = checker.task(line, row)
        if made is None:
            continue
        key, task = made
        if current is None or len(current[1]) >= size:
            current = (key, [], [], [])
            groups.append(current)
        current[1].append(task)
        current[2].append(line)
        current[3].append(key)
    return groups


def _group(spec: TaskSuiteSetSpec, rows: Iterator[tuple[int, dict[str, Any]]], checker: _Rows) -> list[_Group]:
    column = spec.group_by
    groups: dict[str, _Group] = {}
    for line, row in rows:
        made = checker.task(line, row)
        if made is None:
            continue
        value = checker.group(line, row)
        if value is None:
            continue
        group = groups.get(value)
        if group is None:
            if not _key_ok(value, checker.report, line, what=f"{column} value"):
                continue
            group = groups[value] = (value, [], [], [])
        group[1].append(made[1])
        group[2].append(line)
        group[3].append(made[0])
    return list(groups.values())


class _SuiteFactory:
    """Builds the suite resources of one set from its template and options.

    No per-suite model validation: the template and options were validated once, and every task is
    ``{"input_values": <a JSON object or CSV row>}``, which the Task model always accepts, so validating each
    suite would re-check, once per row, what cannot fail.
    """

    def __init__(
        self,
        spec: TaskSuiteSetSpec,
        set_address: str,
        provider: str,
        display: str,
        prevent_destroy: bool = False,
        ignore_changes: frozenset[str] = frozenset(),
        replace_on_change: bool = False,
    ) -> None:
        self.prevent_destroy = prevent_destroy
        self.ignore_changes = ignore_changes
        self.replace_on_change = replace_on_change
        self.address_prefix = f"{set_address}/"
        self.provider = provider
        self.display = display
        self.base = spec.template.model_dump(exclude_none=True)
        self.options = spec.options.model_dump()
        self.hasher = SpecHasher({**self.base, "options": self.options})

    def build(
        self, key: str, tasks: list[dict[str, Any]], lines: list[int], row_keys: tuple[str, ...] = ()
    ) -> Resource:
        spec = {**self.base, "tasks": tasks, "options": self.options}
        digest = self.hasher(tasks)
        source = SourceRef(self.display, lines[0])
        return Resource(
            self.address_prefix + key,
            TASK_SUITE_SET,
            self.provider,
            spec,
            digest,
            source,
            row_keys,
            self.prevent_destroy,
            self.ignore_changes,
            self.replace_on_change,
        )
