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

import contextlib
import os
import sqlite3
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from reconciler.encoding import dumps_text
from reconciler.errors import StateAbsentError, StateError, StateVersionError
from reconciler.state.base import FORMAT_VERSION

__all__ = [
    "BUSY_TIMEOUT",
    "WRITING",
    "connect",
    "connect_read_only",
    "fsync",
    "immediate",
    "identify",
    "open_state_file",
    "utc_iso",
    "wal_path",
]

APPLICATION_ID = 0x52434E4C  # "RCNL"
BUSY_TIMEOUT = 15.0
#: The ``meta`` key a store sets (to 1) with its first write and clears when it is closed, each time
#: checkpointed into the file itself: a file that says it while no -wal holds any change is a copy taken without
#: the -wal that holds its latest changes, not a state to plan against.
WRITING = "writing"

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


def wal_path(path: Path) -> Path:
    return path.with_name(path.name + "-wal")


def open_state_file(
    path: Path, *, read_only: bool = False, lineage: str | None = None, replace_empty: bool = False
) -> sqlite3.Connection:
    """Open a reconciler state file of the current format, refusing anything else before writing to it.

    A missing file is created as a new state (with ``lineage``, else a new one), complete and durable before it
    appears under its name; read-only, a missing file raises ``StateAbsentError`` and nothing is created. An
    existing file is identified through a read-only connection first, so that a file that is refused is left
    exactly as it was (a read-write connection would merge a -wal beside it into it when closed). Read-only,
    the file and its -wal are never written; an older format is then upgraded in a copy in memory.
    ``replace_empty`` (``state push`` only, which replaces the whole state anyway) takes a 0-byte file for none.
    """
    if path.is_dir():
        raise StateError(f"{path} is a directory, not a state file")
    if not path.exists():
        if read_only:
            raise StateAbsentError(f"there is no state at {path} yet")
        _refuse_stray_wal(path)
        _create_state(path, lineage=lineage)
    elif replace_empty and _is_empty(path):
        _create_state(path, lineage=lineage, replace=True)
    version = _check_existing(path)
    if read_only:
        conn = connect_read_only(path)
        if version < FORMAT_VERSION:
            conn = _upgraded_in_memory(conn, path)
        return conn
    try:
        conn = connect(path)
    except sqlite3.Error as e:
        raise StateError(f"cannot open the state file {path}: {e}") from e
    try:
        _prepare(conn, path)
    except BaseException:
        conn.close()
        raise
    return conn


def _refuse_stray_wal(path: Path) -> None:
    """A -wal whose database is gone would be read into a new state made under the same name."""
    wal = wal_path(path)
    if wal.exists() and wal.stat().st_size > 0:
        raise StateError(
            f"there is no state file {path}, but there is a {wal.name} beside where it would be: a state's latest "
            f"changes without the state. Put the state file back beside it (or move {wal.name} away if it is not "
            "this state's) and run again"
        )


def _check_existing(path: Path) -> int:
    """The format version of the state file at ``path``, read through a read-only connection that writes
    nothing; raises StateError for anything that is not a complete reconciler state."""
    wal = wal_path(path)
    if _is_empty(path):
        raise StateError(
            f"{path} is empty (0 bytes): it is not a reconciler state, and reconciler will not start a new state "
            "over it. To start a new state on purpose, delete it and run again; to restore a copy saved with "
            "`reconciler state pull`, use `reconciler state push FILE`"
        )
    conn = connect_read_only(path)
    try:
        version, writing = identify(conn, path)
        if writing and not _has_frames(wal):
            raise StateError(
                f"{path} is incomplete: its latest changes were in {wal.name}, which is missing (a copy of the "
                "state file taken without its -wal, or while a run was writing it). Restore the state together "
                "with its -wal, or restore a copy saved with `reconciler state pull` by `reconciler state push "
                "FILE`"
            )
    finally:
        conn.close()
    return version


def _is_empty(path: Path) -> bool:
    """A 0-byte file with no -wal that holds anything: nothing at all, not even a state of an older reconciler
    whose changes are all still in its -wal."""
    wal = wal_path(path)
    return path.stat().st_size == 0 and not (wal.exists() and wal.stat().st_size > 0)


def _has_frames(wal: Path) -> bool:
    """Whether a -wal holds any change: more than its 32-byte header."""
    return wal.exists() and wal.stat().st_size > 32


def connect_read_only(path: Path) -> sqlite3.Connection:
    """A connection that cannot write the file or its -wal, nor checkpoint one into the other (SQLite may create
    an empty -wal and the -shm index beside the file, which hold no state)."""
    uri = "file:" + urllib.parse.quote(str(path.absolute())) + "?mode=ro"
    try:
        conn = sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA query_only = ON")
    except sqlite3.Error as e:
        raise StateError(f"cannot open the state file {path} to read it: {e}") from e
    return conn


def _upgraded_in_memory(conn: sqlite3.Connection, path: Path) -> sqlite3.Connection:
    """An older format, read by a command that writes nothing: upgraded in a copy in memory, the file untouched."""
    memory = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
    try:
        conn.backup(memory)
        _upgrade(memory)
    except sqlite3.Error as e:
        memory.close()
        raise StateError(f"cannot read the state file {path}: {e}") from e
    finally:
        conn.close()
    return memory


def _create_state(path: Path, *, lineage: str | None, replace: bool = False) -> None:
    """A new state, complete in its own file before it appears under its name: made under a temporary name
    in the same directory, its WAL checkpointed into the file, then linked into place (which fails if the name
    was taken meanwhile: another process made the state first, and that one is used). So no process ever sees
    a half-made state, and a copy of the file alone always holds the lineage."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.new-{uuid.uuid4().hex[:12]}")
        fd = os.open(temporary, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        os.close(fd)
    except OSError as e:
        raise StateError(f"cannot create the state file {path}: {e.strerror}") from e
    try:
        conn = connect(temporary)
        try:
            _use_wal(conn)
            conn.execute("PRAGMA synchronous = FULL")
            conn.execute("PRAGMA fullfsync = ON")
            conn.execute("PRAGMA checkpoint_fullfsync = ON")
            _initialise(conn, lineage=lineage)
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            conn.close()
        fsync(temporary)
        if replace:
            os.replace(temporary, path)
        else:
            with contextlib.suppress(FileExistsError):
                os.link(temporary, path)
        _fsync_directory(path.parent)
    except sqlite3.Error as e:
        raise StateError(f"cannot create the state file {path}: {e}") from e
    except OSError as e:
        raise StateError(f"cannot create the state file {path}: {e.strerror}") from e
    finally:
        for leftover in (temporary, wal_path(temporary), temporary.with_name(temporary.name + "-shm")):
            with contextlib.suppress(FileNotFoundError):
                leftover.unlink()


def fsync(path: Path) -> None:
    """Make a file's contents durable before it is linked or renamed into place."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _prepare(conn: sqlite3.Connection, path: Path) -> None:
    try:
        version, _ = identify(conn, path)
        _use_wal(conn)
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA fullfsync = ON")
        conn.execute("PRAGMA checkpoint_fullfsync = ON")
        if version < FORMAT_VERSION:
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


def identify(conn: sqlite3.Connection, path: Path) -> tuple[int, bool]:
    """The state's format version, and whether a run was writing it (``WRITING``) as last committed; raises
    for anything that is not a complete state this reconciler can read.

    Everything is read in one transaction, so it is one snapshot."""
    conn.execute("BEGIN")
    try:
        return _identify_snapshot(conn, path)
    finally:
        if conn.in_transaction:
            conn.execute("ROLLBACK")


def _identify_snapshot(conn: sqlite3.Connection, path: Path) -> tuple[int, bool]:
    try:
        (app_id,) = conn.execute("PRAGMA application_id").fetchone()
        (tables,) = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.DatabaseError as e:
        raise StateError(f"{path} is not a reconciler state file (not an SQLite database: {e})") from e
    if app_id == 0 and tables == 0:
        raise StateError(
            f"{path} is not a complete reconciler state: it is an SQLite database with nothing in it (perhaps a "
            "copy of a state file taken without its -wal). Restore the state together with its -wal, or restore "
            "a copy saved with `reconciler state pull` by `reconciler state push FILE`; to start a new state on "
            "purpose, delete it"
        )
    if app_id != APPLICATION_ID:
        raise StateError(f"{path} is not a reconciler state file (it is an SQLite database of something else)")
    try:
        meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
    except sqlite3.DatabaseError as e:
        raise StateError(f"the state {path} is damaged: {e}") from e
    version = meta.get("format_version")
    if not isinstance(version, int):
        raise StateError(f"the state {path} is damaged: it records no format version")
    if version > FORMAT_VERSION:
        raise StateVersionError(
            f"{path} was written by a newer reconciler (state format {version}; this one reads up to "
            f"{FORMAT_VERSION}); upgrade reconciler to use this state"
        )
    lineage = meta.get("lineage")
    if not isinstance(lineage, str) or not lineage:
        raise StateError(f"the state {path} is damaged: it records no lineage")
    if not isinstance(meta.get("serial"), int):
        raise StateError(f"the state {path} is damaged: it records no serial")
    return version, meta.get(WRITING) == 1


def _initialise(conn: sqlite3.Connection, *, lineage: str | None) -> None:
    """A new file (nobody else has it yet) becomes a state of the current format, serial 0."""
    with immediate(conn):
        for statement in _SCHEMA.split(";\n"):
            if statement.strip():
                conn.execute(statement)
        conn.executemany(
            "INSERT INTO meta (key, value) VALUES (?, ?)",
            [
                ("lineage", lineage or str(uuid.uuid4())),
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
