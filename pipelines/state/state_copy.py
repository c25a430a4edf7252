"""Copying a whole state from one store to another (SQLite → PostgreSQL and back), in batches.

Rows keep their meaning, not their numbers: targets are matched by base URL and runs by run id,
and the deliveries' references to them are translated. Each batch commits on its own and a row
the destination already holds is left as it is, so an interrupted copy is resumed by running it
again. Locks are not copied (they belong to runs of the source), nor the version history.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from pipelines.core.state_location import StateLocation
from pipelines.state.database import StateDB
from pipelines.state.state_migrations import open_state
from pipelines.state.state_schema import TABLES

__all__ = ["TableCopy", "copy_state", "table_counts"]

_BATCH = 5_000
_DELIVERY_COLUMNS = (
    "key, outcome, body_hash, attempts, failed_runs, last_failed_run, prev_outcome, run, "
    "remote_id, http_status, error_code, message, updated_at, account_id, user_id, completion_id"
)
_COPY_SQL = {
    "targets": (
        "SELECT base_url FROM targets ORDER BY base_url",
        "INSERT INTO targets (base_url) VALUES (?) ON CONFLICT DO NOTHING",
    ),
    "runs": (
        "SELECT run_id, pid, host, started_at FROM runs ORDER BY run_id",
        "INSERT INTO runs (run_id, pid, host, started_at) VALUES (?, ?, ?, ?) "
        "ON CONFLICT DO NOTHING",
    ),
    "deliveries": (
        f"SELECT target_id, {_DELIVERY_COLUMNS} FROM deliveries ORDER BY target_id, key",
        f"INSERT INTO deliveries (target_id, {_DELIVERY_COLUMNS}) "
        f"VALUES ({', '.join(['?'] * 17)}) ON CONFLICT DO NOTHING",
    ),
    "processed_exports": (
        "SELECT * FROM processed_exports ORDER BY target, fingerprint",
        "INSERT INTO processed_exports VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
    ),
    "user_cache": (
        "SELECT * FROM user_cache ORDER BY target, account, kind, value",
        "INSERT INTO user_cache VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
    ),
}


@dataclass
class TableCopy:
    """One table: rows in the source, rows written to the destination, rows it holds after."""

    table: str
    source_rows: int
    copied: int
    destination_rows: int

    @property
    def complete(self) -> bool:
        """Does the destination hold at least every row of the source?"""
        return self.destination_rows >= self.source_rows


def table_counts(db: StateDB) -> dict[str, int]:
    """Rows per state table (a table an older schema lacks is left out)."""
    return {
        t: int(db.execute(f"SELECT count(*) FROM {t}").fetchone()[0])
        for t in TABLES
        if db.table_exists(t)
    }


def copy_state(
    source: StateLocation, destination: StateLocation, say: Callable[[str], None] = print
) -> list[TableCopy]:
    """Copy every table of ``source`` into ``destination`` (created or migrated as needed)."""
    src = open_state(source)
    dst = open_state(destination)
    assert src is not None and dst is not None
    try:
        before = table_counts(src)
        copied = {table: _copy_table(src, dst, table, say) for table in TABLES}
        after = table_counts(dst)
    finally:
        src.close()
        dst.close()
    return [TableCopy(t, before.get(t, 0), copied[t], after[t]) for t in TABLES]


def _copy_table(src: StateDB, dst: StateDB, table: str, say: Callable[[str], None]) -> int:
    read, write = _COPY_SQL[table]
    fix = _references(src, dst) if table == "deliveries" else None
    written = 0
    for rows in _batches(src, read):
        batch = [fix(row) for row in rows] if fix else rows
        with dst.write():
            written += max(dst.executemany(write, batch), 0)
        say(f"{table}: {written:,} rows written")
    return written


def _batches(db: StateDB, sql: str) -> Iterator[list[Any]]:
    """The rows of one query in batches, from one read transaction (a consistent snapshot)."""
    with db.read():
        cursor = db.execute(sql)
        while rows := cursor.fetchmany(_BATCH):
            yield [tuple(bytes(v) if isinstance(v, memoryview) else v for v in r) for r in rows]


def _references(src: StateDB, dst: StateDB) -> Callable[[tuple[Any, ...]], tuple[Any, ...]]:
    """Translate a delivery's target and run numbers from the source's to the destination's."""
    target = _id_map(src, dst, "targets", "base_url")
    run = _id_map(src, dst, "runs", "run_id")

    def fix(row: tuple[Any, ...]) -> tuple[Any, ...]:
        values = list(row)
        values[0] = target[values[0]]
        for at in (6, 8):  # last_failed_run, run
            values[at] = run.get(values[at]) if values[at] is not None else None
        return tuple(values)

    return fix


def _id_map(src: StateDB, dst: StateDB, table: str, name: str) -> dict[int, int]:
    """Source id → destination id of the rows of ``table`` with the same ``name``."""
    sql = f"SELECT id, {name} FROM {table}"
    theirs = {value: ident for ident, value in dst.execute(sql)}
    return {ident: theirs[value] for ident, value in src.execute(sql)}
