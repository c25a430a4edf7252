"""The sandbox's completion store: SQLite, refusing an identical (account, user, body) again."""

from __future__ import annotations

import sqlite3
import uuid
from pathlib import Path
from typing import Any

import orjson


class CompletionStore:
    """Completions in SQLite; an identical (account, user, body) is refused."""

    def __init__(self, path: str | Path | None) -> None:
        self._db = sqlite3.connect(
            str(path) if path else ":memory:", check_same_thread=False, isolation_level=None
        )
        if path:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS completions (seq INTEGER PRIMARY KEY, id TEXT UNIQUE,"
            " remote_id TEXT, account_id TEXT, user_id TEXT, body TEXT, created_at TEXT,"
            " UNIQUE (account_id, user_id, body))"
        )

    def add(self, account_id: str, user_id: str, body: str, created_at: str) -> tuple[bool, str]:
        """Store a completion: (True, new id), or (False, id of the identical one stored)."""
        new_id = uuid.uuid4().hex
        cursor = self._db.execute(
            "INSERT INTO completions (id, remote_id, account_id, user_id, body, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
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
        query = "SELECT id, remote_id, account_id, user_id, body, created_at FROM completions"
        params: tuple[str, ...] = ()
        if account_id is not None and user_id is not None:
            query, params = query + " WHERE account_id = ? AND user_id = ?", (account_id, user_id)
        names = ("id", "remote_id", "account_id", "user_id", "body", "created_at")
        found = [
            dict(zip(names, row, strict=True))
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
