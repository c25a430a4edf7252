"""The delivery ledger (DESIGN §7): per target and idempotency key, what happened to it, in SQLite.

Keys are stored as 16-byte BLOBs, not 32-char hex: half the bytes in the table and its index,
memcmp comparisons, and a block of concatenated keys loads straight into a numpy array.
``classify`` works on whole columns against an in-memory snapshot of the target's keys (sorted
64-bit halves, binary search), loaded once in a few aggregate queries; keys this instance wrote
since are looked up again in SQLite, so the answer is never stale for the run's own writes.
"""

from __future__ import annotations

import os
import socket
import sqlite3
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from pipelines.core.errors import LockError
from pipelines.core.outcomes import KeyStatus

__all__ = ["GIVE_UP_AFTER_RUNS", "STATUSES", "KeyResult", "Ledger"]

GIVE_UP_AFTER_RUNS = 3
# classify() answers, by code (the index into this tuple).
STATUSES = tuple(KeyStatus)
_NEW, _DELIVERED, _CHANGED, _IN_DOUBT, _RETRY, _GAVE_UP, _DUPLICATE = range(len(STATUSES))

# Stored outcome codes (small integers take no space in an SQLite record).
_IN_FLIGHT, _DONE, _FAILED, _GAVE_UP_CODE, _DUP = 1, 2, 3, 4, 5
_OUTCOME_NAMES = {
    _IN_FLIGHT: "in_flight",
    _DONE: "delivered",
    _FAILED: "failed",
    _GAVE_UP_CODE: "gave_up",
    _DUP: "duplicate",
}
_STATUS_OF = {_IN_FLIGHT: _IN_DOUBT, _FAILED: _RETRY, _GAVE_UP_CODE: _GAVE_UP, _DUP: _DUPLICATE}
_NOT_A_KEY_FAILURE = frozenset({401, 403, 408, 429})  # auth, timeouts, throttling: not the row
_WRITE_BATCH = 10_000
_MESSAGE_MAX = 1000
_SCHEMA_VERSION = 1

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
       CASE d.outcome {" ".join(f"WHEN {c} THEN '{n}'" for c, n in _OUTCOME_NAMES.items())} END
           AS outcome,
       d.attempts, d.failed_runs, lower(hex(d.body_hash)) AS body_hash, d.remote_id,
       d.http_status, d.error_code, d.message, r.run_id,
       datetime(d.updated_at, 'unixepoch') AS updated_at
FROM deliveries d JOIN targets t ON t.id = d.target_id LEFT JOIN runs r ON r.id = d.run;
PRAGMA user_version = {_SCHEMA_VERSION};
"""

_MARK_SQL = f"""
INSERT INTO deliveries (target_id, key, outcome, body_hash, run, updated_at)
VALUES (?1, ?2, {_IN_FLIGHT}, ?3, ?4, ?5)
ON CONFLICT (target_id, key) DO UPDATE SET
    prev_outcome = CASE WHEN outcome = {_IN_FLIGHT} AND run IS excluded.run
                        THEN prev_outcome ELSE outcome END,
    outcome = {_IN_FLIGHT}, body_hash = excluded.body_hash, run = excluded.run,
    updated_at = excluded.updated_at
"""

# A 4xx failure carries last_failed_run (else NULL): counted once per run, gave_up at 3 runs.
_RECORD_SQL = f"""
INSERT INTO deliveries (target_id, key, outcome, attempts, failed_runs, last_failed_run,
                        remote_id, http_status, error_code, message, run, updated_at)
VALUES (:t, :k, :o, :a, :lfr IS NOT NULL, :lfr, :rid, :st, :code, :msg, :run, :now)
ON CONFLICT (target_id, key) DO UPDATE SET
    failed_runs = failed_runs + (excluded.last_failed_run IS NOT NULL
                                 AND last_failed_run IS NOT excluded.last_failed_run),
    outcome = CASE WHEN excluded.last_failed_run IS NOT NULL
                    AND failed_runs + (last_failed_run IS NOT excluded.last_failed_run)
                        >= {GIVE_UP_AFTER_RUNS}
                   THEN {_GAVE_UP_CODE} ELSE excluded.outcome END,
    last_failed_run = coalesce(excluded.last_failed_run, last_failed_run),
    attempts = attempts + excluded.attempts,
    remote_id = coalesce(excluded.remote_id, remote_id),
    http_status = excluded.http_status, error_code = excluded.error_code,
    message = excluded.message, prev_outcome = NULL, run = excluded.run,
    updated_at = excluded.updated_at
"""

# One key-prefix range of delivered keys and their body hashes as two blobs (same row order).
_LOAD_SQL = f"""
SELECT CAST(group_concat(key, '') AS BLOB),
       CAST(group_concat(coalesce(body_hash, zeroblob(16)), '') AS BLOB), count(*)
FROM deliveries WHERE target_id = ?1 AND key >= ?2 AND key < ?3 AND +outcome = {_DONE}
"""


@dataclass(frozen=True)
class KeyResult:
    """How one key's request ended: ``outcome`` is delivered, duplicate (409), failed or
    retries_exhausted; ``error_code`` is the §6 code."""

    key: str
    outcome: str
    http_status: int | None = None
    remote_id: str | None = None
    error_code: str | None = None
    message: str | None = None
    attempts: int = 1


@dataclass
class _Holder:
    run_id: str
    pid: int
    host: str
    pid_start: str | None
    since: str


class Ledger:
    """Delivery state of one target in one SQLite file; use as a context manager."""

    def __init__(self, path: Path, target: str) -> None:
        self.path = Path(path)
        self.target = _normalise_target(target)
        self._conn: sqlite3.Connection | None = None
        self._target_id = 0
        self._lock_run: str | None = None
        self._run_refs: dict[str, int] = {}
        self._known: _Snapshot | None = None

    # -- connection ---------------------------------------------------------------------------

    def open(self) -> Ledger:
        """Open (creating if needed) the file: WAL, synchronous=NORMAL, owner-only permissions."""
        if self._conn is not None:
            return self
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if not self.path.exists():
            os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600))
        conn = sqlite3.connect(
            self.path, isolation_level=None, timeout=30.0, check_same_thread=False
        )
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA cache_size = -16384")
        self._conn = conn
        with self._write():
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version == 0:
                for statement in _SCHEMA.split(";\n"):
                    if statement.strip():
                        conn.execute(statement)
            elif version != _SCHEMA_VERSION:
                raise RuntimeError(f"{self.path}: ledger schema {version} is not {_SCHEMA_VERSION}")
            conn.execute("INSERT OR IGNORE INTO targets (base_url) VALUES (?)", (self.target,))
            row = conn.execute("SELECT id FROM targets WHERE base_url = ?", (self.target,))
            self._target_id = row.fetchone()[0]
        return self

    def close(self) -> None:
        """Release the lock if this instance holds it, then close the connection."""
        if self._conn is None:
            return
        try:
            self.release()
        finally:
            self._conn.close()
            self._conn = None
            self._known = None

    def __enter__(self) -> Ledger:
        return self.open()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise RuntimeError("the ledger is not open: use `with Ledger(path, target) as ledger`")
        return self._conn

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, taken up front so two writers queue instead of deadlocking."""
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    # -- the run lock -------------------------------------------------------------------------

    def acquire(self, run_id: str, wait: bool = False, *, poll_seconds: float = 1.0) -> None:
        """Take the one-run-at-a-time lock for this target; LockError names the holder.

        A lock left by a process that is gone (same host, pid not alive) is taken over;
        ``wait=True`` polls until the holder lets go.
        """
        while True:
            holder = self._try_lock(run_id)
            if holder is None:
                self._lock_run = run_id
                return
            if not wait:
                raise LockError(
                    f"{self.path} is in use for {self.target} by run {holder.run_id} "
                    f"(pid {holder.pid} on {holder.host}, since {holder.since}); "
                    "wait for it to finish or pass --wait",
                    run_id=holder.run_id,
                    pid=holder.pid,
                    host=holder.host,
                    since=holder.since,
                )
            time.sleep(poll_seconds)

    def release(self) -> None:
        """Let go of the lock if this instance holds it (a no-op otherwise)."""
        if self._lock_run is None:
            return
        with self._write() as db:
            db.execute(
                "DELETE FROM locks WHERE target_id = ? AND run_id = ? AND pid = ? AND host = ?",
                (self._target_id, self._lock_run, os.getpid(), socket.gethostname()),
            )
        self._lock_run = None

    def _try_lock(self, run_id: str) -> _Holder | None:
        me = (run_id, os.getpid(), socket.gethostname())
        with self._write() as db:
            row = db.execute(
                "SELECT run_id, pid, host, pid_start, since FROM locks WHERE target_id = ?",
                (self._target_id,),
            ).fetchone()
            if row is not None:
                holder = _Holder(*row)
                if (holder.run_id, holder.pid, holder.host) == me:
                    return None
                if holder.host != me[2] or _pid_alive(holder.pid, holder.pid_start):
                    return holder
            since = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            db.execute(
                "INSERT OR REPLACE INTO locks VALUES (?, ?, ?, ?, ?, ?)",
                (self._target_id, *me, _pid_start(os.getpid()), since),
            )
            self._run_ref(db, run_id)
        return None

    def _require_lock(self) -> None:
        if self._lock_run is None:
            raise RuntimeError("acquire() the ledger before writing delivery state")

    def _run_ref(self, db: sqlite3.Connection, run_id: str) -> int:
        ref = self._run_refs.get(run_id)
        if ref is None:
            db.execute(
                "INSERT OR IGNORE INTO runs (run_id, pid, host, started_at) VALUES (?, ?, ?, ?)",
                (run_id, os.getpid(), socket.gethostname(), datetime.now(UTC).isoformat()),
            )
            ref = db.execute("SELECT id FROM runs WHERE run_id = ?", (run_id,)).fetchone()[0]
            self._run_refs[run_id] = ref
        return ref

    # -- reading ------------------------------------------------------------------------------

    def classify(self, keys: pa.Array | pa.ChunkedArray, body_hashes: pa.Array) -> pa.Array:
        """Ledger status of every key (a ``STATUSES`` string), compared with its body hash.

        Keys and hashes are hex BLAKE2b-128 strings or 16-byte binaries; a null hash never
        counts as a change.
        """
        key_bytes, _ = _as_16_bytes(keys, "keys", nulls=False)
        hash_bytes, hash_valid = _as_16_bytes(body_hashes, "body_hashes", nulls=True)
        if len(key_bytes) != len(hash_bytes):
            raise ValueError(f"{len(key_bytes)} keys but {len(hash_bytes)} body hashes")
        known = self._snapshot()
        hi, lo = _halves(key_bytes)
        order = np.argsort(hi)  # searching in key order keeps the binary searches cache-warm
        hi, lo, key_bytes = hi[order], lo[order], key_bytes[order]
        hash_bytes, hash_valid = hash_bytes[order], hash_valid[order]
        codes = np.full(len(hi), _NEW, dtype=np.int8)
        at = known.delivered.find(hi, lo)
        hit = at >= 0
        same = (known.bodies[at[hit]] == hash_bytes[hit]).all(axis=1) | ~hash_valid[hit]
        codes[hit] = np.where(same, _DELIVERED, _CHANGED)
        at = known.others.find(hi, lo)
        hit = at >= 0
        codes[hit] = known.other_status[at[hit]]
        mine = known.written_since(hi)
        if mine.any():
            codes[mine] = self._classify_in_db(key_bytes[mine], hash_bytes[mine], hash_valid[mine])
        codes[order] = codes.copy()
        return pc.take(pa.array(STATUSES, pa.string()), pa.array(codes))

    def lookup(self, key: str) -> dict[str, Any] | None:
        """Everything the ledger holds about one key (hex), or None."""
        cursor = self._db.execute(
            "SELECT * FROM deliveries_readable WHERE target = ? AND key = ?",
            (self.target, key.lower()),
        )
        row = cursor.fetchone()
        if row is None:
            return None
        return dict(zip([c[0] for c in cursor.description], row, strict=True))

    def counts(self) -> dict[str, int]:
        """Keys per stored outcome (every outcome listed, zeros included)."""
        result = dict.fromkeys(_OUTCOME_NAMES.values(), 0)
        for code, n in self._db.execute(
            "SELECT outcome, count(*) FROM deliveries WHERE target_id = ? GROUP BY outcome",
            (self._target_id,),
        ):
            result[_OUTCOME_NAMES[code]] = n
        return result

    def in_doubt(self, run_id: str | None = None) -> list[str]:
        """Keys (hex, sorted) left in_flight by any run other than ``run_id``: maybe sent."""
        rows = self._db.execute(
            f"""SELECT lower(hex(d.key)) FROM deliveries d LEFT JOIN runs r ON r.id = d.run
                WHERE d.target_id = ? AND d.outcome = {_IN_FLIGHT} AND r.run_id IS NOT ?
                ORDER BY d.key""",
            (self._target_id, run_id),
        )
        return [key for (key,) in rows]

    # -- writing ------------------------------------------------------------------------------

    def mark_in_flight(
        self, keys: pa.Array | Sequence[str], body_hashes: pa.Array | Sequence[str], run_id: str
    ) -> None:
        """Write-ahead: the keys are about to be sent (one transaction, before any request)."""
        self._require_lock()
        key_bytes, _ = _as_16_bytes(_arrow(keys), "keys", nulls=False)
        hash_bytes, _ = _as_16_bytes(_arrow(body_hashes), "body_hashes", nulls=False)
        if len(key_bytes) != len(hash_bytes):
            raise ValueError(f"{len(key_bytes)} keys but {len(hash_bytes)} body hashes")
        order = _sort_order(key_bytes)  # neighbouring keys share B-tree pages
        now = int(time.time())
        with self._write() as db:
            ref = self._run_ref(db, run_id)
            db.executemany(
                _MARK_SQL,
                (
                    (self._target_id, key_bytes[i].tobytes(), hash_bytes[i].tobytes(), ref, now)
                    for i in order
                ),
            )
        self._written(key_bytes)

    def record(self, results: Iterable[KeyResult], run_id: str | None = None) -> None:
        """Write outcomes as they complete, committing every few thousand keys."""
        self._require_lock()
        run = run_id or self._lock_run
        assert run is not None
        batch: list[dict[str, Any]] = []
        for result in results:
            batch.append(self._record_params(result))
            if len(batch) >= _WRITE_BATCH:
                self._write_records(batch, run)
                batch = []
        if batch:
            self._write_records(batch, run)

    def unmark(self, keys: pa.Array | Sequence[str]) -> int:
        """Keys marked in_flight but never sent go back to what they were (new keys vanish)."""
        key_bytes, _ = _as_16_bytes(_arrow(keys), "keys", nulls=False)
        rows = [(self._target_id, k.tobytes()) for k in key_bytes]
        with self._write() as db:
            gone = db.executemany(
                f"""DELETE FROM deliveries WHERE target_id = ? AND key = ?
                    AND outcome = {_IN_FLIGHT} AND prev_outcome IS NULL""",
                rows,
            ).rowcount
            back = db.executemany(
                f"""UPDATE deliveries SET outcome = prev_outcome, prev_outcome = NULL
                    WHERE target_id = ? AND key = ? AND outcome = {_IN_FLIGHT}
                    AND prev_outcome IS NOT NULL""",
                rows,
            ).rowcount
        self._written(key_bytes)
        return gone + back

    def retry_failed(self) -> int:
        """Lift ``gave_up``: those keys are retried again, with a fresh count of failed runs."""
        with self._write() as db:
            n = db.execute(
                f"""UPDATE deliveries SET outcome = {_FAILED}, failed_runs = 0
                    WHERE target_id = ? AND outcome = {_GAVE_UP_CODE}""",
                (self._target_id,),
            ).rowcount
        self._known = None
        return n

    def forget(self, keys: pa.Array | Sequence[str]) -> int:
        """Drop keys from the ledger (they count as new again); returns how many were there."""
        key_bytes, _ = _as_16_bytes(_arrow(keys), "keys", nulls=False)
        with self._write() as db:
            n = db.executemany(
                "DELETE FROM deliveries WHERE target_id = ? AND key = ?",
                ((self._target_id, k.tobytes()) for k in key_bytes),
            ).rowcount
        self._written(key_bytes)
        return n

    def _record_params(self, result: KeyResult) -> dict[str, Any]:
        stored = {"delivered": _DONE, "duplicate": _DUP, "failed": _FAILED}
        code = result.error_code
        if result.outcome == "retries_exhausted":
            outcome, code = _FAILED, code or "retries_exhausted"
        elif result.outcome in stored:
            outcome = stored[result.outcome]
        else:
            raise ValueError(f"unknown outcome {result.outcome!r} for key {result.key}")
        status = result.http_status
        key_failure = (
            outcome == _FAILED
            and status is not None
            and 400 <= status < 500
            and status not in _NOT_A_KEY_FAILURE
            and code != "retries_exhausted"
        )
        message = result.message[:_MESSAGE_MAX] if result.message else result.message
        return {
            "k": bytes.fromhex(result.key),
            "o": outcome,
            "a": result.attempts,
            "lfr": key_failure,  # replaced by the run reference when written
            "rid": result.remote_id,
            "st": status,
            "code": code,
            "msg": message,
        }

    def _write_records(self, batch: list[dict[str, Any]], run_id: str) -> None:
        now = int(time.time())
        with self._write() as db:
            ref = self._run_ref(db, run_id)
            for params in batch:
                params.update(
                    t=self._target_id, run=ref, now=now, lfr=ref if params["lfr"] else None
                )
            db.executemany(_RECORD_SQL, batch)
        keys = np.frombuffer(b"".join(p["k"] for p in batch), dtype=np.uint8).reshape(-1, 16)
        self._written(keys)

    # -- the in-memory snapshot ----------------------------------------------------------------

    def preload(self) -> None:
        """Load the delivered keys now (seconds for millions), e.g. in a thread before sending."""
        self._snapshot()

    def _snapshot(self) -> _Snapshot:
        if self._known is None:
            self._known = self._load_snapshot()
        return self._known

    def _written(self, key_bytes: npt.NDArray[np.uint8]) -> None:
        if self._known is not None:
            self._known.wrote(_halves(key_bytes)[0])

    def _load_snapshot(self) -> _Snapshot:
        """Read the target's keys in one read transaction: delivered ones with body hashes in
        256 aggregate queries (one blob per key-prefix range), the few others row by row."""
        db = self._db
        db.execute("BEGIN")
        try:
            total = db.execute(
                f"SELECT count(*) FROM deliveries WHERE target_id = ? AND outcome = {_DONE}",
                (self._target_id,),
            ).fetchone()[0]
            hi = np.empty(total, dtype=np.uint64)
            lo = np.empty(total, dtype=np.uint64)
            bodies = np.empty((total, 16), dtype=np.uint8)
            filled = 0
            for first in range(256):
                upper = bytes([first + 1]) if first < 255 else b"\xff" * 17
                key_blob, body_blob, n = db.execute(
                    _LOAD_SQL, (self._target_id, bytes([first]), upper)
                ).fetchone()
                if not n:
                    continue
                if filled + n > total or len(key_blob) != 16 * n or len(body_blob) != 16 * n:
                    raise RuntimeError(f"{self.path}: malformed keys in the ledger")
                part = slice(filled, filled + n)
                hi[part], lo[part] = _halves(np.frombuffer(key_blob, np.uint8).reshape(n, 16))
                bodies[part] = np.frombuffer(body_blob, np.uint8).reshape(n, 16)
                filled += n
            other_rows = db.execute(
                f"""SELECT key, outcome FROM deliveries WHERE target_id = ?
                    AND outcome IN ({",".join(str(c) for c in _STATUS_OF)})""",
                (self._target_id,),
            ).fetchall()
        finally:
            db.execute("COMMIT")
        delivered, order = _KeySet.build(hi[:filled], lo[:filled])
        if order is not None:
            bodies = bodies[:filled][order]
        other_keys = np.frombuffer(b"".join(k for k, _ in other_rows), np.uint8).reshape(-1, 16)
        other_status = np.array([_STATUS_OF[o] for _, o in other_rows], dtype=np.int8)
        others, other_order = _KeySet.build(*_halves(other_keys))
        if other_order is not None:
            other_status = other_status[other_order]
        return _Snapshot(delivered, bodies[:filled], others, other_status)

    def _classify_in_db(
        self,
        key_bytes: npt.NDArray[np.uint8],
        hash_bytes: npt.NDArray[np.uint8],
        hash_valid: npt.NDArray[np.bool_],
    ) -> npt.NDArray[np.int8]:
        """Status of keys this instance has written since the snapshot: a TEMP table and a JOIN."""
        db = self._db
        db.execute(
            "CREATE TEMP TABLE IF NOT EXISTS batch_keys (key BLOB PRIMARY KEY) WITHOUT ROWID"
        )
        db.execute("BEGIN")
        try:
            db.execute("DELETE FROM batch_keys")
            db.executemany(
                "INSERT OR IGNORE INTO batch_keys VALUES (?)", ((k.tobytes(),) for k in key_bytes)
            )
            state = {
                key: (outcome, body)
                for key, outcome, body in db.execute(
                    """SELECT d.key, d.outcome, d.body_hash FROM batch_keys b
                       JOIN deliveries d ON d.target_id = ? AND d.key = b.key""",
                    (self._target_id,),
                )
            }
            db.execute("DELETE FROM batch_keys")
        finally:
            db.execute("COMMIT")
        codes = np.full(len(key_bytes), _NEW, dtype=np.int8)
        for i, key in enumerate(key_bytes):
            found = state.get(key.tobytes())
            if found is None:
                continue
            outcome, body = found
            if outcome == _DONE:
                same = not hash_valid[i] or body == hash_bytes[i].tobytes()
                codes[i] = _DELIVERED if same else _CHANGED
            else:
                codes[i] = _STATUS_OF[outcome]
        return codes


@dataclass
class _KeySet:
    """16-byte keys sorted as (high, low) unsigned 64-bit halves, for vectorised binary search."""

    hi: npt.NDArray[np.uint64]
    lo: npt.NDArray[np.uint64]
    shared_hi: bool  # two keys share their first 8 bytes (astronomically rare, but handled)

    @classmethod
    def build(
        cls, hi: npt.NDArray[np.uint64], lo: npt.NDArray[np.uint64]
    ) -> tuple[_KeySet, npt.NDArray[np.intp] | None]:
        """The sorted set, and the permutation that sorted it (None: it came in order)."""
        order = None
        if not bool(np.all((hi[1:] > hi[:-1]) | ((hi[1:] == hi[:-1]) & (lo[1:] > lo[:-1])))):
            order = np.lexsort((lo, hi))
            hi, lo = hi[order], lo[order]
        return cls(hi, lo, bool(np.any(hi[1:] == hi[:-1]))), order

    def find(self, hi: npt.NDArray[np.uint64], lo: npt.NDArray[np.uint64]) -> npt.NDArray[np.intp]:
        """Position of each key in the set, -1 where absent."""
        if len(self.hi) == 0:
            return np.full(len(hi), -1, dtype=np.intp)
        at = np.minimum(np.searchsorted(self.hi, hi), len(self.hi) - 1)
        same_hi = self.hi[at] == hi
        exact = same_hi & (self.lo[at] == lo)
        found = np.where(exact, at, -1)
        if self.shared_hi:
            for i in np.flatnonzero(same_hi & ~exact):
                end = int(np.searchsorted(self.hi, hi[i], side="right"))
                j = int(at[i]) + int(np.searchsorted(self.lo[at[i] : end], lo[i]))
                if j < end and self.lo[j] == lo[i]:
                    found[i] = j
        return found


@dataclass
class _Snapshot:
    """The target's keys as loaded, plus the first halves of keys this instance wrote since."""

    delivered: _KeySet
    bodies: npt.NDArray[np.uint8]
    others: _KeySet
    other_status: npt.NDArray[np.int8]

    def __post_init__(self) -> None:
        self._written: npt.NDArray[np.uint64] = np.empty(0, dtype=np.uint64)
        self._pending: list[npt.NDArray[np.uint64]] = []

    def wrote(self, hi: npt.NDArray[np.uint64]) -> None:
        """Remember keys written after loading; classify asks SQLite about them."""
        self._pending.append(hi)

    def written_since(self, hi: npt.NDArray[np.uint64]) -> npt.NDArray[np.bool_]:
        """Which of these keys may have changed since loading (a first-half match suffices)."""
        if self._pending:
            self._written = np.unique(np.concatenate([self._written, *self._pending]))
            self._pending = []
        if len(self._written) == 0:
            return np.zeros(len(hi), dtype=bool)
        at = np.minimum(np.searchsorted(self._written, hi), len(self._written) - 1)
        return self._written[at] == hi


# -- column helpers ----------------------------------------------------------------------------

_HEX = np.full(256, 255, dtype=np.uint8)
_HEX[np.frombuffer(b"0123456789", np.uint8)] = np.arange(10)
_HEX[np.frombuffer(b"abcdef", np.uint8)] = np.arange(10, 16)
_HEX[np.frombuffer(b"ABCDEF", np.uint8)] = np.arange(10, 16)


def _arrow(values: pa.Array | pa.ChunkedArray | Sequence[str]) -> pa.Array | pa.ChunkedArray:
    return (
        values if isinstance(values, pa.Array | pa.ChunkedArray) else pa.array(values, pa.string())
    )


def _as_16_bytes(
    values: pa.Array | pa.ChunkedArray, what: str, *, nulls: bool
) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.bool_]]:
    """(n, 16) bytes of hex-32 strings or 16-byte binaries, and the validity (nulls → zeros)."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    valid = np.ones(len(values), dtype=bool)
    if len(values) == 0:
        return np.empty((0, 16), dtype=np.uint8), valid
    if values.null_count:
        if not nulls:
            raise ValueError(f"{what} must not contain nulls")
        valid = values.is_valid().to_numpy(zero_copy_only=False)
        binary = pa.types.is_fixed_size_binary(values.type)
        values = pc.coalesce(values, pa.scalar(b"\0" * 16 if binary else "0" * 32, values.type))
    data = _fixed_width(values, what)
    if data.shape[1] == 16 and not pa.types.is_string(values.type):
        return np.ascontiguousarray(data), valid
    if data.shape[1] != 32:
        raise ValueError(f"{what} must be 32 hex characters or 16 bytes, not {data.shape[1]}")
    nibbles = _HEX[data]
    if (nibbles == 255).any():
        raise ValueError(f"{what} must be hexadecimal")
    decoded = ((nibbles[:, 0::2] << 4) | nibbles[:, 1::2]).astype(np.uint8, copy=False)
    return decoded, valid


def _fixed_width(values: pa.Array, what: str) -> npt.NDArray[np.uint8]:
    """The values' bytes as an (n, width) view, when every value has the same width."""
    n, kind = len(values), values.type
    if pa.types.is_fixed_size_binary(kind):
        width = kind.byte_width
        raw = np.frombuffer(values.buffers()[1], np.uint8, n * width, values.offset * width)
        return raw.reshape(n, width)
    if pa.types.is_large_string(kind) or pa.types.is_large_binary(kind):
        offset_type: type[np.signedinteger[Any]] = np.int64
    elif pa.types.is_string(kind) or pa.types.is_binary(kind):
        offset_type = np.int32
    else:
        raise TypeError(f"{what}: expected strings or binaries, got {kind}")
    size = np.dtype(offset_type).itemsize
    offsets = np.frombuffer(values.buffers()[1], offset_type, n + 1, values.offset * size)
    start, end = int(offsets[0]), int(offsets[-1])
    width = (end - start) // n
    if width == 0 or not bool(np.all(np.diff(offsets) == width)):
        raise ValueError(f"{what} must all be 32 hex characters or 16 bytes")
    return np.frombuffer(values.buffers()[2], np.uint8, end - start, start).reshape(n, width)


def _halves(
    key_bytes: npt.NDArray[np.uint8],
) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.uint64]]:
    """Big-endian 64-bit halves: sorting by (hi, lo) is sorting the bytes."""
    pairs = np.ascontiguousarray(key_bytes).view(">u8").reshape(-1, 2)
    return pairs[:, 0].astype(np.uint64), pairs[:, 1].astype(np.uint64)


def _sort_order(key_bytes: npt.NDArray[np.uint8]) -> npt.NDArray[np.intp]:
    hi, lo = _halves(key_bytes)
    return np.lexsort((lo, hi))


# -- lock holders ------------------------------------------------------------------------------


def _normalise_target(target: str) -> str:
    """One spelling per base URL: lower-case scheme and host, no trailing slash."""
    parts = urlsplit(target.strip())
    return urlunsplit((parts.scheme.lower(), parts.netloc.lower(), parts.path.rstrip("/"), "", ""))


def _proc_stat(pid: int) -> tuple[str, str] | None:
    """(state, start time) of a process from /proc, or None where there is no /proc entry."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text.rsplit(")", 1)[1].split()
    return fields[0], fields[19]


def _pid_start(pid: int) -> str | None:
    stat = _proc_stat(pid)
    return stat[1] if stat else None


def _pid_alive(pid: int, started: str | None) -> bool:
    """Is this pid (on this host) still the process that took the lock?"""
    if sys.platform == "win32":
        return True  # no safe liveness probe: never take a lock over
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat = _proc_stat(pid)
    if stat is None:
        return True
    state, start = stat
    if state in ("Z", "X"):
        return False
    return started is None or start == started
