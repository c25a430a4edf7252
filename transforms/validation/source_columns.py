"""Source columns as the checks take them: cleaned text, or cleaned raw values for converters."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from transforms.mapping import Column
from transforms.text import clean_text


def whole_column(table: pa.Table, name: str) -> pa.Array:
    """One contiguous array of the column ``name``."""
    column = table.column(name)
    return column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column


def text_column(table: pa.Table, name: str) -> pa.Array:
    """A column as cleaned text: ids from typed Parquet columns leave as strings."""
    values = whole_column(table, name)
    if not pa.types.is_string(values.type):
        values = pc.cast(values, pa.string())
    return clean_text(values)


def field_raw(table: pa.Table, spec: Column, n: int) -> pa.Array:
    """A field's column cleaned but keeping its Parquet type (converters parse their own types)."""
    if spec.column is None:
        return clean_text(pa.repeat(spec.value, n))
    return clean_text(whole_column(table, spec.column))


def field_text(table: pa.Table, spec: Column, n: int) -> pa.Array:
    """A field as cleaned text: its column's, or its constant ``value`` on every row."""
    if spec.column is None:
        return clean_text(pa.repeat(spec.value, n))
    return text_column(table, spec.column)
