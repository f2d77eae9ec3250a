"""Reading a data file's rows (JSONL, CSV, TSV) and collecting its problems, for ``reconciler.datasource``.

A row is a ``dict`` of column to value, with its line; what makes a row a task, and rows a suite, is the
package's. The format rules are in the package's docstring.
"""

from __future__ import annotations

import csv
import heapq
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from reconciler.datasource.values import UnusableValue, Where, checked_json, dotted
from reconciler.encoding import is_plain_row
from reconciler.errors import Problem

__all__ = ["MAX_PROBLEMS_PER_FILE", "Reporter", "columns_text", "did_you_mean", "json_type", "read_rows", "stdlib_row"]

#: After this many problems in one data file the rest are counted, not listed: one systematic mistake in a
#: 100,000-row file should not print 100,000 lines.
MAX_PROBLEMS_PER_FILE = 50


class Reporter:
    """Collects a data file's problems, up to ``MAX_PROBLEMS_PER_FILE``, then counts the rest.

    Problems come in line order, except the ones only the whole file can decide (``late``: is a column missing
    from some rows or from all?), which are merged in by line at the end, so the ones listed are the file's
    first, whichever way they were found."""

    def __init__(self, display: str, address: str, problems: list[Problem]) -> None:
        self.display = display
        self.address = address
        self.problems = problems
        self.count = 0
        self._kept: list[Problem] = []
        self._late: list[Problem] = []

    def __call__(self, line: int | None, message: str, field: str | None = None) -> None:
        self.count += 1
        if self.count <= MAX_PROBLEMS_PER_FILE:
            self._kept.append(Problem(self.display, line, self.address, field, message))

    def late(self, line: int | None, message: str, field: str | None = None) -> None:
        self._late.append(Problem(self.display, line, self.address, field, message))

    def finish(self) -> None:
        total = self.count + len(self._late)
        if self._late:
            self._late.sort(key=_line_order)
            self._kept = list(heapq.merge(self._kept, self._late, key=_line_order))[:MAX_PROBLEMS_PER_FILE]
        self.problems.extend(self._kept)
        hidden = total - len(self._kept)
        if hidden > 0:
            self.problems.append(
                Problem(self.display, None, self.address, None, f"... and {hidden} more problems in this file")
            )


def _line_order(problem: Problem) -> float:
    return problem.line if problem.line is not None else float("inf")


def read_rows(
    data: Path, fmt: str, report: Reporter, named: list[tuple[str, str]]
) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line, row) for every row, whatever the format; ``named`` are the (field, column) a header must have."""
    if fmt == "jsonl":
        return _jsonl_rows(data, report)
    return _delimited_rows(data, "\t" if fmt == "tsv" else ",", report, named)


def _jsonl_rows(data: Path, report: Reporter) -> Iterator[tuple[int, dict[str, Any]]]:
    with data.open("rb") as handle:
        for number, raw in enumerate(handle, 1):
            try:
                row = orjson.loads(raw)
            except orjson.JSONDecodeError:
                row = None
            if type(row) is not dict or not is_plain_row(row):
                row = stdlib_row(number, raw, report)
                if row is None:
                    continue
            yield number, row


def stdlib_row(number: int, raw: bytes, report: Reporter) -> dict[str, Any] | None:
    """A line as the standard library reads it, or None when it is blank or after reporting why it is no row.

    The reference for what a row is: every line orjson refuses or might read differently comes here, so the
    accepted inputs and the wording of every problem are the standard library's, less the values no later step
    could hash or send (``values``: NaN, huge integers, lone surrogates, deep nesting)."""
    if not raw.strip():
        return None
    try:
        row = checked_json(raw.decode("utf-8-sig" if number == 1 else "utf-8"))  # editors add BOMs
    except UnicodeDecodeError:
        report(number, "not UTF-8 text")
        return None
    except json.JSONDecodeError as err:
        report(number, f"invalid JSON: {err.msg} (column {err.colno})")
        return None
    except UnusableValue as err:
        report(number, f"{_in_column(err.path)}{err}")
        return None
    if not isinstance(row, dict):
        report(number, f"a row must be a JSON object, not {json_type(row)}")
        return None
    return row


def _in_column(path: Where) -> str:
    if not path:
        return ""
    inside = f" at {dotted(path[1:])}" if len(path) > 1 else ""
    return f"in column {path[0]!r}{inside}: "


def _delimited_rows(
    data: Path, delimiter: str, report: Reporter, named: list[tuple[str, str]]
) -> Iterator[tuple[int, dict[str, Any]]]:
    """The rows of a CSV or TSV file. A header without a column the spec names is one problem for each such
    column, and then no row is used (every one would lack it); the rows' shapes are still checked."""
    usable = True
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
                    usable = _header_has(header, named, line, report)
                    continue
                if len(values) != len(header):
                    report(line, f"the row has {len(values)} fields; the header has {len(header)}")
                    continue
                if usable:
                    yield line, dict(zip(header, values, strict=True))
        except csv.Error as err:
            report(start, f"unreadable {'TSV' if delimiter == chr(9) else 'CSV'}: {err}")
            return
        except UnicodeDecodeError:
            report(start, "not UTF-8 text")
            return
    if header is None:
        report(None, "the file is empty; expected a header row naming the columns")


def _header_ok(header: list[str], line: int, report: Reporter) -> bool:
    seen: set[str] = set()
    for name in header:
        if name in seen:
            report(line, f"the header names column {name!r} twice")
            return False
        seen.add(name)
    return True


def _header_has(header: list[str], named: list[tuple[str, str]], line: int, report: Reporter) -> bool:
    """Whether the header has every column the spec names; else one problem per missing column."""
    present = set(header)
    missing = [(where, column) for where, column in named if column not in present]
    for where, column in dict.fromkeys(missing):
        hint = did_you_mean(column, header)
        report(line, f"the header has no column {column!r}{hint}; {columns_text('its columns:', header)}", where)
    return not missing


def did_you_mean(column: str, columns: list[str]) -> str:
    import difflib  # imported here: only a file with a missing column needs it

    close = [c for c in columns if c.casefold() == column.casefold()] or difflib.get_close_matches(column, columns, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def columns_text(label: str, columns: list[str], most: int = 20) -> str:
    """``label`` and the columns, the first ``most`` of them."""
    if not columns:
        return f"{label} none"
    shown = ", ".join(repr(c) for c in columns[:most])
    more = f" and {len(columns) - most} more" if len(columns) > most else ""
    return f"{label} {shown}{more}"


def json_type(value: Any) -> str:
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
