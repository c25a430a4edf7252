"""Creating the state schema, and bringing an older one to this version under the write lock.

A new store gets every table. An SQLite file written by an older lms-sync (schema 1 or 2: the
ledger with its processed-exports table, and ``users.sqlite`` beside it) is first copied beside
itself (``ledger.sqlite.v2.bak``), then migrated in one transaction: the missing columns, the
user cache imported from ``users.sqlite``, the version recorded. In PostgreSQL the transaction is
the backup: a failed migration leaves nothing changed. A newer schema is refused (exit 2).
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path

from pipelines.core.errors import StateVersionError
from pipelines.core.state_location import StateLocation
from pipelines.state.database import StateDB, closing_on_error, connect_state
from pipelines.state.state_schema import SCHEMA_VERSION, schema_statements, view_statement

__all__ = ["USERS_FILE", "ensure_schema", "open_state", "schema_version"]

USERS_FILE = "users.sqlite"  # where lms-sync before schema 3 kept the user cache
_ADDED_COLUMNS = (
    ("account_id", "TEXT"),
    ("user_id", "TEXT"),
    ("completion_id", "TEXT"),
    ("lease_until", "DOUBLE PRECISION"),
)


def schema_version(db: StateDB) -> int:
    """The store's schema version (0: nothing created yet)."""
    if db.dialect == "sqlite":
        return int(db.execute("PRAGMA user_version").fetchone()[0])
    if not db.table_exists("state_version"):
        return 0
    return int(db.execute("SELECT coalesce(max(version), 0) FROM state_version").fetchone()[0])


def ensure_schema(db: StateDB, path: Path | None = None) -> None:
    """Create the schema, or migrate an older one (SQLite ``path``: backed up first)."""
    version = schema_version(db)
    if version == SCHEMA_VERSION:
        return
    if version > SCHEMA_VERSION:
        raise StateVersionError(db.where, version, SCHEMA_VERSION)
    backup = _backup(db, path, version) if version and path is not None else None
    with db.write():
        version = schema_version(db)  # another process may have got here first
        if version > SCHEMA_VERSION:
            raise StateVersionError(db.where, version, SCHEMA_VERSION)
        if version == SCHEMA_VERSION:
            return
        for statement in schema_statements(db.dialect)[:-1]:  # IF NOT EXISTS: new tables only
            db.execute(statement)
        if version:
            _migrate(db, path)
        db.execute("DROP VIEW IF EXISTS deliveries_readable")
        db.execute(view_statement(db.dialect))
        note = f"migrated from {version}, backup {backup}" if version else "created"
        db.execute(
            "INSERT INTO state_version (version, applied_at, note) VALUES (?, ?, ?)",
            (SCHEMA_VERSION, datetime.now(UTC).isoformat(timespec="seconds"), note),
        )
        if db.dialect == "sqlite":
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


def _backup(db: StateDB, path: Path | None, version: int) -> Path | None:
    """An SQLite copy of the store beside it, before it is migrated (the first one is kept)."""
    if db.dialect != "sqlite" or path is None:
        return None
    backup = path.with_name(f"{path.name}.v{version}.bak")
    if not backup.exists():
        with closing(sqlite3.connect(backup)) as copy:
            db.conn.backup(copy)
        backup.chmod(0o600)
    return backup


def _migrate(db: StateDB, path: Path | None) -> None:
    """Schema 1 or 2 (SQLite) to this one, inside the caller's write transaction."""
    present = {row[1] for row in db.execute("PRAGMA table_info(deliveries)")}
    for column, kind in _ADDED_COLUMNS:
        if column not in present:
            db.execute(f"ALTER TABLE deliveries ADD COLUMN {column} {kind}")
    users = path.with_name(USERS_FILE) if path is not None else None
    if users is not None and users.exists():
        _import_user_cache(db, users)


def _import_user_cache(db: StateDB, users: Path) -> None:
    """Copy the rows of a pre-3 ``users.sqlite`` into the store's user cache (newer rows win)."""
    with closing(sqlite3.connect(f"{users.resolve().as_uri()}?mode=ro", uri=True)) as old:
        has_table = old.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'user_cache'"
        ).fetchone()
        rows = old.execute("SELECT * FROM user_cache").fetchall() if has_table else []
    db.executemany(
        """INSERT INTO user_cache VALUES (?, ?, ?, ?, ?, ?)
           ON CONFLICT (target, account, kind, value) DO UPDATE SET
               user_id = excluded.user_id, fetched_at = excluded.fetched_at
           WHERE excluded.fetched_at > user_cache.fetched_at""",
        rows,
    )


def open_state(location: StateLocation, *, read_only: bool = False) -> StateDB | None:
    """Connect and bring the schema to this version; ``read_only`` (dry runs) creates and
    changes nothing and gives None where there is no state yet."""
    if not read_only:
        db = connect_state(location)
        with closing_on_error(db):
            ensure_schema(db, location.path)
        return db
    if location.kind == "sqlite":
        assert location.path is not None
        if not location.path.exists():
            return None
        uri = f"{location.path.resolve().as_uri()}?mode=ro"
        conn = sqlite3.connect(uri, uri=True, timeout=30.0, check_same_thread=False)
        return StateDB(conn, "sqlite", location.display)
    db = connect_state(location)
    if not db.table_exists("state_version"):
        db.close()
        return None
    return db


def state_exists(location: StateLocation) -> bool:
    """Is there a state to read (a dry run reads one but never creates one)?"""
    db = open_state(location, read_only=True)
    if db is None:
        return False
    db.close()
    return True
