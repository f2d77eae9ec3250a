"""Whatever a pull request puts in the manifests or their data files, the command ends cleanly.

Generated inputs (hypothesis) go through the real command line, in-process: ``validate`` and ``plan``, the
providers pointing at the sandbox. Every input must end in exit 0 or exit 1, with one line per problem
(as many as the closing count says) or one ``Error:`` line; never "unexpected", "this is a bug" or a
traceback; and the sandbox must receive nothing. The generators aim at the edges the issue found: values JSON
has not (NaN, huge integers, lone surrogates, deep nesting), YAML's own types, tags and aliases, random text,
and data files (JSONL, CSV, TSV) with broken rows, odd headers and odd keys.

Reproducible: ``derandomize`` draws the same examples on every run, and no example database is kept.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import tempfile
from copy import deepcopy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from click.testing import CliRunner
from helpers.apply_project import offline_providers_yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.cli import cli

SETTINGS = settings(
    max_examples=80,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
SUMMARY_SUFFIX = "in the manifests; nothing was sent."


@dataclass(frozen=True)
class Raw:
    """Text written into a generated file as is: what ``json.dumps`` cannot write (NaN, 5,000 digits)."""

    text: str


def render(value: Any) -> str:
    """JSON text (which is YAML flow text) of a value whose leaves may be ``Raw``."""
    if isinstance(value, Raw):
        return value.text
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(key)}: {render(item)}" for key, item in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(render(item) for item in value) + "]"
    return json.dumps(value)


# --- values -------------------------------------------------------------------------------------------------

ODD_TEXT = st.sampled_from(["\ud800", "a\udcffb", "\x00", "\x1b[31mred\x1b[0m", "line\nbreak", "\u2028", "é", ""])
TEXT = st.one_of(st.text(max_size=12), ODD_TEXT)
JSON_TOKENS = st.one_of(
    st.sampled_from(["NaN", "Infinity", "-Infinity", "1e999", "-1e400", "1e5", "-0", "0.1", "1E-400"]),
    st.integers(4290, 4310).map(lambda digits: "9" * digits),
    st.integers(70, 1100).map(lambda depth: "[" * depth + "]" * depth),
)
YAML_TOKENS = st.sampled_from(
    [
        "!!set {a, b}",
        "!!binary aGVsbG8=",
        "!!omap [{a: 1}]",
        "!!pairs [{a: 1}]",
        "!!python/object/apply:os.system [echo]",
        "!!python/name:os.system",
        "!Ref x",
        ".nan",
        "-.inf",
        "1.0e+999",
        "2024-01-01",
        "2001-12-14t21:59:43.10-05:00",
        "!!timestamp 2024-01-01",
        "!!int abc",
        "!!float x",
        "!!bool maybe",
        "!!str [1]",
        "!!null x",
        "=",
        "{1: a}",
        "{on: a}",
        "{null: a}",
        "{[1]: a}",
        "{<<: {a: 1}, b: 2}",
        "{<<: 1}",
        "*nowhere",
        "&k [1, *k]",
        "0x" + "f" * 4000,
        "0b" + "1" * 15000,
        "1:20:30",
        '"\\ud800"',
        '"\\x00"',
    ]
)
LEAVES = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), TEXT)


def values(tokens: st.SearchStrategy[str]) -> st.SearchStrategy[Any]:
    leaves = st.one_of(LEAVES, ODD_TEXT, tokens.map(Raw))
    return st.recursive(
        leaves,
        lambda children: st.one_of(st.lists(children, max_size=3), st.dictionaries(TEXT, children, max_size=3)),
        max_leaves=8,
    )


def json_safe(value: Any) -> Any:
    """Floats as ``Raw`` text, so NaN and infinity are written the way a JSON file would (``NaN``)."""
    if isinstance(value, float):
        return Raw({"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}.get(repr(value), repr(value)))
    if isinstance(value, dict):
        return {key: json_safe(item) for key, item in value.items()}
    if isinstance(value, list):
        return [json_safe(item) for item in value]
    return value


# --- documents ----------------------------------------------------------------------------------------------

BASES: dict[str, dict[str, Any]] = {
    "TaskSuite": {
        "apiVersion": "reconciler/v1",
        "kind": "TaskSuite",
        "metadata": {"name": "s"},
        "spec": {"pool_id": "1", "overlap": 1, "tasks": [{"input_values": {"x": "y"}}]},
    },
    "PerfTestTask": {
        "apiVersion": "reconciler/v1",
        "kind": "PerfTestTask",
        "metadata": {"name": "t"},
        "spec": {"project_id": 1, "parallel": False, "case_id_list": [1]},
    },
    "TaskSuiteSet": {
        "apiVersion": "reconciler/v1",
        "kind": "TaskSuiteSet",
        "metadata": {"name": "set"},
        "spec": {"source": "rows.jsonl", "key": "id", "template": {"pool_id": "1", "overlap": 1}},
    },
}
PATHS = [
    ("apiVersion",),
    ("kind",),
    ("metadata",),
    ("metadata", "name"),
    ("metadata", "provider"),
    ("metadata", "lifecycle"),
    ("spec",),
    ("spec", "pool_id"),
    ("spec", "overlap"),
    ("spec", "tasks"),
    ("spec", "tasks", 0, "input_values"),
    ("spec", "tasks", 0, "input_values", "x"),
    ("spec", "name"),
    ("spec", "project_id"),
    ("spec", "case_id_list"),
    ("spec", "source"),
    ("spec", "key"),
    ("spec", "group_by"),
    ("spec", "tasks_per_suite"),
    ("spec", "input_fields"),
    ("spec", "template"),
    ("spec", "options"),
    ("unknown",),
]


def with_value(document: dict[str, Any], path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    """A copy of ``document`` with ``value`` at ``path``, made wherever the path leads."""
    copy = deepcopy(document)
    here: Any = copy
    for part in path[:-1]:
        inside_dict = isinstance(here, dict) and isinstance(here.get(part), dict | list)
        inside_list = isinstance(here, list) and isinstance(part, int) and part < len(here)
        if not (inside_dict or inside_list):
            return copy
        here = here[part]
    if isinstance(here, dict):
        here[path[-1]] = value
    return copy


@st.composite
def documents(draw: st.DrawFn, tokens: st.SearchStrategy[str]) -> Any:
    """A valid document of some kind, its free-form values generated (a suite's ``input_values``: what gets
    hashed and sent), and up to two fields anywhere replaced by generated values."""
    document: Any = BASES[draw(st.sampled_from(sorted(BASES)))]
    inputs = draw(st.dictionaries(TEXT, values(tokens), min_size=1, max_size=4))
    document = with_value(document, ("spec", "tasks", 0, "input_values"), inputs)
    for _ in range(draw(st.integers(0, 2))):
        document = with_value(document, draw(st.sampled_from(PATHS)), draw(values(tokens)))
    return document


# --- running ------------------------------------------------------------------------------------------------


def assert_ends_cleanly(files: dict[str, bytes], sandbox: Any) -> None:
    """``validate`` and ``plan`` over ``files`` (with the providers added) end as the module says."""
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        (root / "providers.yaml").write_text(offline_providers_yaml(sandbox.url))
        for name, content in files.items():
            (root / name).write_bytes(content)
        for command in (["validate", "."], ["plan", ".", "--state", str(root / "state" / "s.db")]):
            with contextlib.chdir(root):
                result = CliRunner().invoke(cli, command, env={"NO_COLOR": "1"})
            if result.exception is not None and not isinstance(result.exception, SystemExit):
                raise AssertionError(f"{command} raised {result.exception!r}") from result.exception
            assert result.exit_code in (0, 1), (command, result.exit_code, result.output)
            _assert_one_line_per_problem(result.stderr if result.exit_code else "")
            assert_not_a_bug(result.output)
    assert sandbox.stats()["total"] == 0


def assert_not_a_bug(output: str) -> None:
    """What the CLI prints for an error it did not expect (``cli.options.guarded``), or a raw traceback."""
    assert "Error: unexpected " not in output and "This is a bug" not in output, output
    assert "Traceback (most recent call last)" not in output, output


def _assert_one_line_per_problem(stderr: str) -> None:
    lines = stderr.splitlines()
    if not lines:
        return
    if lines[-1].endswith(SUMMARY_SUFFIX):
        count = int(lines[-1].split()[0])
        assert count == len(lines) - 1 and all(lines[:-1]), stderr
    else:
        assert len(lines) == 1 and lines[0].startswith("Error: "), stderr


# --- manifests ----------------------------------------------------------------------------------------------


@SETTINGS
@given(document=documents(JSON_TOKENS))
def test_any_json_manifest_ends_in_exit_0_or_1_with_one_line_per_problem(document: Any, sandbox: Any) -> None:
    text = render(json_safe(document))
    assert_ends_cleanly({"m.json": text.encode("utf-8", "surrogatepass"), "rows.jsonl": b'{"id": "r1"}\n'}, sandbox)


@SETTINGS
@given(
    document=documents(st.one_of(JSON_TOKENS, YAML_TOKENS)),
    extra=st.lists(st.one_of(YAML_TOKENS, st.text(max_size=30)), max_size=2),
)
def test_any_yaml_manifest_ends_in_exit_0_or_1_with_one_line_per_problem(
    document: Any, extra: list[str], sandbox: Any
) -> None:
    """Flow-style YAML of a generated document, then maybe more documents: YAML tokens, or random text."""
    text = render(json_safe(document)) + "".join(f"\n---\n{more}" for more in extra) + "\n"
    assert_ends_cleanly({"m.yaml": text.encode("utf-8", "surrogatepass"), "rows.jsonl": b'{"id": "r1"}\n'}, sandbox)


@SETTINGS
@given(noise=st.binary(max_size=200), text=st.text(max_size=200))
def test_any_bytes_after_an_api_version_end_in_exit_0_or_1(noise: bytes, text: str, sandbox: Any) -> None:
    header = b"apiVersion: reconciler/v1\nkind: TaskSuite\n"
    assert_ends_cleanly(
        {"a.yaml": header + noise, "b.yaml": header + text.encode("utf-8", "surrogatepass"), "c.json": noise},
        sandbox,
    )


# --- data files ---------------------------------------------------------------------------------------------

COLUMN = st.one_of(st.sampled_from(["id", "text", "group", "", "id "]), st.text(max_size=6))


@st.composite
def set_specs(draw: st.DrawFn, source: str, columns: list[str]) -> str:
    named = st.sampled_from(columns or ["id"]) if draw(st.integers(0, 3)) else COLUMN  # mostly a real column
    spec: dict[str, Any] = {
        "source": source,
        "key": draw(named),
        "template": {"pool_id": "1", "overlap": 1},
    }
    grouping = draw(st.sampled_from(["none", "tasks_per_suite", "group_by"]))
    if grouping == "tasks_per_suite":
        spec["tasks_per_suite"] = draw(st.integers(1, 4))
    elif grouping == "group_by":
        spec["group_by"] = draw(named)
    if draw(st.booleans()):
        spec["input_fields"] = draw(st.lists(named, max_size=3))
    document = {"apiVersion": "reconciler/v1", "kind": "TaskSuiteSet", "metadata": {"name": "set"}, "spec": spec}
    return json.dumps(document)


ROW_VALUE = st.one_of(LEAVES, ODD_TEXT, JSON_TOKENS.map(Raw), st.lists(LEAVES, max_size=2))


@st.composite
def jsonl_lines(draw: st.DrawFn) -> bytes:
    lines: list[bytes] = []
    for number in range(draw(st.integers(0, 6))):
        choice = draw(st.sampled_from(["row", "row", "row", "junk", "blank", "scalar"]))
        if choice == "row":
            key = f"r{number}" if draw(st.integers(0, 3)) else draw(st.one_of(TEXT, st.integers(), LEAVES))
            row = {"id": key, **draw(st.dictionaries(COLUMN, ROW_VALUE, max_size=4))}
            lines.append(render(json_safe(row)).encode("utf-8", "surrogatepass"))
        elif choice == "junk":
            lines.append(draw(st.binary(max_size=30)).replace(b"\n", b""))
        elif choice == "scalar":
            lines.append(render(json_safe(draw(LEAVES))).encode("utf-8", "surrogatepass"))
        else:
            lines.append(b"   ")
    return b"\n".join(lines) + b"\n"


@SETTINGS
@given(data=st.data())
def test_any_jsonl_data_file_ends_in_exit_0_or_1_with_one_line_per_problem(data: st.DataObject, sandbox: Any) -> None:
    rows = data.draw(jsonl_lines())
    manifest = data.draw(set_specs("rows.jsonl", ["id", "text"]))
    assert_ends_cleanly({"set.json": manifest.encode(), "rows.jsonl": rows}, sandbox)


@st.composite
def delimited(draw: st.DrawFn, delimiter: str) -> tuple[list[str], bytes]:
    cell = st.one_of(st.text(max_size=8), st.sampled_from(['"', '""', "a,b", "a\tb", "\x00", "NaN", "\r\n", "é"]))
    header = draw(st.lists(st.one_of(COLUMN, cell), min_size=0, max_size=4))
    rows = draw(st.lists(st.lists(cell, max_size=5), max_size=5))
    if draw(st.booleans()):
        buffer = io.StringIO()
        writer = csv.writer(buffer, delimiter=delimiter)
        writer.writerows([header, *rows])
        text = buffer.getvalue()
    else:  # typed by hand: quotes and delimiters as they come
        text = "\n".join(delimiter.join(line) for line in [header, *rows]) + "\n"
    raw = text.encode("utf-8", "surrogatepass")
    if draw(st.booleans()):
        raw += draw(st.binary(max_size=20))
    return header, raw


@SETTINGS
@given(data=st.data(), delimiter=st.sampled_from([",", "\t"]))
def test_any_csv_or_tsv_data_file_ends_in_exit_0_or_1_with_one_line_per_problem(
    data: st.DataObject, delimiter: str, sandbox: Any
) -> None:
    name = "rows.csv" if delimiter == "," else "rows.tsv"
    header, raw = data.draw(delimited(delimiter))
    manifest = data.draw(set_specs(name, header))
    assert_ends_cleanly({"set.json": manifest.encode("utf-8", "surrogatepass"), name: raw}, sandbox)
