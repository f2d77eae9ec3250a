"""Issue 11 item 4: a state file that looks new is never started fresh, and reading never writes.

Every test goes through the real command line (``python -m reconciler``) on real SQLite files: a 0-byte file,
a copy of the main file without its -wal, a foreign -wal, read-only commands, ``state pull`` / ``state push``,
a damaged row.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from helpers.apply_project import Project, make_project

from reconciler.state import SqliteStateStore

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"

Run = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def run(tmp_path: Path) -> Run:
    """The real command in ``tmp_path``, as a user would run it (no sandbox needed: nothing is sent)."""

    def go(*args: str) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("RECONCILER_")}
        return subprocess.run(
            [sys.executable, "-m", "reconciler", *args],
            cwd=tmp_path,
            env={**env, "NO_COLOR": "1", "RECONCILER_STATE": f"{tmp_path / 'state'}/"},
            capture_output=True,
            text=True,
            timeout=120,
            stdin=subprocess.DEVNULL,
        )

    return go


@pytest.fixture
def project(tmp_path: Path, sandbox: Any) -> Project:
    return make_project(tmp_path, sandbox, tasks=3, rows=12, batch_size=5)


def _files(db: Path) -> dict[str, tuple[bytes, int] | None]:
    """Bytes and mtime of the state file and its -wal; an absent -wal reads as an empty one (no changes)."""
    found: dict[str, tuple[bytes, int] | None] = {}
    for suffix in ("", "-wal"):
        path = db.with_name(db.name + suffix)
        if path.exists() and (suffix == "" or path.stat().st_size > 0):
            found[suffix] = (hashlib.sha256(path.read_bytes()).digest() + b"", path.stat().st_mtime_ns)
        else:
            found[suffix] = None
    return found


def _one_error_line(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 1, done.stdout + done.stderr
    [line] = done.stderr.splitlines()
    assert "This is a bug" not in line, line
    return line


# --- a 0-byte file ---------------------------------------------------------------------------------------------


def test_a_zero_byte_state_file_is_refused_by_every_command_and_left_empty(run: Run, tmp_path: Path) -> None:
    state = tmp_path / "state" / "default.db"
    state.parent.mkdir()
    state.touch()
    for args in (
        ("plan", str(EXAMPLES)),
        ("apply", str(EXAMPLES), "--auto-approve"),
        ("state", "list"),
        ("state", "history"),
    ):
        line = _one_error_line(run(*args))
        assert "is empty (0 bytes)" in line and "delete it" in line and "state push" in line, line
        assert state.stat().st_size == 0, args
    assert sorted(p.name for p in state.parent.iterdir()) == ["default.db"]


# --- a copy of the main file without its -wal ------------------------------------------------------------------


def test_a_copy_of_the_state_file_without_its_wal_is_never_read_as_an_empty_state(project: Project) -> None:
    """An apply killed mid-way (a CI job timed out) leaves its changes in the -wal; a cache or backup that copies
    only ``default.db`` must not give a state that plans everything again."""
    killed = project.apply(extra_env={"RECONCILER_FAILPOINT": "after_outcome:2"})
    assert killed.returncode != 0
    state = project.state_file
    assert state.with_name("default.db-wal").stat().st_size > 0
    shutil.copy(state, project.root / "copy.db")
    for args in (("plan", "manifests"), ("apply", "manifests", "--auto-approve")):
        refused = project.run(*args, "--state", "copy.db")
        assert "to create" not in refused.stdout, refused.stdout
        line = _one_error_line(refused)
        assert "copy.db is incomplete" in line and "-wal" in line and "state push" in line, line


def test_a_copy_of_a_new_state_file_alone_holds_its_lineage(tmp_path: Path) -> None:
    """A new state is checkpointed into the main file before it is used: its copy is a state, not nothing."""
    path = tmp_path / "s.db"
    with SqliteStateStore(path) as store:
        lineage = store.meta().lineage
        shutil.copy(path, tmp_path / "copy.db")
        with SqliteStateStore(tmp_path / "copy.db", read_only=True) as copy:
            assert copy.meta().lineage == lineage


def test_a_copy_taken_after_a_completed_apply_plans_nothing_to_create(project: Project) -> None:
    assert project.apply().returncode == 0
    shutil.copy(project.state_file, project.root / "copy.db")
    planned = project.run("plan", "manifests", "--state", "copy.db")
    assert planned.returncode == 0, planned.stderr
    assert "No changes" in planned.stdout, planned.stdout


# --- a foreign -wal ---------------------------------------------------------------------------------------------


def test_a_foreign_wal_beside_the_state_is_not_merged_by_state_list(run: Run, tmp_path: Path) -> None:
    state = tmp_path / "state" / "default.db"
    with SqliteStateStore(state):
        pass
    other = tmp_path / "other.db"
    keep = sqlite3.connect(other, isolation_level=None)
    keep.execute("PRAGMA journal_mode = WAL")
    keep.execute("PRAGMA wal_autocheckpoint = 0")
    keep.execute("CREATE TABLE notes (text)")
    keep.execute("INSERT INTO notes VALUES ('not a state')")
    shutil.copy(other.with_name("other.db-wal"), state.with_name("default.db-wal"))
    keep.close()
    before = _files(state)
    assert before["-wal"] is not None
    line = _one_error_line(run("state", "list"))
    assert "default.db is not a reconciler state file" in line, line
    assert _files(state) == before


# --- commands that only read --------------------------------------------------------------------------------------


def test_commands_that_only_read_change_no_byte_of_the_state(project: Project) -> None:
    assert project.apply().returncode == 0
    state = project.state_file
    address = sorted(project.recorded())[0]
    before = _files(state)
    for args in (
        ("plan", "manifests"),
        ("state", "list"),
        ("state", "show", address),
        ("state", "history"),
        ("state", "pull", "backup.db"),
    ):
        done = project.run(*args)
        assert done.returncode == 0, (args, done.stderr)
        assert _files(state) == before, args


def test_plan_without_a_state_plans_everything_and_creates_no_file(run: Run, tmp_path: Path) -> None:
    planned = run("plan", str(EXAMPLES))
    assert planned.returncode == 0, planned.stderr
    assert "No state yet at" in planned.stdout and "empty state" in planned.stdout
    assert "to create" in planned.stdout
    listed = run("state", "list")
    assert listed.returncode == 0 and listed.stdout == ""
    assert "No state at" in listed.stderr
    assert not (tmp_path / "state").exists()


# --- state pull / state push --------------------------------------------------------------------------------------


def _listing(project: Project, *extra: str) -> str:
    done = project.run("state", "list", *extra)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_state_pull_then_push_round_trips(project: Project) -> None:
    assert project.apply().returncode == 0
    listed = _listing(project)
    pulled = project.run("state", "pull", "backup.db")
    assert pulled.returncode == 0, pulled.stderr
    assert sorted(p.name for p in project.root.iterdir() if p.name.startswith("backup")) == ["backup.db"]

    pushed = project.run("state", "push", "backup.db", "--state", "restored.db")
    assert pushed.returncode == 0, pushed.stderr
    assert _listing(project, "--state", "restored.db") == listed
    planned = project.run("plan", "manifests", "--state", "restored.db")
    assert planned.returncode == 0 and "No changes" in planned.stdout, planned.stdout

    again = project.run("state", "push", "backup.db")
    assert again.returncode == 0, again.stderr
    assert _listing(project) == listed


def test_state_push_refuses_another_lineage_without_force(project: Project) -> None:
    assert project.apply().returncode == 0
    other = project.root / "other.db"
    with SqliteStateStore(other) as store:
        store.import_resource(
            address="TaskSuite/x", kind="TaskSuite", provider="toloka", remote_id="1", spec={}, spec_hash="h"
        )
    listed = _listing(project)
    line = _one_error_line(project.run("state", "push", "other.db"))
    assert "another state" in line and "--force" in line, line
    assert _listing(project) == listed

    forced = project.run("state", "push", "other.db", "--force")
    assert forced.returncode == 0, forced.stderr
    assert "is lost" in forced.stdout
    assert _listing(project) == "TaskSuite/x\tcreated\t1\n"


def test_state_push_refuses_an_older_serial_without_force(project: Project) -> None:
    assert project.apply().returncode == 0
    assert project.run("state", "pull", "old.db").returncode == 0
    address = sorted(project.recorded())[0]
    assert project.run("state", "forget", address).returncode == 0
    listed = _listing(project)
    line = _one_error_line(project.run("state", "push", "old.db"))
    assert "older than this state" in line and "--force" in line, line
    assert _listing(project) == listed
    assert project.run("state", "push", "old.db", "--force").returncode == 0
    assert address in _listing(project)


def test_state_push_refuses_a_file_that_is_not_a_complete_state(run: Run, tmp_path: Path) -> None:
    (tmp_path / "empty.db").touch()
    line = _one_error_line(run("state", "push", "empty.db"))
    assert "is empty (0 bytes)" in line, line
    assert not (tmp_path / "state").exists()


# --- damaged rows ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("damage", "args", "says"),
    [
        ("UPDATE resources SET spec = '{not json'", ("state", "show", "TaskSuite/a"), "not JSON"),
        ("UPDATE resources SET status = 'lost'", ("state", "list"), "unknown status 'lost'"),
        ("DELETE FROM meta WHERE key = 'lineage'", ("state", "list"), "records no lineage"),
    ],
)
def test_a_damaged_row_is_one_line_saying_the_state_is_damaged(
    run: Run, tmp_path: Path, damage: str, args: tuple[str, ...], says: str
) -> None:
    state = tmp_path / "state" / "default.db"
    with SqliteStateStore(state) as store:
        store.import_resource(
            address="TaskSuite/a", kind="TaskSuite", provider="toloka", remote_id="1", spec={}, spec_hash="h"
        )
    with sqlite3.connect(state) as db:
        db.execute("PRAGMA ignore_check_constraints = ON")
        db.execute(damage)
    db.close()
    line = _one_error_line(run(*args))
    assert "is damaged" in line and says in line, line


# --- state migrate ------------------------------------------------------------------------------------------------


def test_state_migrate_copies_the_state_and_its_journal_into_an_empty_one(project: Project) -> None:
    assert project.apply().returncode == 0
    target = project.root / "moved" / "default.db"
    target.parent.mkdir()
    done = project.run("state", "migrate", "--to", str(target))
    assert done.returncode == 0, done.stderr
    assert "The source is unchanged" in done.stdout
    source_list = project.run("state", "list").stdout
    moved = project.run("state", "list", "--state", str(target))
    assert moved.stdout == source_list and len(source_list.splitlines()) == 15
    history = project.run("state", "history", "--limit", "1000", "--state", str(target)).stdout.splitlines()
    assert len(history) == len(project.run("state", "history", "--limit", "1000").stdout.splitlines()) + 1
    assert history[-1].split("\t")[2] == "pushed"
    planned = project.run("plan", "manifests", "--state", str(target))
    assert "No changes" in planned.stdout, planned.stdout + planned.stderr


def test_state_migrate_refuses_a_target_that_holds_a_state(project: Project) -> None:
    assert project.apply().returncode == 0
    target = project.root / "other.db"
    assert project.run("state", "migrate", "--to", str(target)).returncode == 0
    before = [project.run(*args, "--state", str(target)).stdout for args in (("state", "list"), ("state", "history"))]
    again = project.run("state", "migrate", "--to", str(target))
    line = _one_error_line(again)
    assert "already holds a state" in line and "state push" in line, line
    after = [project.run(*args, "--state", str(target)).stdout for args in (("state", "list"), ("state", "history"))]
    assert after == before
