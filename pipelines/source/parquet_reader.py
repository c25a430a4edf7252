"""Read Parquet sources: their column names, and their rows in pieces of at most N records."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from pipelines.core.errors import SourceError
from pipelines.source.column_names import checked_names

__all__ = ["parquet_names", "parquet_pieces"]


def _open_parquet(path: Path) -> pq.ParquetFile:
    try:
        if path.stat().st_size == 0:
            raise SourceError(path, "file is empty")
        return pq.ParquetFile(path)
    except (OSError, pa.ArrowException) as exc:
        raise SourceError(path, f"cannot read as Parquet: {exc}") from exc


def parquet_names(path: Path) -> tuple[str, ...]:
    """The Parquet file's column names, checked (trimmed, non-empty, unique)."""
    with _open_parquet(path) as parquet:
        return checked_names(path, parquet.schema_arrow.names)


def parquet_pieces(path: Path, batch_rows: int) -> Iterator[tuple[pa.Table, None]]:
    """The file's rows in tables of at most ``batch_rows`` records (no read errors in Parquet)."""
    with _open_parquet(path) as parquet:
        names = checked_names(path, parquet.schema_arrow.names)
        try:
            for batch in parquet.iter_batches(batch_size=batch_rows):
                yield pa.Table.from_batches([batch]).rename_columns(names), None
        except (OSError, pa.ArrowException) as exc:
            raise SourceError(path, f"cannot read as Parquet: {exc}") from exc
