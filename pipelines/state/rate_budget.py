"""One rate budget per API key, shared by every run that uses the key: a sliding log of request
grants in the store, timed by the store's clock (PostgreSQL's ``clock_timestamp()``; an SQLite
budget file is on one machine and uses its clock), never by a process's own.

A grant is one short write transaction: drop grants older than the window, and either reserve a
new one (fewer than N in the window and no pause) or answer how long to wait; a reserved grant
is stamped again when its request is sent, so the time between grant and send never lets more
than N requests into a window. A 429/408 sets
``paused_until`` for the key, which every run honours. The PostgreSQL budget lives in the state
store; without one, a budget file per hashed key in a folder every process of the machine shares.
"""

from __future__ import annotations

import hashlib
import threading
import uuid
from pathlib import Path

from pipelines.core.state_location import StateLocation
from pipelines.state.database import StateDB, connect_state
from pipelines.state.sql_text import now_epoch

__all__ = ["BudgetStore", "budget_key"]

_TABLES = (
    """CREATE TABLE IF NOT EXISTS rate_budget (
        key_hash TEXT PRIMARY KEY, paused_until DOUBLE PRECISION NOT NULL DEFAULT 0
    )""",
    """CREATE TABLE IF NOT EXISTS rate_grants (
        key_hash TEXT NOT NULL, at DOUBLE PRECISION NOT NULL, token TEXT NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS rate_grants_at ON rate_grants (key_hash, at)",
    # stamp and release find their grant by token: one index lookup, not a scan of the window's
    # grants (tens of thousands at a high limit, one per request).
    "CREATE INDEX IF NOT EXISTS rate_grants_token ON rate_grants (token)",
)


def budget_key(api_key: str, base_url: str) -> str:
    """The budget's name: a hash of the API key and the target (never the key itself)."""
    return hashlib.blake2b(f"{base_url}\n{api_key}".encode(), digest_size=16).hexdigest()


class BudgetStore:
    """Grants of one key's budget, in PostgreSQL or in the machine's budget file for the key."""

    def __init__(self, db: StateDB, key_hash: str) -> None:
        self.db = db
        self.key_hash = key_hash
        self._now = now_epoch(db.dialect)
        self._lock = threading.Lock()  # grants run in worker threads, pauses on the event loop
        self._closed = False
        with db.write():
            for statement in _TABLES:
                db.execute(statement)
            db.execute(
                "INSERT INTO rate_budget (key_hash) VALUES (?) ON CONFLICT DO NOTHING", (key_hash,)
            )

    @classmethod
    def open(cls, state: StateLocation, key_hash: str, folder: Path) -> BudgetStore:
        """PostgreSQL state: the budget is in it; SQLite: ``folder/<key hash>.sqlite``."""
        if state.kind == "postgres":
            return cls(connect_state(state), key_hash)
        return cls(connect_state(StateLocation.sqlite(folder / f"{key_hash}.sqlite")), key_hash)

    def grant(self, limit: int, window: float) -> tuple[float, str]:
        """Reserve a request start now: (0, its token), or (seconds to wait first, "")."""
        with self._lock, self.db.write() as db:
            now = float(db.execute(f"SELECT {self._now}").fetchone()[0])
            paused = float(
                db.execute(
                    "SELECT paused_until FROM rate_budget WHERE key_hash = ?", (self.key_hash,)
                ).fetchone()[0]
            )
            if paused > now:
                return paused - now, ""
            db.execute(
                "DELETE FROM rate_grants WHERE key_hash = ? AND at <= ?",
                (self.key_hash, now - window),
            )
            row = db.execute(
                "SELECT at FROM rate_grants WHERE key_hash = ? ORDER BY at DESC LIMIT 1 OFFSET ?",
                (self.key_hash, limit - 1),
            ).fetchone()
            if row is not None:  # N grants in the window: the oldest of the last N must age out
                return max(float(row[0]) + window - now, 1e-3), ""
            token = uuid.uuid4().hex
            db.execute(
                "INSERT INTO rate_grants (key_hash, at, token) VALUES (?, ?, ?)",
                (self.key_hash, now, token),
            )
            return 0.0, token

    def stamp(self, token: str) -> None:
        """The granted request is on the wire: its window starts now (store clock)."""
        with self._lock:
            if self._closed:  # the run ended before this late stamp ran: the grant ages out
                return
            with self.db.write() as db:
                db.execute(
                    f"UPDATE rate_grants SET at = {self._now} WHERE key_hash = ? AND token = ?",
                    (self.key_hash, token),
                )

    def release(self, token: str) -> None:
        """The granted request was never sent: its slot is free again."""
        with self._lock:
            if self._closed:  # as a late stamp: the slot stays counted until it ages out
                return
            with self.db.write() as db:
                db.execute(
                    "DELETE FROM rate_grants WHERE key_hash = ? AND token = ?",
                    (self.key_hash, token),
                )

    def pause(self, seconds: float) -> None:
        """Hold every run's requests with this key for ``seconds`` from now (store clock)."""
        with self._lock, self.db.write() as db:
            db.execute(
                f"""UPDATE rate_budget SET paused_until = {self._now} + ?
                    WHERE key_hash = ? AND paused_until < {self._now} + ?""",
                (seconds, self.key_hash, seconds),
            )

    def close(self) -> None:
        """Close the connection, after a stamp or release still running in a worker thread (a
        send's stamp is not awaited); later ones find it closed and do nothing. Closing under a
        thread still using the connection crashed the process (SIGSEGV in sqlite3)."""
        with self._lock:
            self._closed = True
            self.db.close()
