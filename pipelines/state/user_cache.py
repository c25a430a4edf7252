"""The user cache: looked-up user ids per (target, account, kind, value), with a time-to-live.

Answers, misses included, are kept so that nightly runs do not look up the same people again.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType
from typing import Literal

from pipelines.core.state_location import StateLocation
from pipelines.state.database import StateDB
from pipelines.state.state_migrations import open_state

Kind = Literal["email", "external_reference"]
DEFAULT_TTL_SECONDS = 7 * 24 * 3600
MISS_TTL_SECONDS = 6 * 3600  # a user created today should be found by tonight's run


class UserCache:
    """Looked-up user ids per (target, account, kind, value) in the state store, with a
    time-to-live; ``where`` is the store (a location, or the path of an SQLite file).

    ``read_only`` (dry runs) reads the store if there is one and keeps new answers in memory:
    a dry run never creates or changes the state.
    """

    def __init__(
        self,
        where: StateLocation | Path,
        target: str,
        ttl_seconds: int = DEFAULT_TTL_SECONDS,
        *,
        read_only: bool = False,
    ) -> None:
        location = where if isinstance(where, StateLocation) else StateLocation.sqlite(where)
        self.target = target
        self.ttl_seconds = ttl_seconds
        self.read_only = read_only
        self._db: StateDB | None = open_state(location, read_only=read_only)
        if self._db is not None and not self._db.table_exists("user_cache"):
            self._db.close()  # read only, a store from before schema 3: nothing cached yet
            self._db = None
        self._fresh: dict[tuple[str, str, str], str | None] = {}  # read only: this run's answers

    def __enter__(self) -> UserCache:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._db is not None:
            self._db.close()

    def get(self, account: str, kind: Kind, values: Iterable[str]) -> dict[str, str | None]:
        """Fresh cached answers (``None`` = known miss) for the values that have one."""
        now = int(time.time())
        found: dict[str, str | None] = {}
        for value in values:
            if (account, kind, value) in self._fresh:
                found[value] = self._fresh[account, kind, value]
                continue
            if self._db is None:
                continue
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
        if self.read_only or self._db is None:
            self._fresh.update({(account, kind, v): uid for v, uid in answers.items()})
            return
        now = int(time.time())
        with self._db.write() as db:
            db.executemany(
                """INSERT INTO user_cache VALUES (?, ?, ?, ?, ?, ?)
                   ON CONFLICT (target, account, kind, value) DO UPDATE SET
                       user_id = excluded.user_id, fetched_at = excluded.fetched_at""",
                [(self.target, account, kind, v, uid, now) for v, uid in answers.items()],
            )
