"""The user cache: looked-up user ids per (target, account, kind, value), with a time-to-live.

Answers, misses included, are kept so that nightly runs do not look up the same people again.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType
from typing import Literal

Kind = Literal["email", "external_reference"]
DEFAULT_TTL_SECONDS = 7 * 24 * 3600
MISS_TTL_SECONDS = 6 * 3600  # a user created today should be found by tonight's run
_SCHEMA = """
CREATE TABLE IF NOT EXISTS user_cache (
    target TEXT NOT NULL,
    account TEXT NOT NULL,
    kind TEXT NOT NULL,
    value TEXT NOT NULL,
    user_id TEXT,
    fetched_at INTEGER NOT NULL,
    PRIMARY KEY (target, account, kind, value)
)
"""


class UserCache:
    """Looked-up user ids per (target, account, kind, value) in SQLite, with a time-to-live."""

    def __init__(self, path: Path, target: str, ttl_seconds: int = DEFAULT_TTL_SECONDS) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
        self.target = target
        self.ttl_seconds = ttl_seconds
        self._db = sqlite3.connect(
            path, isolation_level=None, timeout=30.0, check_same_thread=False
        )
        self._db.execute("PRAGMA journal_mode = WAL")
        self._db.execute(_SCHEMA)

    def __enter__(self) -> UserCache:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._db.close()

    def get(self, account: str, kind: Kind, values: Iterable[str]) -> dict[str, str | None]:
        """Fresh cached answers (``None`` = known miss) for the values that have one."""
        now = int(time.time())
        found: dict[str, str | None] = {}
        for value in values:
            row = self._db.execute(
                "SELECT user_id, fetched_at FROM user_cache "
                "WHERE target = ? AND account = ? AND kind = ? AND value = ?",
                (self.target, account, kind, value),
            ).fetchone()
            if row is None:
                continue
            user_id, fetched_at = row
            ttl = (
                self.ttl_seconds if user_id is not None else min(self.ttl_seconds, MISS_TTL_SECONDS)
            )
            if now - fetched_at < ttl:
                found[value] = user_id
        return found

    def put(self, account: str, kind: Kind, answers: dict[str, str | None]) -> None:
        """Remember answers (``None`` for values no user has)."""
        now = int(time.time())
        self._db.execute("BEGIN")
        self._db.executemany(
            "INSERT OR REPLACE INTO user_cache VALUES (?, ?, ?, ?, ?, ?)",
            [(self.target, account, kind, v, uid, now) for v, uid in answers.items()],
        )
        self._db.execute("COMMIT")
