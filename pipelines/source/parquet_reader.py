"""Read Parquet sources: their column names, and their rows in pieces of at most N records."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from pipelines.core.errors import SourceError
from pipelines.source.column_names import checked_names
from pipelines.source.source_breaks import SourceEnd, break_piece

__all__ = ["parquet_names", "parquet_pieces", "parquet_schema"]

_UNREADABLE = "cannot read as Parquet (the file is truncated or corrupt, or not Parquet)"
_BROKEN_GROUP = (
    "file is truncated or corrupt: Parquet row group {group} of {groups} cannot be read ({error}); "
    "this record and all after it are missing: land the complete file again"
)


# View types (Arrow >= 16 writers keep them in the file's schema) have no kernels for much of what
# a run does (take, the dead-letter files): they are read as the plain types.
_PLAIN_TYPES = {pa.string_view(): pa.string(), pa.binary_view(): pa.binary()}


def _plain(schema: pa.Schema) -> pa.Schema:
    return pa.schema(
        [field.with_type(_PLAIN_TYPES.get(field.type, field.type)) for field in schema]
    )


def _open_parquet(path: Path) -> pq.ParquetFile:
    try:
        if path.stat().st_size == 0:
            raise SourceError(path, "file is empty")
        return pq.ParquetFile(path)
    except (OSError, pa.ArrowException) as exc:
        raise SourceError(path, f"{_UNREADABLE}: {exc}") from exc


def parquet_names(path: Path) -> tuple[str, ...]:
    """The Parquet file's column names, checked (trimmed, non-empty, unique)."""
    with _open_parquet(path) as parquet:
        return checked_names(path, parquet.schema_arrow.names)


def parquet_schema(path: Path) -> pa.Schema:
    """The Parquet file's columns and their types as ``parquet_pieces`` yields them."""
    with _open_parquet(path) as parquet:
        return _plain(parquet.schema_arrow)


def parquet_pieces(
    path: Path, batch_rows: int, end: SourceEnd
) -> Iterator[tuple[pa.Table, pa.Array | None]]:
    """The file's rows in tables of at most ``batch_rows`` records, row group by row group.

    A row group that cannot be read ends the file there: the rows before it stand, and one
    record marks the break (``end`` notes it).
    """
    with _open_parquet(path) as parquet:
        names = checked_names(path, parquet.schema_arrow.names)
        fields = zip(_plain(parquet.schema_arrow), names, strict=True)
        schema = pa.schema([field.with_name(name) for field, name in fields])
        views = any(field.type in _PLAIN_TYPES for field in parquet.schema_arrow)
        groups = parquet.num_row_groups
        for group in range(groups):
            try:
                for batch in parquet.iter_batches(batch_size=batch_rows, row_groups=[group]):
                    table = pa.Table.from_batches([batch]).rename_columns(names)
                    yield (table.cast(schema) if views else table), None
            except (OSError, pa.ArrowException) as exc:
                message = _BROKEN_GROUP.format(group=group + 1, groups=groups, error=exc)
                yield break_piece(schema, message, end)
                return
