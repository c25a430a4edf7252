"""The ledger's SQLite connection: an owner-only file in WAL mode, and write transactions that
are taken up front so two writers queue instead of deadlocking."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol

__all__ = ["closing_on_error", "connect", "write_transaction"]


def connect(path: Path) -> sqlite3.Connection:
    """Open (creating if needed) the file: WAL, synchronous=NORMAL, owner-only permissions."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
    conn = sqlite3.connect(path, isolation_level=None, timeout=30.0, check_same_thread=False)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("PRAGMA cache_size = -16384")
    return conn


@contextmanager
def write_transaction(db: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One write transaction (BEGIN IMMEDIATE), rolled back if the block raises."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield db
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


class _Closable(Protocol):
    def close(self) -> None: ...


@contextmanager
def closing_on_error(thing: _Closable) -> Iterator[None]:
    """Close ``thing`` if the block raises: a file the tool cannot use is not left open."""
    try:
        yield
    except BaseException:
        thing.close()
        raise
