"""One connection to the state store, SQLite or PostgreSQL, behind the same small interface.

SQL is written once with ``?`` and ``:name`` parameters and standard upserts (``ON CONFLICT``);
for PostgreSQL the parameters become psycopg's ``%s``/``%(name)s``. Write transactions queue:
SQLite takes the write lock up front (``BEGIN IMMEDIATE``), PostgreSQL an advisory lock held to
the end of the transaction, so two writers never deadlock and see each other's commits. Threads
sharing one connection (a lease renewed in a worker thread while the run records outcomes) take
turns: a transaction holds the connection's lock to its end, a lone statement for its call.
"""

from __future__ import annotations

import os
import re
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from functools import lru_cache
from typing import Any, Literal, Protocol

from pipelines.core.errors import SettingsError
from pipelines.core.state_location import StateLocation

__all__ = ["Cursor", "StateDB", "closing_on_error", "connect_state"]

Dialect = Literal["sqlite", "postgres"]
_WRITE_LOCK = 0x6C6D_7373  # the advisory lock every PostgreSQL write transaction holds
_NAMED = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")


class Cursor(Protocol):
    """What both drivers' cursors give back."""

    rowcount: int
    description: Any

    def fetchone(self) -> Any: ...
    def fetchall(self) -> list[Any]: ...
    def fetchmany(self, size: int) -> list[Any]: ...
    def __iter__(self) -> Iterator[Any]: ...


@lru_cache(maxsize=256)
def _to_psycopg(sql: str) -> str:
    """``?`` → ``%s`` and ``:name`` → ``%(name)s`` (a literal ``%`` doubled)."""
    return _NAMED.sub(r"%(\1)s", sql.replace("%", "%%").replace("?", "%s"))


class StateDB:
    """A connection in autocommit mode; ``write()``/``read()`` open explicit transactions."""

    def __init__(self, conn: Any, dialect: Dialect, where: str) -> None:
        self.conn = conn
        self.dialect: Dialect = dialect
        self.where = where  # names the store in messages (never a password)
        self._turn = threading.RLock()  # one thread's transaction (or statement) at a time

    def sql(self, text: str) -> str:
        """The statement in this driver's parameter style."""
        return text if self.dialect == "sqlite" else _to_psycopg(text)

    def execute(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> Cursor:
        """Run one statement."""
        with self._turn:
            cursor: Cursor = self.conn.execute(self.sql(sql), params)
        return cursor

    def executemany(self, sql: str, rows: Iterable[Sequence[Any] | dict[str, Any]]) -> int:
        """Run one statement for every row; the number of rows it changed."""
        with self._turn:
            if self.dialect == "sqlite":
                return int(self.conn.executemany(sql, rows).rowcount)
            with self.conn.cursor() as cursor:
                cursor.executemany(self.sql(sql), list(rows))
                return int(cursor.rowcount)

    @contextmanager
    def write(self) -> Iterator[StateDB]:
        """One write transaction, queued behind any other writer; rolled back if the block raises."""
        with self._turn:
            if self.dialect == "sqlite":
                self.conn.execute("BEGIN IMMEDIATE")
            else:
                self.conn.execute("BEGIN")
                self.conn.execute("SELECT pg_advisory_xact_lock(%s)", (_WRITE_LOCK,))
            yield from self._finish()

    @contextmanager
    def read(self) -> Iterator[StateDB]:
        """One read transaction: a consistent snapshot for several queries."""
        with self._turn:
            if self.dialect == "sqlite":
                self.conn.execute("BEGIN")
            else:
                self.conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            yield from self._finish()

    def _finish(self) -> Iterator[StateDB]:
        try:
            yield self
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    def table_exists(self, name: str) -> bool:
        """Does the store have this table?"""
        if self.dialect == "sqlite":
            sql = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?"
        else:
            sql = "SELECT 1 FROM pg_tables WHERE schemaname = current_schema() AND tablename = ?"
        return self.execute(sql, (name,)).fetchone() is not None

    def close(self) -> None:
        """Close the connection once no other thread is in a statement or transaction on it
        (closing under one crashes sqlite3); a later use raises, as on any closed connection."""
        with self._turn:
            self.conn.close()


def connect_state(location: StateLocation) -> StateDB:
    """Connect to the store (an SQLite file is created owner-only, in WAL mode)."""
    if location.kind == "sqlite":
        assert location.path is not None
        return StateDB(_connect_sqlite(location), "sqlite", location.display)
    assert location.url is not None
    import psycopg  # only when Postgres is used: the SQLite default needs no driver

    try:
        conn = psycopg.connect(location.url.get_secret_value(), autocommit=True, connect_timeout=10)
    except psycopg.OperationalError as exc:
        message = str(exc).replace(location.url.get_secret_value(), location.display)
        raise SettingsError(
            f"cannot connect to the state store {location.display}: {message}"
        ) from None
    return StateDB(conn, "postgres", location.display)


def _connect_sqlite(location: StateLocation) -> sqlite3.Connection:
    path = location.path
    assert path is not None
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
    conn = sqlite3.connect(path, isolation_level=None, timeout=30.0, check_same_thread=False)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("PRAGMA cache_size = -16384")
    return conn


class _Closable(Protocol):
    def close(self) -> None: ...


@contextmanager
def closing_on_error(thing: _Closable) -> Iterator[None]:
    """Close ``thing`` if the block raises: a store the tool cannot use is not left open."""
    try:
        yield
    except BaseException:
        thing.close()
        raise
