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
    "run_ref",
    "target_ref",
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
SCHEMA_VERSION = 1

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
    updated_at INTEGER NOT NULL,     -- unix seconds
    PRIMARY KEY (target_id, key)
) WITHOUT ROWID;
CREATE INDEX deliveries_outcome ON deliveries (target_id, outcome);
CREATE VIEW deliveries_readable AS
SELECT t.base_url AS target, lower(hex(d.key)) AS key,
       CASE d.outcome {" ".join(f"WHEN {c} THEN '{n}'" for c, n in OUTCOME_NAMES.items())} END
           AS outcome,
       d.attempts, d.failed_runs, lower(hex(d.body_hash)) AS body_hash, d.remote_id,
       d.http_status, d.error_code, d.message, r.run_id,
       datetime(d.updated_at, 'unixepoch') AS updated_at
FROM deliveries d JOIN targets t ON t.id = d.target_id LEFT JOIN runs r ON r.id = d.run;
PRAGMA user_version = {SCHEMA_VERSION};
"""

MARK_SQL = f"""
INSERT INTO deliveries (target_id, key, outcome, body_hash, run, updated_at)
VALUES (?1, ?2, {IN_FLIGHT}, ?3, ?4, ?5)
ON CONFLICT (target_id, key) DO UPDATE SET
    prev_outcome = CASE WHEN outcome = {IN_FLIGHT} AND run IS excluded.run
                        THEN prev_outcome ELSE outcome END,
    outcome = {IN_FLIGHT}, body_hash = excluded.body_hash, run = excluded.run,
    updated_at = excluded.updated_at
"""

# A 4xx failure carries last_failed_run (else NULL): counted once per run, gave_up at 3 runs.
RECORD_SQL = f"""
INSERT INTO deliveries (target_id, key, outcome, attempts, failed_runs, last_failed_run,
                        remote_id, http_status, error_code, message, run, updated_at)
VALUES (:t, :k, :o, :a, :lfr IS NOT NULL, :lfr, :rid, :st, :code, :msg, :run, :now)
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
    elif version != SCHEMA_VERSION:
        raise RuntimeError(f"{path}: ledger schema {version} is not {SCHEMA_VERSION}")


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
