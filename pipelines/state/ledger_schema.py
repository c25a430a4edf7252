"""The delivery ledger's SQLite schema, its SQL statements, the integer codes it stores, and
the ``targets`` and ``runs`` rows that deliveries refer to.

``classify`` answers with a status code (an index into ``STATUSES``); the ``deliveries`` table
stores an outcome code (small integers take no space in an SQLite record).
"""

from __future__ import annotations

import os
import socket
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from pipelines.core.errors import StateVersionError
from pipelines.core.outcomes import KeyStatus

__all__ = [
    "CHANGED",
    "DELIVERED",
    "DONE",
    "DUP",
    "DUPLICATE",
    "FAILED",
    "GAVE_UP",
    "GAVE_UP_CODE",
    "GIVE_UP_AFTER_RUNS",
    "IN_DOUBT",
    "IN_FLIGHT",
    "LOAD_SQL",
    "MARK_SQL",
    "NEW",
    "OUTCOME_NAMES",
    "RECORD_SQL",
    "RETRY",
    "SCHEMA_VERSION",
    "STATUSES",
    "STATUS_OF",
    "create_schema",
    "normalise_target",
    "run_ref",
    "target_ref",
    "upgrade_schema",
]

GIVE_UP_AFTER_RUNS = 3
# classify() answers, by code (the index into this tuple).
STATUSES = tuple(KeyStatus)
NEW, DELIVERED, CHANGED, IN_DOUBT, RETRY, GAVE_UP, DUPLICATE = range(len(STATUSES))

# Stored outcome codes.
IN_FLIGHT, DONE, FAILED, GAVE_UP_CODE, DUP = 1, 2, 3, 4, 5
OUTCOME_NAMES = {
    IN_FLIGHT: "in_flight",
    DONE: "delivered",
    FAILED: "failed",
    GAVE_UP_CODE: "gave_up",
    DUP: "duplicate",
}
# The classify() status of every stored outcome but delivered (which compares body hashes).
STATUS_OF = {IN_FLIGHT: IN_DOUBT, FAILED: RETRY, GAVE_UP_CODE: GAVE_UP, DUP: DUPLICATE}
SCHEMA_VERSION = 2  # 2: account_id, user_id, completion_id per key

_SCHEMA = f"""
CREATE TABLE targets (id INTEGER PRIMARY KEY, base_url TEXT NOT NULL UNIQUE);
CREATE TABLE runs (
    id INTEGER PRIMARY KEY, run_id TEXT NOT NULL UNIQUE, pid INTEGER, host TEXT, started_at TEXT
);
CREATE TABLE locks (
    target_id INTEGER PRIMARY KEY, run_id TEXT NOT NULL, pid INTEGER NOT NULL,
    host TEXT NOT NULL, pid_start TEXT, since TEXT NOT NULL
);
CREATE TABLE deliveries (
    target_id INTEGER NOT NULL,
    key BLOB NOT NULL,               -- 16 bytes: the BLAKE2b-128 idempotency key
    outcome INTEGER NOT NULL,        -- 1 in_flight, 2 delivered, 3 failed, 4 gave_up, 5 duplicate
    body_hash BLOB,                  -- 16 bytes: BLAKE2b-128 of the body last sent
    attempts INTEGER NOT NULL DEFAULT 0,
    failed_runs INTEGER NOT NULL DEFAULT 0,
    last_failed_run INTEGER,         -- runs.id of the last run that failed it with a 4xx
    prev_outcome INTEGER,            -- outcome before in_flight, restored by unmark()
    run INTEGER,                     -- runs.id of the last run that touched it
    remote_id TEXT,
    http_status INTEGER,
    error_code TEXT,
    message TEXT,
    updated_at INTEGER NOT NULL,     -- unix seconds (of an in_flight key: when it went in flight)
    account_id TEXT,                 -- the account and the user id in the path it was sent to
    user_id TEXT,
    completion_id TEXT,              -- the unified id of the completion the API created
    PRIMARY KEY (target_id, key)
) WITHOUT ROWID;
CREATE INDEX deliveries_outcome ON deliveries (target_id, outcome);
{{view}};
PRAGMA user_version = {SCHEMA_VERSION};
"""

# Added by schema 2: (column, type) added to a schema-1 file by ``upgrade_schema``.
_ADDED_COLUMNS = (("account_id", "TEXT"), ("user_id", "TEXT"), ("completion_id", "TEXT"))
_VIEW = f"""CREATE VIEW deliveries_readable AS
SELECT t.base_url AS target, lower(hex(d.key)) AS key,
       CASE d.outcome {" ".join(f"WHEN {c} THEN '{n}'" for c, n in OUTCOME_NAMES.items())} END
           AS outcome,
       d.attempts, d.failed_runs, lower(hex(d.body_hash)) AS body_hash, d.remote_id,
       d.http_status, d.error_code, d.message, r.run_id,
       datetime(d.updated_at, 'unixepoch') AS updated_at,
       d.account_id, d.user_id, d.completion_id
FROM deliveries d JOIN targets t ON t.id = d.target_id LEFT JOIN runs r ON r.id = d.run"""
_SCHEMA = _SCHEMA.replace("{view}", _VIEW)

MARK_SQL = f"""
INSERT INTO deliveries (target_id, key, outcome, body_hash, run, updated_at, account_id, user_id)
VALUES (?1, ?2, {IN_FLIGHT}, ?3, ?4, ?5, ?6, ?7)
ON CONFLICT (target_id, key) DO UPDATE SET
    account_id = coalesce(excluded.account_id, account_id),
    user_id = coalesce(excluded.user_id, user_id),
    prev_outcome = CASE WHEN outcome = {IN_FLIGHT} AND run IS excluded.run
                        THEN prev_outcome ELSE outcome END,
    outcome = {IN_FLIGHT}, body_hash = excluded.body_hash, run = excluded.run,
    updated_at = excluded.updated_at
"""

# A 4xx failure carries last_failed_run (else NULL): counted once per run, gave_up at 3 runs.
RECORD_SQL = f"""
INSERT INTO deliveries (target_id, key, outcome, attempts, failed_runs, last_failed_run,
                        remote_id, http_status, error_code, message, run, updated_at,
                        completion_id)
VALUES (:t, :k, :o, :a, :lfr IS NOT NULL, :lfr, :rid, :st, :code, :msg, :run, :now, :cid)
ON CONFLICT (target_id, key) DO UPDATE SET
    failed_runs = failed_runs + (excluded.last_failed_run IS NOT NULL
                                 AND last_failed_run IS NOT excluded.last_failed_run),
    outcome = CASE WHEN excluded.last_failed_run IS NOT NULL
                    AND failed_runs + (last_failed_run IS NOT excluded.last_failed_run)
                        >= {GIVE_UP_AFTER_RUNS}
                   THEN {GAVE_UP_CODE} ELSE excluded.outcome END,
    last_failed_run = coalesce(excluded.last_failed_run, last_failed_run),
    attempts = attempts + excluded.attempts,
    remote_id = coalesce(excluded.remote_id, remote_id),
    completion_id = coalesce(excluded.completion_id, completion_id),
    http_status = excluded.http_status, error_code = excluded.error_code,
    message = excluded.message, prev_outcome = NULL, run = excluded.run,
    updated_at = excluded.updated_at
"""

# One key-prefix range of delivered keys and their body hashes as two blobs (same row order).
LOAD_SQL = f"""
SELECT CAST(group_concat(key, '') AS BLOB),
       CAST(group_concat(coalesce(body_hash, zeroblob(16)), '') AS BLOB), count(*)
FROM deliveries WHERE target_id = ?1 AND key >= ?2 AND key < ?3 AND +outcome = {DONE}
"""


def create_schema(db: sqlite3.Connection, path: Path) -> None:
    """Create the tables in a new file, or check an existing file's schema version."""
    version = db.execute("PRAGMA user_version").fetchone()[0]
    if version == 0:
        for statement in _SCHEMA.split(";\n"):
            if statement.strip():
                db.execute(statement)
    elif version < SCHEMA_VERSION:
        upgrade_schema(db)
    elif version > SCHEMA_VERSION:
        raise StateVersionError(path, version, SCHEMA_VERSION)


def upgrade_schema(db: sqlite3.Connection) -> None:
    """Bring an older file to this schema in place: add the missing columns (existing keys keep
    NULL there), recreate the readable view, set the version."""
    present = {row[1] for row in db.execute("PRAGMA table_info(deliveries)")}
    for column, kind in _ADDED_COLUMNS:
        if column not in present:
            db.execute(f"ALTER TABLE deliveries ADD COLUMN {column} {kind}")
    db.execute("DROP VIEW IF EXISTS deliveries_readable")
    db.execute(_VIEW)
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


def normalise_target(target: str) -> str:
    """One spelling per base URL: lower-case scheme and host, no trailing slash."""
    parts = urlsplit(target.strip())
    return urlunsplit((parts.scheme.lower(), parts.netloc.lower(), parts.path.rstrip("/"), "", ""))


def target_ref(db: sqlite3.Connection, target: str) -> int:
    """The ``targets.id`` of a (normalised) base URL, added on first use."""
    db.execute("INSERT OR IGNORE INTO targets (base_url) VALUES (?)", (target,))
    return int(db.execute("SELECT id FROM targets WHERE base_url = ?", (target,)).fetchone()[0])


def run_ref(db: sqlite3.Connection, run_id: str) -> int:
    """The ``runs.id`` of a run, registered (with this pid and host) on first use."""
    db.execute(
        "INSERT OR IGNORE INTO runs (run_id, pid, host, started_at) VALUES (?, ?, ?, ?)",
        (run_id, os.getpid(), socket.gethostname(), datetime.now(UTC).isoformat()),
    )
    return int(db.execute("SELECT id FROM runs WHERE run_id = ?", (run_id,)).fetchone()[0])
