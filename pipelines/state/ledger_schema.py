"""The delivery ledger's SQL statements (the same for SQLite and PostgreSQL but for loading
keys), the integer codes it stores, and the ``targets`` and ``runs`` rows deliveries refer to.

``classify`` answers with a status code (an index into ``STATUSES``); the ``deliveries`` table
stores an outcome code (small integers take no space in an SQLite record). The tables are in
``state_schema``.
"""

from __future__ import annotations

import os
import socket
from datetime import UTC, datetime
from urllib.parse import urlsplit, urlunsplit

from pipelines.core.outcomes import KeyStatus
from pipelines.state.database import StateDB

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
    "NEW",
    "OUTCOME_NAMES",
    "RECORD_SQL",
    "RETRY",
    "STATUSES",
    "STATUS_OF",
    "normalise_target",
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

# A 4xx failure carries last_failed_run (else NULL) and failed = 1: counted once per run,
# gave_up at 3 runs.
_NEW_FAILED_RUN = """CASE WHEN excluded.last_failed_run IS NOT NULL
         AND deliveries.last_failed_run IS DISTINCT FROM excluded.last_failed_run
         THEN 1 ELSE 0 END"""
RECORD_SQL = f"""
INSERT INTO deliveries (target_id, key, outcome, attempts, failed_runs, last_failed_run,
                        remote_id, http_status, error_code, message, run, updated_at,
                        completion_id)
VALUES (:t, :k, :o, :a, :failed, :lfr, :rid, :st, :code, :msg, :run, :now, :cid)
ON CONFLICT (target_id, key) DO UPDATE SET
    failed_runs = deliveries.failed_runs + {_NEW_FAILED_RUN},
    outcome = CASE WHEN excluded.last_failed_run IS NOT NULL
                    AND deliveries.failed_runs + {_NEW_FAILED_RUN} >= {GIVE_UP_AFTER_RUNS}
                   THEN {GAVE_UP_CODE} ELSE excluded.outcome END,
    last_failed_run = coalesce(excluded.last_failed_run, deliveries.last_failed_run),
    attempts = deliveries.attempts + excluded.attempts,
    remote_id = coalesce(excluded.remote_id, deliveries.remote_id),
    completion_id = coalesce(excluded.completion_id, deliveries.completion_id),
    http_status = excluded.http_status, error_code = excluded.error_code,
    message = excluded.message, prev_outcome = NULL, run = excluded.run,
    updated_at = excluded.updated_at
"""

# One key-prefix range of delivered keys and their body hashes as two blobs (same row order).
LOAD_SQL = {
    "sqlite": f"""
SELECT CAST(group_concat(key, '') AS BLOB),
       CAST(group_concat(coalesce(body_hash, zeroblob(16)), '') AS BLOB), count(*)
FROM deliveries WHERE target_id = ? AND key >= ? AND key < ? AND +outcome = {DONE}
""",
    "postgres": f"""
SELECT string_agg(key, ''::bytea),
       string_agg(coalesce(body_hash, decode(repeat('00', 16), 'hex')), ''::bytea),
       count(*)
FROM deliveries WHERE target_id = ? AND key >= ? AND key < ? AND outcome = {DONE}
""",
}


def normalise_target(target: str) -> str:
    """One spelling per base URL: lower-case scheme and host, no trailing slash."""
    parts = urlsplit(target.strip())
    return urlunsplit((parts.scheme.lower(), parts.netloc.lower(), parts.path.rstrip("/"), "", ""))


def target_ref(db: StateDB, target: str) -> int:
    """The ``targets.id`` of a (normalised) base URL, added on first use."""
    db.execute("INSERT INTO targets (base_url) VALUES (?) ON CONFLICT DO NOTHING", (target,))
    return int(db.execute("SELECT id FROM targets WHERE base_url = ?", (target,)).fetchone()[0])


def run_ref(db: StateDB, run_id: str) -> int:
    """The ``runs.id`` of a run, registered (with this pid and host) on first use."""
    db.execute(
        """INSERT INTO runs (run_id, pid, host, started_at) VALUES (?, ?, ?, ?)
           ON CONFLICT DO NOTHING""",
        (run_id, os.getpid(), socket.gethostname(), datetime.now(UTC).isoformat()),
    )
    return int(db.execute("SELECT id FROM runs WHERE run_id = ?", (run_id,)).fetchone()[0])
