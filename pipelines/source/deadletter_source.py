"""A dead-letter Parquet file read back as a source, for ``lms-sync replay`` (DESIGN §8).

Replayed rows keep where they first came from. Each batch is cut where ``_dl_source_file``
changes, the chunk's source is that file, and its row numbers are ``_dl_source_row``. So a row
that fails again is dead-lettered under its original file and row. The ``_dl_*`` columns are
dropped before validation.

A row first dead-lettered as ``malformed_row`` can hold shifted or truncated fields, and
re-validating it as is could send wrong data. It therefore stays malformed until whoever fixed
its columns clears its ``_dl_error_code``. A row with no origin (added by hand) is numbered as a
row of the dead-letter file itself.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipelines.core.errors import SourceError
from pipelines.core.object_urls import is_url, staged_location
from pipelines.source.batches import SourceBatch, iter_batches

__all__ = ["ORIGIN_FILE", "ORIGIN_ROW", "STILL_MALFORMED", "check_deadletter", "replay_batches"]

ORIGIN_FILE = "_dl_source_file"
ORIGIN_ROW = "_dl_source_row"
STILL_MALFORMED = "still malformed: fix its columns, then clear _dl_error_code to replay it"
_DL_PREFIX = "_dl_"


def check_deadletter(path: Path) -> None:
    """Raise SourceError unless ``path`` is a dead-letter Parquet file (it names its rows' origin)."""
    try:
        names = pq.read_schema(path).names
    except (OSError, pa.ArrowException) as exc:
        raise SourceError(
            path, f"not a dead-letter Parquet file ({exc}); replay reads deadletter.parquet"
        ) from None
    missing = [name for name in (ORIGIN_FILE, ORIGIN_ROW) if name not in names]
    if missing:
        raise SourceError(
            path,
            f"not a dead-letter file: no {', '.join(missing)} column; replay reads the "
            "deadletter.parquet of a run folder",
        )


def replay_batches(path: Path, batch_rows: int) -> Iterator[tuple[Path, SourceBatch]]:
    """The dead-letter's rows, in file order, as batches of their original source files."""
    for batch in iter_batches(path, fmt="parquet", batch_rows=batch_rows):
        table = batch.table
        files, rows = _origin(path, table, batch.rows)
        read_errors = _still_malformed(table)
        source = table.drop_columns([c for c in table.column_names if c.startswith(_DL_PREFIX)])
        for start, stop in _runs(files):
            yield (
                _origin_path(files[start].as_py()),
                SourceBatch(
                    table=source.slice(start, stop - start),
                    rows=rows.slice(start, stop - start),
                    read_errors=read_errors.slice(start, stop - start),
                ),
            )


def _origin_path(origin: str) -> Path:
    """The chunk source of rows from ``origin``: an object URL stands as its staged copy's path,
    which the dead-letter file and report name by the URL again."""
    return staged_location(origin) if is_url(origin) else Path(origin)


def _origin(path: Path, table: pa.Table, own_rows: pa.Array) -> tuple[pa.Array, pa.Array]:
    """Original file and row of every row; rows without both are the dead-letter's own."""
    files = _whole(table.column(ORIGIN_FILE))
    rows = _whole(table.column(ORIGIN_ROW))
    try:
        files = pc.cast(files, pa.string())
        rows = pc.cast(rows, pa.int64())
    except pa.ArrowInvalid as exc:
        raise SourceError(path, f"{ORIGIN_FILE}/{ORIGIN_ROW} hold unusable values: {exc}") from None
    known = pc.and_(pc.is_valid(files), pc.is_valid(rows))
    known = pc.and_(known, pc.fill_null(pc.not_equal(files, ""), False))
    return (
        pc.if_else(known, files, pa.scalar(str(path), pa.string())),
        pc.if_else(known, rows, own_rows),
    )


def _still_malformed(table: pa.Table) -> pa.Array:
    """Read errors: the original message (plus how to fix) where ``malformed_row`` is still set."""
    n = table.num_rows
    if "_dl_error_code" not in table.column_names:
        return pa.nulls(n, pa.string())
    code = pc.cast(_whole(table.column("_dl_error_code")), pa.string())
    malformed = pc.fill_null(pc.equal(pc.utf8_trim_whitespace(code), "malformed_row"), False)
    if not pc.any(malformed).as_py():
        return pa.nulls(n, pa.string())
    message = pa.nulls(n, pa.string())
    if "_dl_error_message" in table.column_names:
        message = pc.cast(_whole(table.column("_dl_error_message")), pa.string())
    message = pc.fill_null(message, "record was malformed in the source")
    hinted = pc.fill_null(pc.ends_with(message, f"({STILL_MALFORMED})"), False)
    message = pc.if_else(
        hinted, message, pc.binary_join_element_wise(message, f"({STILL_MALFORMED})", " ")
    )
    return pc.if_else(malformed, message, pa.scalar(None, pa.string()))


def _runs(files: pa.Array) -> Iterator[tuple[int, int]]:
    """(start, stop) of every run of consecutive rows from the same file."""
    n = len(files)
    if n == 0:
        return
    changed = pc.not_equal(files.slice(1), files.slice(0, n - 1))
    cuts = np.flatnonzero(changed.to_numpy(zero_copy_only=False)) + 1
    bounds = [0, *cuts.tolist(), n]
    yield from itertools.pairwise(bounds)


def _whole(column: pa.ChunkedArray | pa.Array) -> pa.Array:
    return column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
