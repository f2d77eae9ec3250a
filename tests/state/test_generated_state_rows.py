"""A state file damaged in any way ends every reading command in one clear line, never in "unexpected".

A real SQLite state is built through the store (an imported resource, created ones whose rows refer to their
intent's members, an open intent, journal entries), then damaged straight in SQLite by generated statements:
any column of any table set to a generated value (text that is or is not JSON, JSON of the wrong shape,
numbers, NULL, blobs, bytes that are not UTF-8), rows deleted, rows added. ``state list``, ``state show``,
``state history`` and ``plan`` then run in-process through the real command line; each must end in exit 0,
or in exit 1 with one ``Error:`` line that says what is wrong with the state, and never send anything.

Reproducible: ``derandomize`` draws the same damage on every run, and no example database is kept.
"""

from __future__ import annotations

import contextlib
import shutil
import sqlite3
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from helpers.apply_project import offline_providers_yaml
from helpers.state_builders import create, record
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.cli import cli
from reconciler.encoding import content_hash
from reconciler.state import SqliteStateStore

SETTINGS = settings(
    max_examples=70,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

#: What a clear refusal of a damaged state says, in the words of ``state/sqlite`` (``schema``, ``store``).
CLEAR = (
    "is damaged",
    "cannot read the state",
    "cannot open the state",
    "not a reconciler state",
    "not a complete reconciler state",
    "newer reconciler",
    "is locked",
)

COLUMNS = {
    "resources": [
        "address",
        "kind",
        "provider",
        "spec_hash",
        "status",
        "remote_id",
        "operation_id",
        "attempt",
        "error",
        "created_at",
        "updated_at",
        "refreshed_at",
        "member",
        "spec",
        "remote",
    ],
    "intents": ["operation_id", "provider", "action", "fingerprint", "created_at", "resolved", "addresses", "detail"],
    "intent_members": ["operation_id", "heads", "specs"],
    "meta": ["value"],
    "lock": ["lock_id", "holder", "operation", "started_at", "expires_at", "expires"],
}
ADDRESSES = ["TaskSuite/a", "TaskSuite/b", "PerfTestTask/c", "TaskSuite/d"]

JSON_SHAPES = st.sampled_from(
    [
        "",
        "{",
        "[",
        "null",
        "1",
        '"x"',
        "[]",
        "{}",
        "[1]",
        '["TaskSuite/a"]',
        "[[]]",
        "[null]",
        "[[1, 2]]",
        '[["TaskSuite/b", "TaskSuite", "toloka", "h", 0, null]]',
        '[["TaskSuite/b", null, null, null, null, null, null]]',
        '[["TaskSuite/b", 1, [], {}, "x", 5]]',
        '[{"a": 1}]',
        '{"events": 1}',
        '{"addresses": ["x"], "remote_ids": []}',
        '{"events": ["created"], "addresses": [null], "details": [1]}',
        "NaN",
        "1e999",
        '"\\ud800"',
        "9" * 30,
    ]
)
VALUES = st.one_of(
    st.none(),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=False),
    st.text(max_size=20),
    JSON_SHAPES,
    st.sampled_from(["pending", "created", "failed", "lost", "CREATED", "TaskSuite/a", "TaskSuite/zz"]),
    st.binary(max_size=8),
    st.sampled_from([b"\xff\xfe", b'{"a": 1}', b"[]"]),
)


@pytest.fixture(scope="module")
def pristine() -> Iterator[Path]:
    """A state with a row of every form: imported, written by outcomes, pending under an open intent."""
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "default.db"
        with SqliteStateStore(path) as store:
            spec = {"pool_id": "1", "overlap": 1, "tasks": [{"input_values": {"x": 1}}]}
            store.import_resource(
                address="TaskSuite/a", kind="TaskSuite", provider="toloka", remote_id="1", spec=spec,
                spec_hash=content_hash(spec),
            )  # fmt: skip
            create(store, "TaskSuite/b")
            create(store, "PerfTestTask/c")
            record(store, "TaskSuite/d")
        assert not Path(f"{path}-wal").exists() or Path(f"{path}-wal").stat().st_size == 0
        yield path


@st.composite
def damage(draw: st.DrawFn) -> list[tuple[str, tuple[Any, ...]]]:
    """One to three statements that damage a state, each with its parameters."""
    statements: list[tuple[str, tuple[Any, ...]]] = []
    for _ in range(draw(st.integers(1, 3))):
        how = draw(st.sampled_from(["set", "set", "set", "not utf-8", "delete", "journal", "lock"]))
        table = draw(st.sampled_from(sorted(COLUMNS)))
        column = draw(st.sampled_from(COLUMNS[table]))
        which = draw(st.integers(1, 4))
        if how == "set":
            statements.append((f"UPDATE {table} SET {column} = ? WHERE rowid = ?", (draw(VALUES), which)))
        elif how == "not utf-8":
            statements.append((f"UPDATE {table} SET {column} = CAST(x'c328ff' AS TEXT) WHERE rowid = ?", (which,)))
        elif how == "delete":
            statements.append((f"DELETE FROM {table} WHERE rowid = ?", (which,)))
        elif how == "journal":
            values = (draw(VALUES), draw(VALUES), draw(VALUES), draw(VALUES), draw(VALUES), draw(VALUES))
            statements.append(
                (
                    "INSERT INTO journal (seq, at, event, address, operation_id, detail, entries) "
                    "VALUES ((SELECT max(seq) + 100 FROM journal), ?, ?, ?, ?, ?, ?)",
                    values,
                )
            )
        else:
            values = (draw(VALUES), draw(VALUES), draw(VALUES), draw(VALUES), draw(VALUES), draw(VALUES))
            statements.append(
                (
                    "INSERT OR REPLACE INTO lock (id, lock_id, holder, operation, started_at, expires_at, expires) "
                    "VALUES (1, ?, ?, ?, ?, ?, ?)",
                    values,
                )
            )
    return statements


def damaged_copy(pristine: Path, directory: Path, statements: list[tuple[str, tuple[Any, ...]]]) -> Path:
    """A copy of the pristine state with ``statements`` run on it (those SQLite refuses outright skipped)."""
    state = directory / ".reconciler" / "default.db"
    state.parent.mkdir()
    shutil.copy(pristine, state)
    db = sqlite3.connect(state, isolation_level=None)
    try:
        db.execute("PRAGMA ignore_check_constraints = ON")
        for sql, parameters in statements:
            with contextlib.suppress(sqlite3.IntegrityError, OverflowError):
                db.execute(sql, parameters)
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        db.close()
    return state


def run(directory: Path, *args: str) -> tuple[int, str]:
    with contextlib.chdir(directory):
        env = {"NO_COLOR": "1", "RECONCILER_STATE": f"{directory / '.reconciler'}/"}
        result = CliRunner().invoke(cli, list(args), env=env)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"{args} raised {result.exception!r}") from result.exception
    return result.exit_code, result.stderr


def assert_clear(args: tuple[str, ...], status: int, stderr: str) -> None:
    assert status in (0, 1), (args, status, stderr)
    assert "Error: unexpected " not in stderr and "This is a bug" not in stderr, (args, stderr)
    if status == 1:
        lines = stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("Error: "), (args, stderr)
        assert any(words in lines[0] for words in CLEAR), (args, stderr)


COMMANDS = [
    ("state", "list"),
    ("state", "history"),
    ("state", "history", "TaskSuite/b"),
    *(("state", "show", address) for address in ADDRESSES),
    ("plan", "manifests"),
]


@SETTINGS
@given(statements=damage())
def test_any_damaged_row_ends_reading_commands_in_exit_0_or_one_clear_line(
    statements: list[tuple[str, tuple[Any, ...]]], pristine: Path
) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        directory = Path(scratch)
        (directory / "manifests").mkdir()
        (directory / "manifests" / "m.yaml").write_text(offline_providers_yaml("http://127.0.0.1:9"))
        damaged_copy(pristine, directory, statements)
        for args in COMMANDS:
            status, stderr = run(directory, *args)
            if args[:2] == ("state", "show") and "not in the state" in stderr:
                continue  # a damaged address column can make an address disappear: that is what show says
            assert_clear(args, status, stderr)


def test_the_pristine_state_reads_cleanly_so_the_damage_is_what_fails(pristine: Path, tmp_path: Path) -> None:
    (tmp_path / "manifests").mkdir()
    (tmp_path / "manifests" / "m.yaml").write_text(offline_providers_yaml("http://127.0.0.1:9"))
    damaged_copy(pristine, tmp_path, [])

    assert run(tmp_path, "state", "list")[0] == 0
    assert run(tmp_path, "state", "show", "TaskSuite/b")[0] == 0
    assert run(tmp_path, "plan", "manifests")[0] == 0


@pytest.mark.parametrize(
    ("sql", "says"),
    [
        ("UPDATE intent_members SET heads = '[[\"TaskSuite/b\"]]'", "is damaged"),
        ("UPDATE resources SET member = 7 WHERE address = 'TaskSuite/b'", "is damaged"),
        ("UPDATE intent_members SET heads = '{'", "is damaged"),
        ("UPDATE resources SET address = NULL WHERE address = 'TaskSuite/a'", "is damaged"),
        ("UPDATE resources SET address = CAST(x'c328ff' AS TEXT) WHERE address = 'TaskSuite/a'", "is damaged"),
    ],
)
def test_a_damaged_state_names_itself_damaged_in_one_line_to_every_reading_command(
    sql: str, says: str, pristine: Path, tmp_path: Path
) -> None:
    (tmp_path / "manifests").mkdir()
    (tmp_path / "manifests" / "m.yaml").write_text(offline_providers_yaml("http://127.0.0.1:9"))
    damaged_copy(pristine, tmp_path, [(sql, ())])

    for args in (("state", "list"), ("plan", "manifests")):
        status, stderr = run(tmp_path, *args)
        assert status == 1, (args, stderr)
        assert_clear(args, status, stderr)
        assert says in stderr, (args, stderr)
