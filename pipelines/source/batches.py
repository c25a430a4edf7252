"""Stream a source (CSV, CSV.gz, Parquet) as ``SourceBatch``es with exact 1-based record numbers."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from pipelines.source.csv_layout import csv_layout
from pipelines.source.csv_reader import csv_pieces
from pipelines.source.parquet_reader import parquet_pieces
from pipelines.source.source_breaks import SourceEnd
from pipelines.source.source_files import detect_format

__all__ = ["DEFAULT_BATCH_ROWS", "SourceBatch", "iter_batches"]

DEFAULT_BATCH_ROWS = 100_000


@dataclass(frozen=True)
class SourceBatch:
    """A slice of one source file.

    ``table``: the source's columns (CSV: all ``pa.string()``; Parquet: its own types), possibly
    chunked. ``rows``: int64, 1-based record number in the file (header and blank lines excluded).
    ``read_errors``: string, null for a good record, else why the record is malformed; malformed
    records are rows too, holding what could be parsed (missing fields null).
    ``source_break``: set on the batch holding a source's last record when the source broke off
    there (a truncated or corrupt file): why; that record is malformed, the rest is missing.
    """

    table: pa.Table
    rows: pa.Array
    read_errors: pa.Array
    source_break: str | None = None

    @property
    def num_rows(self) -> int:
        """Number of records in the batch."""
        return int(self.table.num_rows)


def iter_batches(
    path: Path,
    *,
    fmt: str = "auto",
    delimiter: str = "auto",
    encoding: str = "utf-8",
    batch_rows: int = DEFAULT_BATCH_ROWS,
) -> Iterator[SourceBatch]:
    """Stream ``path`` in batches of at most ``batch_rows`` records; memory stays flat."""
    if batch_rows < 1:
        raise ValueError("batch_rows must be at least 1")
    end = SourceEnd()
    if detect_format(path, fmt) == "parquet":
        pieces: Iterable[tuple[pa.Table, pa.Array | None]] = parquet_pieces(path, batch_rows, end)
    else:
        pieces = csv_pieces(csv_layout(path, delimiter, encoding), end)
    return _rebatch(pieces, batch_rows, end)


def _rebatch(
    pieces: Iterable[tuple[pa.Table, pa.Array | None]], batch_rows: int, end: SourceEnd
) -> Iterator[SourceBatch]:
    """Cut pieces into batches of ``batch_rows`` records, numbering records from 1.

    A break record is the last piece and ``end`` is noted before it comes: from then on, a
    batch that empties the buffer holds it.
    """
    buffer: list[tuple[pa.Table, pa.Array | None]] = []
    buffered = 0
    first_row = 1
    for table, errors in pieces:
        if not table.num_rows:
            continue
        buffer.append((table, errors))
        buffered += table.num_rows
        while buffered >= batch_rows:
            table_all, errors_all = _concat(buffer)
            head_errors = None if errors_all is None else errors_all.slice(0, batch_rows)
            rest = buffered - batch_rows
            broken = None if rest else end.broken
            yield _batch(table_all.slice(0, batch_rows), head_errors, first_row, broken)
            buffer = []
            if rest:
                rest_errors = None if errors_all is None else errors_all.slice(batch_rows)
                buffer.append((table_all.slice(batch_rows), rest_errors))
            buffered = rest
            first_row += batch_rows
    if buffered:
        table_all, errors_all = _concat(buffer)
        yield _batch(table_all, errors_all, first_row, end.broken)


def _concat(buffer: list[tuple[pa.Table, pa.Array | None]]) -> tuple[pa.Table, pa.Array | None]:
    table = buffer[0][0] if len(buffer) == 1 else pa.concat_tables([t for t, _ in buffer])
    if all(errors is None for _, errors in buffer):
        return table, None
    parts = [pa.nulls(t.num_rows, pa.string()) if e is None else e for t, e in buffer]
    return table, pa.concat_arrays(parts)


def _batch(
    table: pa.Table, errors: pa.Array | None, first_row: int, broken: str | None
) -> SourceBatch:
    length = table.num_rows
    numbers = np.arange(first_row, first_row + length, dtype=np.int64)
    rows = pa.Array.from_buffers(pa.int64(), length, [None, pa.py_buffer(numbers)])  # no pandas
    read_errors = pa.nulls(length, pa.string()) if errors is None else errors
    return SourceBatch(table=table, rows=rows, read_errors=read_errors, source_break=broken)
