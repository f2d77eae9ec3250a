"""The PostgreSQL state's tables, how a database is recognised as holding them, and how they are migrated.

One schema (``reconciler`` unless the URL says ``?schema=``) holds the states of every workspace of a
database, side by side: every table's key starts with ``workspace``. A workspace is one row of
``workspaces``, which is also its lock and the point every write of that workspace queues on (``SELECT ...
FOR UPDATE``), so writes and locks of different workspaces never wait for each other. ``docs/state-postgres.md``
says why this design and not one schema per workspace, nor advisory locks.

Tables (schema version 1):

- ``reconciler_schema``: one row, ``application`` (``reconciler state``: what marks the schema as ours) and
  ``version`` (the migrations applied).
- ``workspaces``: one row per state: ``lineage``, ``serial``, ``created_at``; the counters ``next_intent`` and
  ``next_journal`` (intents and journal entries are numbered per workspace, with no gap, because every write
  holds this row); the lock (``lock_*``, NULL when free; ``lock_expires`` is judged by the server's clock) and
  ``lock_generation``, the fencing token.
- ``intents``: ``seq`` orders them; ``addresses``, ``detail``, and the members (``heads``, ``specs``) are JSON
  text as in the SQLite state (NULL members: an intent of SQLite format 1 resolved before the upgrade, restored
  from such a file).
- ``resources``: as SQLite's, member rows included (see ``reconciler.state.sqlite.schema``), plus
  ``written_by``, the ``seq`` of the intent that wrote the row (NULL for an imported row), which is all a
  reader needs to decide whether an open intent is newer than the row.
- ``journal``: the same rows as SQLite's journal, compact forms included (``reconciler.state.sqlite.journal``),
  so a copy moves them verbatim; a trigger refuses updates and deletes, except the deletes of ``state push``
  replacing a whole workspace (the transaction sets ``reconciler.replacing`` to the workspace's name).

JSON columns are ``text``, not ``jsonb``: reconciler alone reads them, whole, and parsing megabytes of members
into ``jsonb`` on every intent would cost the server more than the rest of the write. An intent's large columns
are compressed with lz4 where the server has it (a 5,000-member intent in a third of the space, and faster to
write than uncompressed), else stored uncompressed (``pglz`` costs more CPU than the disk it saves).

``hold(workspace, fence)`` is how every write transaction starts: it locks the workspace's row, refuses
(SQLSTATE ``RCF01``) if a fence is given and the lock generation differs, or (``RCW01``) if the workspace has no
state, and sets ``reconciler.at``, the time of the write by the server's clock, which the write's statements
read with ``current_setting``. So a write needs nothing back from the server before it writes, and its
statements go out together, in one round trip (``store``: pipelined writes).

Migrations: ``MIGRATIONS[n]`` takes the schema from version ``n`` to ``n + 1`` (``MIGRATIONS[0]`` creates it).
They run in one transaction, under a transaction-scoped advisory lock keyed by the schema's name (only two
processes creating or upgrading the same schema at the same moment ever wait on it), and the version is read
again under that lock, so a migration runs once however many processes start together.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import psycopg

from reconciler.errors import StateAbsentError, StateError, StateVersionError
from reconciler.state.postgres.location import PostgresLocation

__all__ = [
    "APPLICATION",
    "AT",
    "FENCED",
    "HOLD",
    "MIGRATIONS",
    "NOW",
    "NO_WORKSPACE",
    "SCHEMA_VERSION",
    "connect",
    "ensure_workspace",
    "identify",
    "migrate",
    "utc_text",
]

APPLICATION = "reconciler state"

#: Every statement of every migration; ``{s}`` is the schema's name (checked: lower-case letters, digits, _),
#: ``{large}`` how an intent's large columns are stored (lz4, or uncompressed: see the module docstring).
MIGRATIONS: tuple[str, ...] = (
    """
CREATE TABLE {s}.reconciler_schema (
    one boolean PRIMARY KEY DEFAULT true CHECK (one),
    application text NOT NULL,
    version integer NOT NULL,
    migrated_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE TABLE {s}.workspaces (
    workspace text COLLATE "C" PRIMARY KEY,
    lineage text NOT NULL CHECK (lineage <> ''),
    serial bigint NOT NULL CHECK (serial >= 0),
    created_at text NOT NULL,
    next_intent bigint NOT NULL DEFAULT 1,
    next_journal bigint NOT NULL DEFAULT 1,
    lock_generation bigint NOT NULL DEFAULT 0,
    lock_id text,
    lock_holder text,
    lock_operation text,
    lock_started_at text,
    lock_expires_at text,
    lock_expires timestamptz,
    CHECK ((lock_id IS NULL) = (lock_expires IS NULL))
);
CREATE TABLE {s}.intents (
    workspace text COLLATE "C" NOT NULL,
    seq bigint NOT NULL,
    operation_id text COLLATE "C" NOT NULL,
    provider text NOT NULL,
    action text NOT NULL,
    fingerprint text NOT NULL,
    created_at text NOT NULL,
    resolved boolean NOT NULL DEFAULT false,
    resolved_at text,
    addresses text NOT NULL,
    detail text NOT NULL,
    heads text,
    specs text,
    PRIMARY KEY (workspace, seq),
    UNIQUE (workspace, operation_id)
);
ALTER TABLE {s}.intents ALTER COLUMN addresses SET {large}, ALTER COLUMN heads SET {large},
    ALTER COLUMN specs SET {large};
CREATE INDEX intents_open ON {s}.intents (workspace, seq) WHERE NOT resolved;
CREATE TABLE {s}.resources (
    workspace text COLLATE "C" NOT NULL,
    address text COLLATE "C" NOT NULL,
    status text NOT NULL CHECK (status IN ('pending', 'created', 'failed')),
    remote_id text,
    operation_id text,
    written_by bigint,
    member integer,
    kind text,
    provider text,
    spec_hash text,
    attempt integer,
    error text,
    created_at text NOT NULL,
    updated_at text NOT NULL,
    refreshed_at text,
    spec text,
    remote text,
    PRIMARY KEY (workspace, address),
    CHECK (member IS NOT NULL OR (kind IS NOT NULL AND provider IS NOT NULL AND spec_hash IS NOT NULL
                                  AND attempt IS NOT NULL AND spec IS NOT NULL))
);
CREATE TABLE {s}.journal (
    workspace text COLLATE "C" NOT NULL,
    seq bigint NOT NULL,
    entries integer NOT NULL DEFAULT 1 CHECK (entries > 0),
    at text NOT NULL,
    event text NOT NULL,
    address text,
    operation_id text,
    detail text NOT NULL,
    PRIMARY KEY (workspace, seq)
);
CREATE INDEX journal_address ON {s}.journal (workspace, address) WHERE address IS NOT NULL;
CREATE FUNCTION {s}.journal_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' AND current_setting('reconciler.replacing', true) = OLD.workspace THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'the journal is append-only';
END
$$;
CREATE TRIGGER journal_append_only BEFORE UPDATE OR DELETE ON {s}.journal
    FOR EACH ROW EXECUTE FUNCTION {s}.journal_append_only();
CREATE TRIGGER journal_not_truncated BEFORE TRUNCATE ON {s}.journal
    FOR EACH STATEMENT EXECUTE FUNCTION {s}.journal_append_only();
CREATE FUNCTION {s}.hold(ws text, fence bigint, OUT h_serial bigint, OUT h_next_intent bigint,
                         OUT h_next_journal bigint, OUT h_generation bigint, OUT h_at text, OUT h_now timestamptz,
                         OUT h_lock_id text, OUT h_lock_holder text, OUT h_lock_operation text,
                         OUT h_lock_started_at text, OUT h_lock_expires_at text, OUT h_lock_live boolean)
LANGUAGE plpgsql AS $$
BEGIN
    SELECT serial, next_intent, next_journal, lock_generation, clock_timestamp(), lock_id, lock_holder,
           lock_operation, lock_started_at, lock_expires_at, lock_expires > clock_timestamp()
    INTO h_serial, h_next_intent, h_next_journal, h_generation, h_now, h_lock_id, h_lock_holder,
         h_lock_operation, h_lock_started_at, h_lock_expires_at, h_lock_live
    FROM {s}.workspaces WHERE workspace = ws FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'the workspace % has no state', ws USING ERRCODE = 'RCW01';
    END IF;
    IF fence IS NOT NULL AND h_generation <> fence THEN
        RAISE EXCEPTION 'lock generation % is not %', h_generation, fence
            USING ERRCODE = 'RCF01', DETAIL = h_generation::text;
    END IF;
    h_at := to_char(h_now AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"');
    PERFORM set_config('reconciler.at', h_at, true);
END
$$;
""",
)

SCHEMA_VERSION = len(MIGRATIONS)

#: Server-side settings of every session: a write waits for another's row lock at most ``lock_timeout``, and a
#: session suspended inside a transaction (a SIGSTOPped run) frees the rows it holds after
#: ``idle_in_transaction_session_timeout``. Reconciler's transactions hold no lock while they wait for anything
#: but the database.
SESSION = "SET lock_timeout = '30s'; SET idle_in_transaction_session_timeout = '20s'"
#: The timestamp form of the whole state (``base``: *Times*), from the server's clock.
NOW = """to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')"""
#: The time of the write in progress, as ``hold`` set it.
AT = "current_setting('reconciler.at')"
#: How a write starts (see ``hold``): the workspace row's counters, lock, and the write's time.
HOLD = "SELECT * FROM {s}.hold(%s, %s)"
#: SQLSTATEs ``hold`` raises.
FENCED = "RCF01"
NO_WORKSPACE = "RCW01"


def utc_text(moment: datetime) -> str:
    """A server ``timestamptz`` (an aware datetime) in the state's timestamp form."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def connect(location: PostgresLocation, *, read_only: bool) -> psycopg.Connection[Any]:
    """A session in autocommit mode (every transaction is opened explicitly), its text in UTF-8."""
    try:
        conn = psycopg.connect(location.conninfo, autocommit=True, client_encoding="UTF8")
    except psycopg.Error as e:
        raise StateError(f"cannot connect to the PostgreSQL state {location}: {location.hide(_first_line(e))}") from e
    try:
        conn.execute(SESSION + ("; SET default_transaction_read_only = on" if read_only else ""))
    except psycopg.Error as e:
        conn.close()
        raise StateError(f"cannot use the PostgreSQL state {location}: {location.hide(_first_line(e))}") from e
    return conn


def identify(conn: psycopg.Connection[Any], location: PostgresLocation) -> int | None:
    """The schema version of the states at ``location``, or None if nothing is there (no schema, or a schema
    with nothing in it); raises StateError for a schema that holds something else."""
    s = location.schema
    row = conn.execute(
        "SELECT n.oid IS NOT NULL, to_regclass(%s) IS NOT NULL, "
        "(SELECT count(*) FROM pg_class c WHERE c.relnamespace = n.oid) "
        "FROM (SELECT 1) AS one LEFT JOIN pg_namespace n ON n.nspname = %s",
        (f"{s}.reconciler_schema", s),
    ).fetchone()
    assert row is not None
    exists, marked, relations = row
    if not exists or (not marked and relations == 0):
        return None
    if not marked:
        raise StateError(
            f"the schema {s} of {location} holds tables that are not a reconciler state; name another schema "
            "with ?schema=NAME in the URL"
        )
    found = conn.execute(f"SELECT application, version FROM {s}.reconciler_schema").fetchall()
    if len(found) != 1 or found[0][0] != APPLICATION or not isinstance(found[0][1], int):
        raise StateError(f"the state {location} is damaged: its schema {s} does not say what it holds")
    version: int = found[0][1]
    if version > SCHEMA_VERSION:
        raise StateVersionError(
            f"{location} was written by a newer reconciler (schema version {version}; this one reads up to "
            f"{SCHEMA_VERSION}); upgrade reconciler to use this state"
        )
    return version


def migrate(conn: psycopg.Connection[Any], location: PostgresLocation) -> None:
    """Create the schema or bring it to ``SCHEMA_VERSION``: one transaction, once, whoever races for it."""
    s = location.schema
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (f"reconciler schema {s}",))
        version = identify(conn, location)
        if version == SCHEMA_VERSION:
            return
        if version is None:
            _check_encoding(conn, location)
            exists = conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (s,)).fetchone()
            if exists is None:
                conn.execute(f"CREATE SCHEMA {s}")
            version = 0
        large = "COMPRESSION lz4" if _has_lz4(conn) else "STORAGE EXTERNAL"
        for migration in MIGRATIONS[version:]:
            conn.execute(migration.format(s=s, large=large))
        conn.execute(
            f"INSERT INTO {s}.reconciler_schema (application, version) VALUES (%s, %s) "
            "ON CONFLICT (one) DO UPDATE SET version = excluded.version, migrated_at = clock_timestamp()",
            (APPLICATION, SCHEMA_VERSION),
        )


def ensure_workspace(
    conn: psycopg.Connection[Any], location: PostgresLocation, workspace: str, *, create: bool, lineage: str | None
) -> None:
    """Check the workspace's state is there and whole; create it (serial 0, committed before anyone uses it)
    if ``create``, else raise StateAbsentError."""
    s = location.schema
    if create:
        conn.execute(
            f"INSERT INTO {s}.workspaces (workspace, lineage, serial, created_at) VALUES (%s, %s, 0, {NOW}) "
            "ON CONFLICT (workspace) DO NOTHING",
            (workspace, lineage or str(uuid.uuid4())),
        )
    row = conn.execute(f"SELECT lineage, serial FROM {s}.workspaces WHERE workspace = %s", (workspace,)).fetchone()
    if row is None:
        raise StateAbsentError(f"there is no state of workspace {workspace} at {location} yet")


def _has_lz4(conn: psycopg.Connection[Any]) -> bool:
    row = conn.execute(
        "SELECT 'lz4' = ANY(enumvals) FROM pg_settings WHERE name = 'default_toast_compression'"
    ).fetchone()
    return bool(row and row[0])


def _check_encoding(conn: psycopg.Connection[Any], location: PostgresLocation) -> None:
    if conn.info.server_version < 120000:
        raise StateError(
            f"{location} is PostgreSQL {conn.info.server_version // 10000}; a reconciler state needs 12 or later"
        )
    row = conn.execute("SHOW server_encoding").fetchone()
    if row is None or row[0] != "UTF8":
        raise StateError(
            f"the database of {location} stores text as {row[0] if row else 'unknown'}, which cannot hold every "
            "name and value a state records; use a database created WITH ENCODING 'UTF8'"
        )


def _first_line(e: BaseException) -> str:
    return str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
