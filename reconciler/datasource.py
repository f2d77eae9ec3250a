"""The rows of a TaskSuiteSet's data file, turned into task suites: one ``Resource`` each.

Real labelling jobs have tens of thousands of rows, so this module streams the file once, never runs JSON
Schema per row (the set's template and options were validated once, as part of the manifest) and hashes each
suite with ``encoding.SpecHasher``, which renders the canonical text shared by a set's suites only once.

Rules a data file must follow, each broken one reported as a ``Problem`` with the data file's line:

- JSONL: one JSON object per line, blank lines skipped. CSV and TSV: a header row; every value is a string.
  TSV has no quoting (IANA ``text/tab-separated-values``), so quotes inside values are kept as typed.
- The ``key`` column exists in every row, is a string or an integer, and is unique in the file: it names
  the task, and through it the suite, so the same row always lands in the same resource.
- Suites are ``tasks_per_suite`` consecutive rows (default 1, named by the first row's key) or the rows
  sharing a ``group_by`` value (named by that value, in order of first appearance). Appending rows therefore
  only adds suites, except that a trailing suite with fewer than ``tasks_per_suite`` rows grows.
- A suite's key becomes part of its address ``TaskSuiteSet/<set>/<key>``: no ``/``, no whitespace, not empty.

The generated specs share their template values and ``options`` dict between suites to keep 100,000 suites
small in memory: treat them as read-only.

Rows are decoded with orjson, several times faster than the standard library, but only where the two provably
agree: orjson is stricter than ``json`` (no NaN, no lone surrogates, integers beyond 64 bits read as floats),
so a row orjson refuses, or one holding anything but strings, integers, booleans and nulls
(``encoding.is_plain_row``), is read by the standard library. Accepted inputs, problems and content hashes
are therefore the same whichever path a row takes.
"""

from __future__ import annotations

import csv
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from reconciler.encoding import SpecHasher, is_plain_row
from reconciler.errors import Problem
from reconciler.kinds import TASK_SUITE_SET, TaskSuiteSetSpec
from reconciler.resources import Resource, SourceRef

FORMAT_OF_SUFFIX = {".jsonl": "jsonl", ".csv": "csv", ".tsv": "tsv"}

#: After this many problems in one data file the rest are counted, not listed: one systematic mistake in a
#: 100,000-row file should not print 100,000 lines.
MAX_PROBLEMS_PER_FILE = 50

_UNSAFE_KEY = re.compile(r"[/\s]")
_DECODE = json.JSONDecoder().decode


class SourceError(ValueError):
    """The ``source`` of a TaskSuiteSet cannot be used; the message says why, for the manifest's line."""


@dataclass
class SuiteSet:
    """What a data file yielded: one resource per suite by address, in file order, and every problem found on
    the way."""

    suites: dict[str, Resource] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)


def resolve_source(source: str, manifest: Path, root: Path) -> Path:
    """The data file, refused unless it resolves (symlinks included) to an existing file under ``root``.

    The root check keeps a manifest from reading arbitrary files of the machine that runs the pipeline
    (``source: ../../../etc/passwd`` in a pull request).
    """
    candidate = (manifest.parent / source).resolve()
    if not candidate.is_relative_to(root.resolve()):
        raise SourceError(
            f"{source!r} resolves outside the manifest root {root}; data files must live under the "
            "directory of the manifests"
        )
    if not candidate.is_file():
        raise SourceError(f"{source!r}: no such file (looked for {candidate})")
    return candidate


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
    spec: TaskSuiteSetSpec, data: Path, fmt: str, *, display: str, address: str, provider: str
) -> SuiteSet:
    """Read ``data`` once and build the resource of every suite of the set at ``address`` (each at
    ``address/key``), collecting every problem instead of stopping.

    The resources are built here rather than by the manifest so that 100,000 suites are not first built as
    one kind of object and then copied into another."""
    out = SuiteSet()
    report = _Reporter(display, address, out.problems)
    factory = _SuiteFactory(spec, address, provider, display)
    if fmt == "jsonl" and _one_row_per_suite(spec) and factory.hasher.rows_fast:
        _row_suites(spec, data, factory, report, out.suites)
    else:
        rows = _read_rows(data, fmt, report)
        groups = _group(spec, rows, report) if spec.group_by else _chunk(spec, rows, report)
        for key, tasks, lines in groups:
            resource = factory.build(key, tasks, lines)
            out.suites[resource.address] = resource
    report.finish()
    return out


def _one_row_per_suite(spec: TaskSuiteSetSpec) -> bool:
    return not spec.group_by and spec.input_fields is None and (spec.tasks_per_suite or 1) == 1


def _row_suites(
    spec: TaskSuiteSetSpec, data: Path, factory: _SuiteFactory, report: _Reporter, suites: dict[str, Resource]
) -> None:
    """The common case, one JSONL row per suite, as one loop with everything it calls bound to locals.

    One function, not helpers: at 100,000 rows the generator, per-row calls and attribute lookups of the
    general path cost as much as the work itself. Only rows that pass every check stay in this loop; anything
    unusual (a row orjson refuses or that holds floats or nested values, a missing, repeated or unusable key)
    is handed to the general path's own functions, so it gets exactly the same treatment and problems there.
    A key is unique when its address is not yet in ``suites``, which spares a second table of 100,000 keys.
    """
    checker = _Rows(spec, report, keys_name_suites=True)
    key_name, unsafe, loads, plain_row = spec.key, _UNSAFE_KEY.search, orjson.loads, is_plain_row
    base, options, spec_hash, row_hash = factory.base, factory.options, factory.hasher, factory.hasher.of_plain_row
    address_prefix, provider, display = factory.address_prefix, factory.provider, factory.display
    new_resource, new_source, kind = Resource, SourceRef, TASK_SUITE_SET
    with data.open("rb") as handle:
        for number, raw in enumerate(handle, 1):
            try:
                row = loads(raw)
            except orjson.JSONDecodeError:
                row = None
            plain = type(row) is dict and plain_row(row)
            if not plain:
                row = _stdlib_row(number, raw, report)
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
            suites[address] = new_resource(address, kind, provider, suite, digest, new_source(display, number))


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


# --- reading rows -------------------------------------------------------------------------------------------


class _Reporter:
    """Collects a data file's problems, up to ``MAX_PROBLEMS_PER_FILE``, then counts the rest."""

    def __init__(self, display: str, address: str, problems: list[Problem]) -> None:
        self.display = display
        self.address = address
        self.problems = problems
        self.count = 0

    def __call__(self, line: int | None, message: str, field: str | None = None) -> None:
        self.count += 1
        if self.count <= MAX_PROBLEMS_PER_FILE:
            self.problems.append(Problem(self.display, line, self.address, field, message))

    def finish(self) -> None:
        hidden = self.count - MAX_PROBLEMS_PER_FILE
        if hidden > 0:
            self.problems.append(
                Problem(self.display, None, self.address, None, f"... and {hidden} more problems in this file")
            )


def _read_rows(data: Path, fmt: str, report: _Reporter) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line, row) for every row, whatever the format."""
    if fmt == "jsonl":
        return _jsonl_rows(data, report)
    return _delimited_rows(data, "\t" if fmt == "tsv" else ",", report)


def _jsonl_rows(data: Path, report: _Reporter) -> Iterator[tuple[int, dict[str, Any]]]:
    with data.open("rb") as handle:
        for number, raw in enumerate(handle, 1):
            try:
                row = orjson.loads(raw)
            except orjson.JSONDecodeError:
                row = None
            if type(row) is not dict or not is_plain_row(row):
                row = _stdlib_row(number, raw, report)
                if row is None:
                    continue
            yield number, row


def _stdlib_row(number: int, raw: bytes, report: _Reporter) -> dict[str, Any] | None:
    """A line as the standard library reads it, or None when it is blank or after reporting why it is no row.

    The reference for what a row is: every line orjson refuses or might read differently comes here, so the
    accepted inputs and the wording of every problem are the standard library's."""
    if not raw.strip():
        return None
    try:
        row = _DECODE(raw.decode("utf-8-sig" if number == 1 else "utf-8"))  # editors add BOMs
    except UnicodeDecodeError:
        report(number, "not UTF-8 text")
        return None
    except json.JSONDecodeError as err:
        report(number, f"invalid JSON: {err.msg} (column {err.colno})")
        return None
    if not isinstance(row, dict):
        report(number, f"a row must be a JSON object, not {_json_type(row)}")
        return None
    return row


def _delimited_rows(data: Path, delimiter: str, report: _Reporter) -> Iterator[tuple[int, dict[str, Any]]]:
    with data.open(newline="", encoding="utf-8-sig") as handle:
        if delimiter == "\t":
            reader = csv.reader(handle, delimiter=delimiter, quoting=csv.QUOTE_NONE, strict=True)
        else:
            reader = csv.reader(handle, delimiter=delimiter, strict=True)
        header: list[str] | None = None
        start = 1
        try:
            for values in reader:
                line, start = start, reader.line_num + 1
                if not values:
                    continue
                if header is None:
                    header = values
                    if not _header_ok(header, line, report):
                        return
                    continue
                if len(values) != len(header):
                    report(line, f"the row has {len(values)} fields; the header has {len(header)}")
                    continue
                yield line, dict(zip(header, values, strict=True))
        except csv.Error as err:
            report(start, f"unreadable {'TSV' if delimiter == chr(9) else 'CSV'}: {err}")
        except UnicodeDecodeError:
            report(start, "not UTF-8 text")
    if header is None:
        report(None, "the file is empty; expected a header row naming the columns")


def _header_ok(header: list[str], line: int, report: _Reporter) -> bool:
    seen: set[str] = set()
    for name in header:
        if name in seen:
            report(line, f"the header names column {name!r} twice")
            return False
        seen.add(name)
    return True


def _json_type(value: Any) -> str:
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an array"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, str):
        return "a string"
    return "a number"


# --- rows to suites -----------------------------------------------------------------------------------------


_Group = tuple[str, list[dict[str, Any]], list[int]]


class _Rows:
    """Checks each row's key and turns the row into a task; remembers where every key was first seen."""

    def __init__(self, spec: TaskSuiteSetSpec, report: _Reporter, *, keys_name_suites: bool) -> None:
        self.key = spec.key
        self.fields = spec.input_fields
        self.report = report
        self.keys_name_suites = keys_name_suites
        self.first_line: dict[str, int] = {}

    def task(self, line: int, row: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
        """(key, task) of a row, or None after reporting why the row cannot be used."""
        if self.key not in row:
            self.report(line, f"the row has no {self.key!r} column (spec.key)")
            return None
        key = _key_text(row[self.key])
        if key is None:
            self.report(line, f"{self.key!r} must be a string or an integer, not {_json_type(row[self.key])}")
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
            self.report(line, f"the row has no {missing[0]!r} column (listed in spec.input_fields)")
            return None
        return key, {"input_values": {name: row[name] for name in self.fields}}


def _key_text(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def _key_ok(key: str, report: _Reporter, line: int, *, what: str) -> bool:
    if not key or _UNSAFE_KEY.search(key):
        report(line, f"{what} {key!r} cannot name a suite: it must be non-empty, without '/' or whitespace")
        return False
    return True


def _chunk(spec: TaskSuiteSetSpec, rows: Iterator[tuple[int, dict[str, Any]]], report: _Reporter) -> list[_Group]:
    size = spec.tasks_per_suite or 1
    checker = _Rows(spec, report, keys_name_suites=True)
    groups: list[_Group] = []
    current: _Group | None = None
    for line, row in rows:
        made = checker.task(line, row)
        if made is None:
            continue
        key, task = made
        if current is None or len(current[1]) >= size:
            current = (key, [], [])
            groups.append(current)
        current[1].append(task)
        current[2].append(line)
    return groups


def _group(spec: TaskSuiteSetSpec, rows: Iterator[tuple[int, dict[str, Any]]], report: _Reporter) -> list[_Group]:
    column = spec.group_by
    assert column is not None
    checker = _Rows(spec, report, keys_name_suites=False)
    groups: dict[str, _Group] = {}
    for line, row in rows:
        made = checker.task(line, row)
        if made is None:
            continue
        if column not in row:
            report(line, f"the row has no {column!r} column (spec.group_by)")
            continue
        value = _key_text(row[column])
        if value is None:
            report(line, f"{column!r} must be a string or an integer, not {_json_type(row[column])}")
            continue
        group = groups.get(value)
        if group is None:
            if not _key_ok(value, report, line, what=f"{column} value"):
                continue
            group = groups[value] = (value, [], [])
        group[1].append(made[1])
        group[2].append(line)
    return list(groups.values())


class _SuiteFactory:
    """Builds the suite resources of one set from its template and options.

    No per-suite model validation: the template and options were validated once, and every task is
    ``{"input_values": <a JSON object or CSV row>}``, which the Task model always accepts, so validating each
    suite would re-check, once per row, what cannot fail.
    """

    def __init__(self, spec: TaskSuiteSetSpec, set_address: str, provider: str, display: str) -> None:
        self.address_prefix = f"{set_address}/"
        self.provider = provider
        self.display = display
        self.base = spec.template.model_dump(exclude_none=True)
        self.options = spec.options.model_dump()
        self.hasher = SpecHasher({**self.base, "options": self.options})

    def build(self, key: str, tasks: list[dict[str, Any]], lines: list[int]) -> Resource:
        spec = {**self.base, "tasks": tasks, "options": self.options}
        digest = self.hasher(tasks)
        source = SourceRef(self.display, lines[0])
        return Resource(self.address_prefix + key, TASK_SUITE_SET, self.provider, spec, digest, source)
