"""The SQLite state file: its tables, how it is opened and recognised, and how an older format is upgraded.

Durability is the product here: an intent that ``record_intent`` returned from must survive a SIGKILL and a
power cut, so the file runs in WAL mode with ``synchronous=FULL`` (every commit is fsynced; ``fullfsync``
too, which matters on macOS), and every write is one ``BEGIN IMMEDIATE`` transaction (``immediate``), which
also serialises writers across threads and processes.

Tables (``format_version`` 4):

- ``meta``: key/value; ``lineage``, ``serial``, ``format_version``, ``created_at``.
- ``resources``: one row per address with an outcome, or imported. The narrow columns the planner reads come
  first and the JSON columns (``spec``, ``remote``) last, so a scan for summaries never touches their overflow
  pages. A row written by an intent's outcome is a *member row*: it names ``member``, the address's index in
  that intent's members, and leaves ``kind``, ``provider``, ``spec_hash``, ``attempt`` and ``spec`` NULL,
  which reads take from the members (the intent already holds every one of them; writing them again per
  address was most of the cost of recording outcomes). Every other row carries its own columns (``member``
  NULL): imported rows, and rows written by formats 1 and 2 (format 1 also wrote a ``pending`` row per address
  when it recorded an intent; such rows may remain).
- ``intents``: ordered by ``seq``; ``addresses`` (JSON array, request order) and ``detail`` are JSON;
  ``resolved`` is 0 or 1.
- ``intent_members``: one row per intent (but format 1 intents resolved before the upgrade to format 4),
  written once, with what each of its addresses will be: ``heads``, a
  JSON array of ``[address, kind, provider, spec_hash, attempt, replaced remote id or null]``, and ``specs``,
  the JSON array of their specs in the same order (apart, so that summaries decode only the heads; a table of
  its own, so that closing an intent rewrites a small row, not a megabyte of members). An address is
  ``pending`` while an open intent newer than its row (if any) covers it: reads lay the open intents over the
  rows (``overlay``), so recording an intent writes one row however many addresses it covers.
- ``journal``: append-only (triggers refuse updates and deletes); a row may hold several consecutive entries
  (``entries``; see ``journal`` for its row forms).
- ``lock``: at most one row; ``expires`` is the epoch second it lapses at, ``expires_at`` the same for humans.

The file's SQLite ``application_id`` marks it as a reconciler state, so another SQLite database given by
mistake is refused instead of being written into.
"""

from __future__ import annotations

import os
import sqlite3
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from reconciler.encoding import dumps_text
from reconciler.errors import StateError, StateVersionError
from reconciler.state.base import FORMAT_VERSION

__all__ = ["BUSY_TIMEOUT", "connect", "immediate", "open_state_file", "utc_iso"]

APPLICATION_ID = 0x52434E4C  # "RCNL"
BUSY_TIMEOUT = 15.0

_INTENT_MEMBERS = (
    "CREATE TABLE intent_members (operation_id TEXT PRIMARY KEY, heads TEXT NOT NULL, specs TEXT NOT NULL)"
)

#: ``{name}``: the upgrade from format 2 builds the table under another name, then swaps it in.
_RESOURCES = """
CREATE TABLE {name} (
    address TEXT PRIMARY KEY,
    kind TEXT,
    provider TEXT,
    spec_hash TEXT,
    status TEXT NOT NULL CHECK (status IN ('pending', 'created', 'failed')),
    remote_id TEXT,
    operation_id TEXT,
    attempt INTEGER,
    error TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    refreshed_at TEXT,
    member INTEGER,
    spec TEXT,
    remote TEXT,
    CHECK (member IS NOT NULL OR (kind IS NOT NULL AND provider IS NOT NULL AND spec_hash IS NOT NULL
                                  AND attempt IS NOT NULL AND spec IS NOT NULL))
)"""

_SCHEMA = f"""
CREATE TABLE meta (key TEXT PRIMARY KEY, value NOT NULL);
{_RESOURCES.format(name="resources")};
CREATE TABLE intents (
    seq INTEGER PRIMARY KEY,
    operation_id TEXT NOT NULL UNIQUE,
    provider TEXT NOT NULL,
    action TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    created_at TEXT NOT NULL,
    resolved INTEGER NOT NULL DEFAULT 0,
    resolved_at TEXT,
    addresses TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE INDEX intents_open ON intents (seq) WHERE resolved = 0;
{_INTENT_MEMBERS};
CREATE TABLE journal (
    seq INTEGER PRIMARY KEY,
    at TEXT NOT NULL,
    event TEXT NOT NULL,
    address TEXT,
    operation_id TEXT,
    detail TEXT NOT NULL,
    entries INTEGER NOT NULL DEFAULT 1
);
CREATE INDEX journal_address ON journal (address);
CREATE TRIGGER journal_no_update BEFORE UPDATE ON journal
    BEGIN SELECT RAISE(ABORT, 'the journal is append-only'); END;
CREATE TRIGGER journal_no_delete BEFORE DELETE ON journal
    BEGIN SELECT RAISE(ABORT, 'the journal is append-only'); END;
CREATE TABLE lock (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    lock_id TEXT NOT NULL,
    holder TEXT NOT NULL,
    operation TEXT NOT NULL,
    started_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    expires REAL NOT NULL
);
"""


def utc_iso(seconds: float) -> str:
    """Every timestamp column's form: fixed width (always microseconds), so timestamps sort as strings."""
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def connect(path: Path) -> sqlite3.Connection:
    """A connection in autocommit mode: every transaction is opened explicitly (``immediate`` or ``BEGIN``)."""
    return sqlite3.connect(path, timeout=BUSY_TIMEOUT, isolation_level=None, check_same_thread=False)


@contextmanager
def immediate(conn: sqlite3.Connection) -> Iterator[None]:
    """A ``BEGIN IMMEDIATE`` transaction, committed if the block ends normally, else rolled back: the write
    lock is taken up front, so two writers never both read a state and then both act on it."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def open_state_file(path: Path) -> sqlite3.Connection:
    """Open (creating if needed) a reconciler state file of the current format, refusing anything else before
    writing to it."""
    if path.is_dir():
        raise StateError(f"{path} is a directory, not a state file")
    try:
        _create_private(path)
        conn = connect(path)
    except OSError as e:
        raise StateError(f"cannot create the state file {path}: {e.strerror}") from e
    except sqlite3.Error as e:
        raise StateError(f"cannot open the state file {path}: {e}") from e
    try:
        _prepare(conn, path)
    except BaseException:
        conn.close()
        raise
    return conn


def _create_private(path: Path) -> None:
    """The file exists, owner-only, before SQLite opens it (SQLite gives its -wal and -shm files the same
    mode); the directory entry is fsynced, so a fresh state survives a power cut like its first commit."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    os.close(fd)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _prepare(conn: sqlite3.Connection, path: Path) -> None:
    try:
        version = _identify(conn, path)
        _use_wal(conn)
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA fullfsync = ON")
        conn.execute("PRAGMA checkpoint_fullfsync = ON")
        if version is None:
            _initialise(conn)
        elif version < FORMAT_VERSION:
            _upgrade(conn)
    except sqlite3.Error as e:
        raise StateError(f"cannot open the state file {path}: {e}") from e


def _use_wal(conn: sqlite3.Connection) -> None:
    """Switching a new file to WAL needs it to itself, and SQLite answers "locked" at once, without waiting,
    while another process or thread is opening the same new file: so wait here, as long as for any lock."""
    deadline = time.monotonic() + BUSY_TIMEOUT
    while True:
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def _identify(conn: sqlite3.Connection, path: Path) -> int | None:
    """The state's format version, None for a new (empty) file; raises for anything that is not a state this
    reconciler can read.

    Everything is read in one transaction, so a state another process is creating right now is seen either
    empty or complete."""
    conn.execute("BEGIN")
    try:
        return _identify_snapshot(conn, path)
    finally:
        if conn.in_transaction:
            conn.execute("ROLLBACK")


def _identify_snapshot(conn: sqlite3.Connection, path: Path) -> int | None:
    try:
        (app_id,) = conn.execute("PRAGMA application_id").fetchone()
        (tables,) = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.DatabaseError as e:
        raise StateError(f"{path} is not a reconciler state file (not an SQLite database: {e})") from e
    if app_id == 0 and tables == 0:
        return None
    if app_id != APPLICATION_ID:
        raise StateError(f"{path} is not a reconciler state file (it is an SQLite database of something else)")
    try:
        row = conn.execute("SELECT value FROM meta WHERE key = 'format_version'").fetchone()
    except sqlite3.DatabaseError as e:
        raise StateError(f"{path} is a damaged reconciler state file: {e}") from e
    if row is None or not isinstance(row[0], int):
        raise StateError(f"{path} is a damaged reconciler state file: it records no format version")
    if row[0] > FORMAT_VERSION:
        raise StateVersionError(
            f"{path} was written by a newer reconciler (state format {row[0]}; this one reads up to "
            f"{FORMAT_VERSION}); upgrade reconciler to use this state"
        )
    return row[0]


def _initialise(conn: sqlite3.Connection) -> None:
    """Idempotent under a race: whoever takes the write lock second finds the schema there and stops."""
    with immediate(conn):
        if conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] == 0:
            for statement in _SCHEMA.split(";\n"):
                if statement.strip():
                    conn.execute(statement)
            conn.executemany(
                "INSERT INTO meta (key, value) VALUES (?, ?)",
                [
                    ("lineage", str(uuid.uuid4())),
                    ("serial", 0),
                    ("format_version", FORMAT_VERSION),
                    ("created_at", utc_iso(time.time())),
                ],
            )
            conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")


def _upgrade(conn: sqlite3.Connection) -> None:
    """One format at a time, all in one transaction, leaving the serial and the journal as they were.
    Idempotent under a race like ``_initialise``: the version is read again under the write lock."""
    with immediate(conn):
        (version,) = conn.execute("SELECT value FROM meta WHERE key = 'format_version'").fetchone()
        if version == 1:
            _upgrade_1_to_2(conn)
            version = 2
        if version == 2:
            _upgrade_2_to_3(conn)
            version = 3
        if version == 3:
            _upgrade_3_to_4(conn)
        conn.execute("UPDATE meta SET value = ? WHERE key = 'format_version'", (FORMAT_VERSION,))


def _upgrade_1_to_2(conn: sqlite3.Connection) -> None:
    """Journal rows gain ``entries`` (every format 1 row is one entry), and ``intent_members`` appears, in its
    format 2 shape (one JSON ``members`` column), empty: format 1 intents wrote pending rows instead."""
    conn.execute("ALTER TABLE journal ADD COLUMN entries INTEGER NOT NULL DEFAULT 1")
    conn.execute("CREATE TABLE intent_members (operation_id TEXT PRIMARY KEY, members TEXT NOT NULL)")


def _upgrade_2_to_3(conn: sqlite3.Connection) -> None:
    """``resources`` is rebuilt with ``member`` and the columns a member row leaves NULL (SQLite cannot drop a
    NOT NULL in place); every row keeps its own columns. ``intent_members`` splits its JSON into ``heads``
    and ``specs``."""
    columns = (
        "address, kind, provider, spec_hash, status, remote_id, operation_id, attempt, error, created_at, "
        "updated_at, refreshed_at, spec, remote"
    )
    conn.execute(_RESOURCES.format(name="resources_v3"))
    conn.execute(f"INSERT INTO resources_v3 ({columns}) SELECT {columns} FROM resources")
    conn.execute("DROP TABLE resources")
    conn.execute("ALTER TABLE resources_v3 RENAME TO resources")
    conn.execute("ALTER TABLE intent_members RENAME TO intent_members_v2")
    conn.execute(_INTENT_MEMBERS)
    conn.execute(
        "INSERT INTO intent_members (operation_id, heads, specs) SELECT operation_id, "
        "json_extract(members, '$.heads'), json_extract(members, '$.specs') FROM intent_members_v2"
    )
    conn.execute("DROP TABLE intent_members_v2")


#: The rows an intent without members wrote (as ``pending``, then maybe with an outcome), in its address order.
_ROWS_OF_INTENT = """
SELECT r.address, r.kind, r.provider, r.spec_hash, r.attempt, r.spec
FROM json_each(?1) AS a JOIN resources AS r ON r.address = a.value
WHERE r.operation_id = ?2 AND r.member IS NULL
ORDER BY a.key
"""


def _upgrade_3_to_4(conn: sqlite3.Connection) -> None:
    """Every open intent gets members, so outcomes have one way to be written.

    An open intent without members is a format 1 one: it wrote a ``pending`` row (with its own columns) per
    address when it was recorded. Its members are made of the rows it wrote (pending, or since given an
    outcome), in its address order, with no replaced id (the journal already holds its ``replaced`` entries).
    An address whose row is gone or was since written by another intent gets no member: its outcome reaches the
    journal only, as before. The rows themselves stay as they are, and reads show them as before: a row
    written by the intent itself is never overridden by it. The specs are the rows' JSON texts as stored.
    """
    open_without_members = conn.execute(
        "SELECT operation_id, addresses FROM intents WHERE resolved = 0 "
        "AND operation_id NOT IN (SELECT operation_id FROM intent_members) ORDER BY seq"
    ).fetchall()
    for operation_id, addresses in open_without_members:
        heads: list[list[object]] = []
        specs: list[str] = []
        for address, kind, provider, spec_hash, attempt, spec in conn.execute(
            _ROWS_OF_INTENT, (addresses, operation_id)
        ):
            heads.append([address, kind, provider, spec_hash, attempt, None])
            specs.append(spec)
        conn.execute(
            "INSERT INTO intent_members (operation_id, heads, specs) VALUES (?, ?, ?)",
            (operation_id, dumps_text(heads), "[" + ",".join(specs) + "]"),
        )
