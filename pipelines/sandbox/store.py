"""The sandbox's completion store: SQLite, refusing an identical (account, user, body) again
unless it stores repeats (then each repeat is a new record, numbered by ``copy``)."""

from __future__ import annotations

import sqlite3
import uuid
from pathlib import Path
from typing import Any

import orjson

_COLUMNS = ("id", "remote_id", "account_id", "user_id", "body", "created_at")


class CompletionStore:
    """Completions in SQLite; an identical (account, user, body) is refused unless
    ``store_repeats`` (a provider that does not deduplicate)."""

    def __init__(self, path: str | Path | None, store_repeats: bool = False) -> None:
        self._store_repeats = store_repeats
        self._db = sqlite3.connect(
            str(path) if path else ":memory:", check_same_thread=False, isolation_level=None
        )
        if path:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS completions (seq INTEGER PRIMARY KEY, id TEXT UNIQUE,"
            " remote_id TEXT, account_id TEXT, user_id TEXT, body TEXT, created_at TEXT,"
            " copy INTEGER NOT NULL DEFAULT 0, UNIQUE (account_id, user_id, body, copy))"
        )
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(completions)")}
        if "copy" not in columns:  # a file from before repeats could be stored: they stay 409
            self._db.execute("ALTER TABLE completions ADD COLUMN copy INTEGER NOT NULL DEFAULT 0")

    def add(self, account_id: str, user_id: str, body: str, created_at: str) -> tuple[bool, str]:
        """Store a completion: (True, new id), or (False, id of the identical one stored)."""
        new_id = uuid.uuid4().hex
        copy = (
            "(SELECT count(*) FROM completions WHERE account_id = ?3 AND user_id = ?4"
            " AND body = ?5)"
            if self._store_repeats
            else "0"
        )
        cursor = self._db.execute(
            "INSERT INTO completions (id, remote_id, account_id, user_id, body, created_at, copy)"
            f" VALUES (?1, ?2, ?3, ?4, ?5, ?6, {copy}) ON CONFLICT DO NOTHING",
            (new_id, f"remote-{uuid.uuid4().hex[:16]}", account_id, user_id, body, created_at),
        )
        if cursor.rowcount:
            return True, new_id
        row = self._db.execute(
            "SELECT id FROM completions WHERE account_id = ? AND user_id = ? AND body = ?",
            (account_id, user_id, body),
        ).fetchone()
        return False, row[0]

    def remote_id(self, completion_id: str) -> str:
        """The provider id of a stored completion."""
        row = self._db.execute("SELECT remote_id FROM completions WHERE id = ?", (completion_id,))
        return str(row.fetchone()[0])

    def rows(
        self, account_id: str | None = None, user_id: str | None = None
    ) -> list[dict[str, Any]]:
        """Stored completions in creation order, optionally of one account and user."""
        query = f"SELECT {', '.join(_COLUMNS)} FROM completions"
        params: tuple[str, ...] = ()
        if account_id is not None and user_id is not None:
            query, params = query + " WHERE account_id = ? AND user_id = ?", (account_id, user_id)
        found = [
            dict(zip(_COLUMNS, row, strict=True))
            for row in self._db.execute(query + " ORDER BY seq", params)
        ]
        for row in found:
            row["body"] = orjson.loads(row["body"])
        return found

    def clear(self) -> None:
        """Delete every completion."""
        self._db.execute("DELETE FROM completions")

    def close(self) -> None:
        """Close the database."""
        self._db.close()
