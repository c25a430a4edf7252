"""Source columns as the checks take them: cleaned text, or cleaned raw values for converters."""

from __future__ import annotations

from collections.abc import Callable

import pyarrow as pa
import pyarrow.compute as pc

from transforms.extraction import take_part
from transforms.mapping import Column, ColumnPart
from transforms.text import clean_text


def whole_column(table: pa.Table, name: str) -> pa.Array:
    """One contiguous array of the column ``name``."""
    column = table.column(name)
    return column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column


def text_column(table: pa.Table, name: str) -> pa.Array:
    """A column as cleaned text: ids from typed Parquet columns leave as strings."""
    return id_column(table, name)[0]


def id_column(table: pa.Table, name: str) -> tuple[pa.Array, pa.Array | None]:
    """A column as cleaned text, and for a float column where it held NaN or ±inf (then null).

    Whole floats leave as integers (``12345.0`` → ``"12345"``, never ``1.2345e+04``).
    """
    values = whole_column(table, name)
    if pa.types.is_floating(values.type):
        return _float_text(values)
    if not pa.types.is_string(values.type):
        values = pc.cast(values, pa.string())
    return clean_text(values), None


def part_ids(table: pa.Table, name: str, part: ColumnPart) -> tuple[pa.Array, pa.Array | None]:
    """``id_column`` of ``name``, then the part of each value the mapping takes (prefix, extract)."""
    values, not_finite = id_column(table, name)
    return take_part(values, part.prefix, part.extract), not_finite


def field_ids(table: pa.Table, spec: Column, n: int) -> tuple[pa.Array, pa.Array | None]:
    """A field as cleaned text (see ``id_column``) with its NaN/inf rows; a constant has none."""
    if spec.column is None:
        return clean_text(pa.repeat(spec.value, n)), None
    return part_ids(table, spec.column, spec)


def _float_text(values: pa.Array) -> tuple[pa.Array, pa.Array]:
    """Floats as id text: whole numbers as integers, others as Arrow prints them, NaN/inf null."""
    number = values.cast(pa.float64())
    finite = pc.is_finite(number)
    whole = pc.and_(
        pc.and_(finite, pc.equal(pc.floor(number), number)), pc.less(pc.abs(number), 2.0**63)
    )
    integers = pc.cast(pc.cast(pc.if_else(whole, number, None), pa.int64()), pa.string())
    others = pc.if_else(finite, pc.cast(number, pa.string()), pa.scalar(None, pa.string()))
    return pc.if_else(whole, integers, others), pc.fill_null(pc.invert(finite), False)


def field_raw(table: pa.Table, spec: Column, n: int) -> pa.Array:
    """A field's column cleaned but keeping its Parquet type (converters parse their own types)."""
    raw, clean = field_raw_uncleaned(table, spec, n)
    return clean(raw)


def field_raw_uncleaned(
    table: pa.Table, spec: Column, n: int
) -> tuple[pa.Array, Callable[[pa.Array], pa.Array]]:
    """``field_raw`` in two steps: the column as read (a constant: on every row), and the
    value-by-value cleaning that turns it into ``field_raw`` (to run once per distinct value)."""
    if spec.column is None:
        return pa.repeat(spec.value, n), clean_text
    return whole_column(table, spec.column), cleaning(spec)


def cleaning(part: ColumnPart) -> Callable[[pa.Array], pa.Array]:
    """Trimming, blanks to null, then the mapping's part of each value (prefix, extract)."""
    return lambda values: take_part(clean_text(values), part.prefix, part.extract)


def field_text(table: pa.Table, spec: Column, n: int) -> pa.Array:
    """A field as cleaned text: its column's, or its constant ``value`` on every row."""
    return field_ids(table, spec, n)[0]


def distinct_text(table: pa.Table, name: str, part: ColumnPart) -> tuple[pa.Array, pa.Array]:
    """``part_ids`` of column ``name`` as distinct values and each row's index into them (null
    where the value is). A text column is cleaned once per distinct value, not once per row:
    statuses and the like have a handful."""
    values = whole_column(table, name)
    if pa.types.is_string(values.type):
        encoded = pc.dictionary_encode(values)
        return cleaning(part)(encoded.dictionary), encoded.indices
    encoded = pc.dictionary_encode(part_ids(table, name, part)[0])
    return encoded.dictionary, encoded.indices


def field_text_distinct(table: pa.Table, spec: Column, n: int) -> tuple[pa.Array, pa.Array]:
    """``field_text`` as distinct values and each row's index into them (see ``distinct_text``)."""
    if spec.column is None:
        encoded = pc.dictionary_encode(field_text(table, spec, n))
        return encoded.dictionary, encoded.indices
    return distinct_text(table, spec.column, spec)
