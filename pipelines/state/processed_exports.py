"""Which export files a target has already processed: their content fingerprints, kept beside the ledger."""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path
from types import TracebackType

_SCHEMA = """
CREATE TABLE IF NOT EXISTS processed_exports (
    target TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    path TEXT NOT NULL,
    run_id TEXT NOT NULL,
    rows_read INTEGER NOT NULL,
    processed_at INTEGER NOT NULL,
    PRIMARY KEY (target, fingerprint)
)
"""


class ProcessedExports:
    """Fingerprints of exports fully processed (nothing left to send) per target, in SQLite.

    ``read_only`` (dry runs) never creates or changes the file: a missing file or table means
    nothing was processed yet.
    """

    def __init__(self, path: Path, target: str, *, read_only: bool = False) -> None:
        self.target = target
        self.read_only = read_only
        self._db: sqlite3.Connection | None = None
        if read_only:
            if path.exists():
                uri = f"{path.resolve().as_uri()}?mode=ro"
                self._db = sqlite3.connect(uri, uri=True, timeout=30.0)
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
        self._db = sqlite3.connect(path, isolation_level=None, timeout=30.0)
        self._db.execute("PRAGMA journal_mode = WAL")
        self._db.execute(_SCHEMA)

    def __enter__(self) -> ProcessedExports:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._db is not None:
            self._db.close()

    def seen(self, print_: str) -> str | None:
        """The run id that processed this fingerprint, or None."""
        if self._db is None:
            return None
        try:
            row = self._db.execute(
                "SELECT run_id FROM processed_exports WHERE target = ? AND fingerprint = ?",
                (self.target, print_),
            ).fetchone()
        except sqlite3.OperationalError as exc:  # read-only: a ledger from before this table
            if "no such table" in str(exc):
                return None
            raise
        return row[0] if row else None

    def mark(self, print_: str, path: Path, run_id: str, rows_read: int) -> None:
        """Remember that ``path`` (with this fingerprint) was processed to the end by ``run_id``."""
        if self.read_only or self._db is None:
            raise RuntimeError("processed exports opened read-only (a dry run marks nothing)")
        self._db.execute(
            "INSERT OR REPLACE INTO processed_exports VALUES (?, ?, ?, ?, ?, ?)",
            (self.target, print_, str(path), run_id, rows_read, int(time.time())),
        )
