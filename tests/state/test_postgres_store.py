"""What only the PostgreSQL backend promises: its URL keeps its password, workspaces of one database are apart
and never wait for each other, a schema is a state or is refused, damage is reported, copies cross backends,
and an apply whose database connection is killed stops cleanly and converges on the next run.

The contract every backend keeps is in the ``*_contract.py`` suites, which run here too (``helpers.state_backends``).
"""

from __future__ import annotations

import os
import signal
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import pytest
from helpers.apply_project import Project, assert_exactly_once, make_project
from helpers.state_backends import postgres_admin, require_postgres
from helpers.state_builders import create, intent_for, pending, record
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from psycopg.conninfo import conninfo_to_dict

from reconciler.errors import StateAbsentError, StateError
from reconciler.redaction import forget_all, redact
from reconciler.state import Outcome, SqliteStateStore, StateStore, Status, open_store
from reconciler.state.postgres.location import PostgresLocation
from reconciler.state.postgres.store import PostgresStateStore


@dataclass
class Database:
    """A schema of its own on the test server, dropped afterwards."""

    server: str
    schema: str
    admin: Any

    def url(self, **params: str) -> str:
        query = "&".join(f"{k}={quote(v)}" for k, v in {"schema": self.schema, **params}.items())
        return f"{self.server}?{query}"

    def open(self, workspace: str = "default", *, read_only: bool = False) -> StateStore:
        return open_store(self.url(), workspace=workspace, root=Path.cwd(), read_only=read_only)

    def tables(self) -> set[str]:
        rows = self.admin.execute("SELECT tablename FROM pg_tables WHERE schemaname = %s", (self.schema,)).fetchall()
        return {row[0] for row in rows}


@pytest.fixture
def database() -> Iterator[Database]:
    server = require_postgres()
    admin = postgres_admin(server)
    made = Database(server, f"test_{uuid.uuid4().hex[:16]}", admin)
    try:
        yield made
    finally:
        admin.execute(f"DROP SCHEMA IF EXISTS {made.schema} CASCADE")
        admin.close()


_PASSWORD_CHARS = st.characters(codec="utf-8", exclude_categories=("Cs", "Cc"))


@settings(max_examples=60, deadline=None, derandomize=True, database=None)
@given(password=st.text(_PASSWORD_CHARS, min_size=8, max_size=24), in_query=st.booleans())
def test_a_url_password_reaches_libpq_and_nothing_else(password: str, in_query: bool) -> None:
    where = f"?password={quote(password)}&schema=ci" if in_query else "?schema=ci"
    userinfo = "" if in_query else f":{quote(password, safe='')}"
    try:
        location = PostgresLocation.parse(f"postgresql://deploy{userinfo}@db.example.com:5432/states{where}")
        assert location.display == "postgresql://deploy@db.example.com:5432/states?schema=ci"
        assert password not in location.display and password not in repr(location)
        assert "schema=" not in location.conninfo and location.schema == "ci"
        assert conninfo_to_dict(location.conninfo)["password"] == password
        assert location.hide(f"server said: {password}") == "server said: ***"
        assert password not in redact(f"echoed {password} back")
    finally:
        forget_all()


def test_an_unreachable_database_is_one_clear_error_without_the_password() -> None:
    with pytest.raises(
        StateError, match=r"cannot connect to the PostgreSQL state postgresql://u@127\.0\.0\.1:1/x"
    ) as e:
        open_store("postgresql://u:s3cret-pw-42@127.0.0.1:1/x", workspace="default", root=Path.cwd())
    assert "s3cret-pw-42" not in str(e.value)


def test_a_store_names_its_database_and_workspace_without_the_password(database: Database) -> None:
    parts = urlsplit(database.server)
    with_password = parts._replace(netloc=f"{parts.username or 'postgres'}:not-needed-pw@{parts.hostname}:{parts.port}")
    store = open_store(f"{urlunsplit(with_password)}?schema={database.schema}", workspace="ci", root=Path.cwd())
    try:
        assert isinstance(store, PostgresStateStore)
        assert "not-needed-pw" not in repr(store) and "not-needed-pw" not in str(store)
        assert str(store).endswith(f"?schema={database.schema} (workspace ci)")
    finally:
        store.close()


def test_reading_where_there_is_no_state_creates_nothing(database: Database) -> None:
    with pytest.raises(StateAbsentError, match="no state of workspace default"):
        database.open(read_only=True)
    assert database.tables() == set()
    database.open("other").close()
    with pytest.raises(StateAbsentError):
        database.open(read_only=True)
    rows = database.admin.execute(f"SELECT workspace FROM {database.schema}.workspaces").fetchall()
    assert rows == [("other",)]


def test_a_read_only_store_writes_nothing(database: Database) -> None:
    create(database.open(), "TaskSuite/a")
    reader = database.open(read_only=True)
    assert [s.address for s in reader.summaries()] == ["TaskSuite/a"]
    with pytest.raises(StateError, match="read-only"):
        record(reader, "TaskSuite/b")
    with pytest.raises(StateError, match="read-only"):
        reader.acquire_lock(holder="me", operation="plan", ttl=30)
    assert reader.meta().serial == 2


def test_workspaces_of_one_database_are_separate_states(database: Database) -> None:
    staging, prod = database.open("staging"), database.open("prod")
    create(staging, "TaskSuite/a", "TaskSuite/b")
    record(prod, "TaskSuite/a")
    prod.import_resource(
        address="TaskSuite/z", kind="TaskSuite", provider="toloka", remote_id="9", spec={}, spec_hash="h"
    )
    assert staging.meta().lineage != prod.meta().lineage
    assert (staging.meta().serial, prod.meta().serial) == (2, 2)
    assert {s.address: s.status for s in staging.summaries()} == {
        "TaskSuite/a": Status.CREATED,
        "TaskSuite/b": Status.CREATED,
    }
    assert {s.address: s.status for s in prod.summaries()} == {
        "TaskSuite/a": Status.PENDING,
        "TaskSuite/z": Status.CREATED,
    }
    assert [e.seq for e in prod.history()] == [1, 2]
    assert len(prod.open_intents()) == 1 and staging.open_intents() == []
    staging_lock = staging.acquire_lock(holder="pipeline 1", operation="apply", ttl=30)
    prod_lock = prod.acquire_lock(holder="pipeline 2", operation="apply", ttl=30)
    assert (staging.current_lock(), prod.current_lock()) == (staging_lock, prod_lock)


def test_a_write_in_one_workspace_never_waits_for_another(database: Database) -> None:
    busy, free = database.open("busy"), database.open("free")
    finished = threading.Event()
    with postgres_admin(database.server) as holder, holder.transaction():
        holder.execute(f"SELECT 1 FROM {database.schema}.workspaces WHERE workspace = 'busy' FOR UPDATE")
        waiting = threading.Thread(target=lambda: (create(busy, "TaskSuite/late"), finished.set()))
        waiting.start()
        create(free, *(f"TaskSuite/{i}" for i in range(200)))
        free.acquire_lock(holder="free run", operation="apply", ttl=30)
        assert not finished.wait(0.3), "a write went through while its workspace's row was held"
    waiting.join(timeout=30)
    assert finished.is_set() and busy.get(address="TaskSuite/late") is not None


def test_the_lock_is_timed_by_the_servers_clock(database: Database) -> None:
    store = database.open()
    (before,) = database.admin.execute("SELECT clock_timestamp()").fetchone()
    lock = store.acquire_lock(holder="me", operation="apply", ttl=90)
    (after,) = database.admin.execute("SELECT clock_timestamp()").fetchone()
    started = _utc(lock.started_at)
    assert before <= started <= after
    assert (_utc(lock.expires_at) - started).total_seconds() == 90


def _utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_a_schema_that_holds_something_else_is_refused_and_left_alone(database: Database) -> None:
    database.admin.execute(f"CREATE SCHEMA {database.schema}; CREATE TABLE {database.schema}.orders (id int)")
    with pytest.raises(StateError, match=f"schema {database.schema} .* holds tables that are not a reconciler state"):
        database.open()
    assert database.tables() == {"orders"}


def test_an_empty_schema_made_for_us_becomes_a_state(database: Database) -> None:
    database.admin.execute(f"CREATE SCHEMA {database.schema}")
    create(database.open(), "TaskSuite/a")
    assert {"workspaces", "resources", "intents", "journal"} <= database.tables()


def test_stores_opened_at_once_on_a_new_database_share_one_state(database: Database) -> None:
    lineages: list[str] = []
    errors: list[BaseException] = []

    def open_one() -> None:
        try:
            store = database.open()
            lineages.append(store.meta().lineage)
            store.close()
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=open_one) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and len(lineages) == 8 and len(set(lineages)) == 1
    (version,) = database.admin.execute(f"SELECT version FROM {database.schema}.reconciler_schema").fetchone()
    assert version == 1


def test_a_broken_connection_fails_one_call_and_the_next_reconnects(database: Database) -> None:
    name = f"broken-{database.schema}"
    store = open_store(database.url(application_name=name), workspace="default", root=Path.cwd())
    create(store, "TaskSuite/a")
    database.admin.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s", (name,)
    )
    with pytest.raises(StateError, match="lost the connection to the PostgreSQL state"):
        record(store, "TaskSuite/b")
    create(store, "TaskSuite/c")
    assert sorted(s.address for s in store.summaries()) == ["TaskSuite/a", "TaskSuite/c"]


def test_a_copy_reads_the_same_in_both_backends(database: Database, tmp_path: Path) -> None:
    source = database.open()
    create(source, "TaskSuite/a", "TaskSuite/b")
    store_intent = record(source, "TaskSuite/c", "TaskSuite/a")
    source.record_outcomes(
        operation_id=store_intent.operation_id,
        outcomes=[Outcome("TaskSuite/c", Status.FAILED, error="quota")],
        resolved=False,
    )
    source.import_resource(
        address="PerfTestTask/x", kind="PerfTestTask", provider="perftest", remote_id="7", spec={"n": 1}, spec_hash="h"
    )
    source.record_refresh(views=[("PerfTestTask/x", {"id": 7})])
    source.copy_to(path=tmp_path / "pulled.db")
    with SqliteStateStore(tmp_path / "pulled.db", read_only=True) as pulled:
        assert _everything(pulled) == _everything(source)
    pushed = database.open("pushed")
    pushed.restore_from(path=tmp_path / "pulled.db", force=False)
    restored, original = _everything(pushed), _everything(source)
    assert restored["history"][-1].event == "pushed"
    restored["history"].pop()
    assert {**restored, "meta": None} == {**original, "meta": None}
    assert pushed.meta().serial == source.meta().serial + 1
    record(pushed, "TaskSuite/d")
    assert [i.addresses for i in pushed.open_intents()] == [("TaskSuite/c", "TaskSuite/a"), ("TaskSuite/d",)]


def _everything(store: StateStore) -> dict[str, Any]:
    addresses = sorted(s.address for s in store.summaries())
    return {
        "meta": store.meta(),
        "summaries": sorted(store.summaries(), key=lambda s: s.address),
        "records": store.get_many(addresses=addresses),
        "intents": store.open_intents(),
        "history": store.history(limit=1000),
    }


#: Columns a person or a tool could damage by hand, with values of the column's type that mean nothing.
_DAMAGE = {
    ("intents", "heads"): st.sampled_from(["", "{", "[1, 2]", '[["TaskSuite/a"]]', "null", '"x"']),
    ("intents", "specs"): st.sampled_from(["", "[", "{}", "null"]),
    ("intents", "detail"): st.sampled_from(["", "{", "[]x"]),
    ("intents", "addresses"): st.sampled_from(["", "[", "null"]),
    ("resources", "member"): st.integers(min_value=-3, max_value=10**6),
    ("resources", "spec"): st.sampled_from(["", "{", "nope"]),
    ("resources", "remote"): st.sampled_from(["{", "]"]),
    ("resources", "operation_id"): st.sampled_from(["", "not-an-intent"]),
    ("journal", "detail"): st.sampled_from(["", "{", '{"events": 1}', "[]"]),
    ("journal", "entries"): st.integers(min_value=2, max_value=9),
}


@pytest.fixture
def template(database: Database) -> Database:
    """A workspace ``template`` holding a bit of everything, to be copied and damaged."""
    store = database.open("template")
    create(store, "TaskSuite/a", "TaskSuite/b")
    record(store, "TaskSuite/c")
    store.record_refresh(views=[("TaskSuite/a", {"id": 1})])
    store.import_resource(
        address="PerfTestTask/x", kind="PerfTestTask", provider="perftest", remote_id="7", spec={}, spec_hash="h"
    )
    store.close()
    return database


def _clone(database: Database, workspace: str) -> str:
    """A new workspace holding a copy of ``workspace``'s rows, made straight in SQL; returns its name."""
    clone, s = f"w{uuid.uuid4().hex[:12]}", database.schema
    with database.admin.transaction():
        database.admin.execute(
            f"INSERT INTO {s}.workspaces (workspace, lineage, serial, created_at, next_intent, next_journal) "
            f"SELECT %s, lineage, serial, created_at, next_intent, next_journal FROM {s}.workspaces "
            "WHERE workspace = %s",
            (clone, workspace),
        )
        for table in ("intents", "resources", "journal"):
            columns = ", ".join(
                row[0]
                for row in database.admin.execute(
                    "SELECT column_name FROM information_schema.columns WHERE table_schema = %s AND table_name = %s "
                    "AND column_name <> 'workspace' ORDER BY ordinal_position",
                    (s, table),
                )
            )
            database.admin.execute(
                f"INSERT INTO {s}.{table} (workspace, {columns}) SELECT %s, {columns} FROM {s}.{table} "
                "WHERE workspace = %s",
                (clone, workspace),
            )
    return clone


@settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(column=st.sampled_from(sorted(_DAMAGE)), data=st.data())
def test_a_damaged_row_is_reported_as_damage(template: Database, column: tuple[str, str], data: st.DataObject) -> None:
    table, name = column
    value = data.draw(_DAMAGE[column])
    workspace = _clone(template, "template")
    s = template.schema
    with template.admin.transaction():
        template.admin.execute(f"ALTER TABLE {s}.journal DISABLE TRIGGER journal_append_only")
        template.admin.execute(f"UPDATE {s}.{table} SET {name} = %s WHERE workspace = %s", (value, workspace))
        template.admin.execute(f"ALTER TABLE {s}.journal ENABLE TRIGGER journal_append_only")
    store = template.open(workspace, read_only=True)
    try:
        for read in (
            store.meta,
            lambda: list(store.summaries()),
            lambda: store.get_many(addresses=["TaskSuite/a", "TaskSuite/b", "TaskSuite/c", "PerfTestTask/x"]),
            store.open_intents,
            lambda: store.history(limit=100),
            lambda: store.history(address="TaskSuite/a"),
        ):
            try:
                read()
            except StateError as e:
                assert "is damaged" in str(e), e
    finally:
        store.close()


@dataclass
class PostgresProject(Project):
    """A user's checkout whose state is in PostgreSQL (``RECONCILER_STATE``)."""

    state: str = ""

    def recorded(self) -> dict[str, Any]:
        store = open_store(self.state, workspace="default", root=self.root)
        try:
            return {s.address: s for s in store.summaries()}
        finally:
            store.close()


@pytest.fixture
def pg_project(database: Database, tmp_path: Path, sandbox: Any) -> PostgresProject:
    made = make_project(tmp_path, sandbox, tasks=4, rows=60, batch_size=5)
    url = database.url(application_name=f"apply-{database.schema}")
    return PostgresProject(root=made.root, sandbox=sandbox, env={**made.env, "RECONCILER_STATE": url}, state=url)


def test_apply_with_the_state_in_postgresql_creates_everything_once(pg_project: PostgresProject) -> None:
    done = pg_project.apply()
    assert done.returncode == 0, done.stdout + done.stderr
    assert_exactly_once(pg_project, tasks=4, rows=60)
    assert "No changes" in pg_project.apply().stdout
    assert not list(pg_project.root.rglob("*.db")), "a SQLite state was made beside the PostgreSQL one"


def test_apply_whose_database_connection_is_killed_stops_cleanly_and_the_next_run_converges(
    pg_project: PostgresProject, database: Database
) -> None:
    runner = pg_project.popen(
        "apply",
        "manifests",
        "--auto-approve",
        "--parallelism",
        "2",
        extra_env={"RECONCILER_FAILPOINT": "after_intent:4:stop"},
    )
    try:
        _wait_until_stopped(runner.pid)
        terminated = database.admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s",
            (f"apply-{database.schema}",),
        ).fetchall()
        assert terminated, "apply had no connection to the state to kill"
    finally:
        os.kill(runner.pid, signal.SIGCONT)
    out, err = runner.communicate(timeout=120)
    assert runner.returncode == 1, out + err
    errors = [line for line in err.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and errors[0].startswith("Error: lost the connection to the PostgreSQL state"), err
    assert "Traceback" not in err and "psycopg" not in err, err
    recorded = pg_project.recorded()
    assert recorded and len(recorded) < 64
    done = pg_project.apply()
    assert done.returncode == 0, done.stdout + done.stderr
    assert_exactly_once(pg_project, tasks=4, rows=60)


@pytest.mark.parametrize("failpoint", ["after_intent:2", "after_send:3"])
def test_apply_killed_with_its_state_in_postgresql_converges_without_duplicates(
    pg_project: PostgresProject, failpoint: str
) -> None:
    killed = pg_project.apply("--parallelism", "2", extra_env={"RECONCILER_FAILPOINT": failpoint})
    assert killed.returncode == -signal.SIGKILL, killed.stdout + killed.stderr
    assert any(r.status is Status.PENDING for r in pg_project.recorded().values())
    done = pg_project.apply()
    assert done.returncode == 0, done.stdout + done.stderr
    assert_exactly_once(pg_project, tasks=4, rows=60)


def _wait_until_stopped(pid: int) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            if stat.read().rsplit(")", 1)[1].split()[0] == "T":
                return
        time.sleep(0.02)
    raise AssertionError("apply never reached the failpoint")


_ADDRESSES = ["TaskSuite/a", "TaskSuite/b", "PerfTestTask/p"]


@st.composite
def _writes(draw: st.DrawFn) -> list[tuple[str, Any]]:
    """A sequence of writes over a few addresses, some of them refused (the same by both backends)."""
    steps: list[tuple[str, Any]] = []
    intents = 0
    for _ in range(draw(st.integers(min_value=1, max_value=16))):
        kind = draw(st.sampled_from(["intent", "intent", "outcomes", "outcomes", "forget", "import", "refresh"]))
        if kind == "intent":
            addresses = draw(st.lists(st.sampled_from(_ADDRESSES), min_size=0, max_size=3, unique=True))
            attempt = draw(st.integers(min_value=0, max_value=2))
            replaces = draw(st.sampled_from([None, "old-remote"]))
            steps.append((kind, (f"op-{intents}", addresses, attempt, replaces)))
            intents += 1
        elif kind == "outcomes":
            op = f"op-{draw(st.integers(min_value=0, max_value=intents))}"  # op-{intents}: not recorded (yet)
            outcomes = draw(
                st.lists(
                    st.tuples(
                        st.sampled_from(_ADDRESSES),
                        st.sampled_from([Status.CREATED, Status.FAILED]),
                        st.sampled_from([None, "r-1", "r-2"]),
                        st.sampled_from([None, "quota exceeded"]),
                        st.sampled_from([None, {"id": "r-1"}]),
                    ),
                    max_size=3,
                    unique_by=lambda o: o[0],
                )
            )
            steps.append((kind, (op, [Outcome(*o) for o in outcomes], draw(st.booleans()))))
        elif kind == "refresh":
            views = draw(
                st.lists(st.tuples(st.sampled_from(_ADDRESSES), st.sampled_from([None, {"v": 1}])), max_size=3)
            )
            steps.append((kind, views))
        else:
            steps.append((kind, draw(st.sampled_from(_ADDRESSES))))
    return steps


def _apply(store: StateStore, kind: str, args: Any) -> str:
    """Run one write; the name of the error it raised, or "ok"."""
    try:
        if kind == "intent":
            op, addresses, attempt, replaces = args
            resources = [pending(a, attempt=attempt, replaces=replaces) for a in addresses]
            intent = intent_for(resources or [pending("TaskSuite/x")], operation_id=op)
            store.record_intent(intent=replace(intent, addresses=tuple(addresses)), resources=resources)
        elif kind == "outcomes":
            op, outcomes, resolved = args
            store.record_outcomes(operation_id=op, outcomes=outcomes, resolved=resolved)
        elif kind == "forget":
            store.forget(address=args)
        elif kind == "import":
            store.import_resource(
                address=args, kind="TaskSuite", provider="toloka", remote_id="i", spec={}, spec_hash="h"
            )
        else:
            store.record_refresh(views=args)
    except (StateError, ValueError) as e:
        return type(e).__name__
    return "ok"


def _observed(store: StateStore) -> dict[str, Any]:
    """What a reader sees, times and lineage aside (each backend stamps its own)."""
    records = store.get_many(addresses=_ADDRESSES)
    return {
        "serial": store.meta().serial,
        "summaries": sorted(store.summaries(), key=lambda s: s.address),
        "records": {a: replace(r, created_at="", updated_at="", refreshed_at=None) for a, r in records.items()},
        "refreshed": sorted(a for a, r in records.items() if r.refreshed_at is not None),
        "intents": [replace(i, created_at="") for i in store.open_intents()],
        "history": [replace(e, at="") for e in store.history(limit=1000)],
        "of_a": [replace(e, at="") for e in store.history(address="TaskSuite/a")],
    }


@settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(steps=_writes())
@example(  # a late outcome of a superseded intent, after the newer one wrote the row: only the journal gets it
    steps=[
        ("intent", ("op-0", ["TaskSuite/a"], 0, None)),
        ("intent", ("op-1", ["TaskSuite/a"], 1, None)),
        ("outcomes", ("op-1", [Outcome("TaskSuite/a", Status.FAILED, error="quota")], True)),
        ("outcomes", ("op-0", [Outcome("TaskSuite/a", Status.CREATED, "r-1")], True)),
    ]
)
def test_both_backends_read_the_same_after_any_writes(database: Database, steps: list[tuple[str, Any]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        sqlite = SqliteStateStore(Path(tmp) / "s.db")
        postgres = database.open(f"w{uuid.uuid4().hex[:12]}")
        try:
            for kind, args in steps:
                assert _apply(sqlite, kind, args) == _apply(postgres, kind, args), (kind, args)
            assert _observed(postgres) == _observed(sqlite)
        finally:
            sqlite.close()
            postgres.close()


def test_two_checkouts_sharing_a_postgresql_state_take_turns_and_create_everything_once(
    database: Database, tmp_path: Path, sandbox: Any
) -> None:
    """Three working copies whose manifests name one PostgreSQL state (a StateBackend: no flag, no variable):
    while one applies, another is refused naming it, a third waits (--lock-timeout) and then finds it done."""
    url = database.url()
    backend = f"apiVersion: reconciler/v1\nkind: StateBackend\nmetadata: {{name: team}}\nspec: {{url: '{url}'}}\n"
    copies = []
    for name in ("alice", "bob", "carol"):
        made = make_project(tmp_path / name, sandbox, tasks=4, rows=20, batch_size=5)
        made.write("state.yaml", backend)
        env = {k: v for k, v in made.env.items() if k != "RECONCILER_STATE"}
        copies.append(PostgresProject(root=made.root, sandbox=sandbox, env=env, state=url))
    alice, bob, carol = copies
    holder = alice.popen(
        "apply",
        "manifests",
        "--auto-approve",
        "--parallelism",
        "1",
        extra_env={"RECONCILER_FAILPOINT": "before_send:2:stop"},
    )
    waiter = None
    try:
        _wait_until_stopped(holder.pid)
        refused = bob.apply()
        assert refused.returncode == 1
        assert "the state is locked by" in refused.stderr and f"pid {holder.pid} " in refused.stderr, refused.stderr
        waiter = carol.popen("apply", "manifests", "--auto-approve", "--lock-timeout", "2m")
        time.sleep(1.5)
        assert waiter.poll() is None, "the third checkout did not wait for the lock"
    finally:
        os.kill(holder.pid, signal.SIGCONT)
    out, err = holder.communicate(timeout=120)
    assert holder.returncode == 0, out + err
    assert "StateBackend at manifests/state.yaml:1" in out
    assert waiter is not None
    out, err = waiter.communicate(timeout=120)
    assert waiter.returncode == 0, out + err
    assert "waiting up to 120s" in err and "Nothing to do" not in err
    assert "No changes" in out or "0 to create" in out, out
    assert_exactly_once(alice, tasks=4, rows=20)
    assert not list(tmp_path.rglob("default.db")), "a SQLite state was made beside the PostgreSQL one"


def test_apply_sigkilled_at_random_moments_with_its_state_in_postgresql_converges(
    pg_project: PostgresProject,
) -> None:
    pg_project.sandbox.set_faults("latency_ms=20-60,seed=11")
    kills = 0
    for delay in (0.7, 1.0, 1.3, 1.6):
        runner = pg_project.popen("apply", "manifests", "--auto-approve", "--parallelism", "3")
        time.sleep(delay)
        if runner.poll() is None:
            runner.send_signal(signal.SIGKILL)
            kills += 1
        runner.communicate(timeout=60)
    assert kills >= 2, "the apply finished too fast for the kills to land"
    pg_project.sandbox.set_faults(None)
    done = pg_project.apply_until_done(tries=3)
    assert done.returncode == 0, done.stdout + done.stderr
    assert_exactly_once(pg_project, tasks=4, rows=60)


def test_state_migrate_moves_a_sqlite_state_into_postgresql(database: Database, tmp_path: Path, sandbox: Any) -> None:
    proj = make_project(tmp_path, sandbox, tasks=2, rows=10, batch_size=5)
    assert proj.apply().returncode == 0
    url = database.url()
    moved = proj.run("state", "migrate", "--to", url)
    assert moved.returncode == 0, moved.stderr
    in_sqlite = proj.run("state", "list").stdout
    in_postgres = proj.run("state", "list", "--state", url).stdout
    assert in_postgres == in_sqlite and len(in_sqlite.splitlines()) == 12
    planned = proj.run("plan", "manifests", "--state", url)
    assert "No changes" in planned.stdout, planned.stdout + planned.stderr
    again = proj.run("state", "migrate", "--to", url)
    assert again.returncode == 1 and "already holds a state" in again.stderr
