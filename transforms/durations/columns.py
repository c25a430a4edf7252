"""Whole duration columns -> canonical ISO 8601, converting each distinct value once.

Whole numbers go through Arrow compute, anything else through the per-value parser, once per
spelling; the results are spread back over the rows.
"""

from __future__ import annotations

from decimal import Decimal
from functools import partial

import pyarrow as pa
import pyarrow.compute as pc

from transforms.converted import Converted
from transforms.durations.decimal_numbers import non_negative
from transforms.durations.units import UNIT_SECONDS, check_unit
from transforms.durations.value_rows import CODE, convert_each, number_row, text_row, value_row
from transforms.durations.whole_numbers import whole_numbers
from transforms.text import clean_text


def to_iso_durations(values: pa.Array, unit: str | None) -> Converted:
    """Convert a cleaned text column or a numeric/duration Parquet column; nulls stay null.

    Each distinct value is converted once and the results are spread back over the rows.
    """
    check_unit(unit)
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if pa.types.is_dictionary(values.type):
        return _spread(_convert_distinct(clean_text(values.dictionary), unit), values.indices)
    if pa.types.is_null(values.type):
        nulls = pa.nulls(len(values), pa.string())
        return Converted(nulls, nulls, nulls)
    try:
        encoded = pc.dictionary_encode(values)
    except pa.ArrowNotImplementedError:
        return _unsupported(values)
    return _spread(_convert_distinct(encoded.dictionary, unit), encoded.indices)


def _convert_distinct(values: pa.Array, unit: str | None) -> Converted:
    """Convert the distinct values of a column, by its type."""
    kind = values.type
    if pa.types.is_integer(kind) and unit is not None:
        try:
            return whole_numbers(values, UNIT_SECONDS[unit])
        except pa.ArrowInvalid:  # beyond int64: the exact per-value path below handles it
            pass
    if pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind):
        # Arrow writes the shortest round-trip text per type, so float 1.1 reads as exactly 1.1.
        return convert_each(pc.cast(values, pa.string()), lambda v: number_row(v, unit))
    if pa.types.is_duration(kind):
        scale = {"s": 0, "ms": -3, "us": -6, "ns": -9}[kind.unit]
        return convert_each(
            pc.cast(values, pa.int64()),
            lambda v: value_row(lambda: non_negative(Decimal(v).scaleb(scale), f"{v}{kind.unit}")),
        )
    try:
        text = pc.cast(values, pa.string())
    except (pa.ArrowNotImplementedError, pa.ArrowInvalid):
        return _unsupported(values)
    convert = partial(text_row, unit=unit)
    if unit is None:
        return convert_each(text, convert)
    # Whole numbers are the bulk of most columns and can be many: convert them with Arrow compute.
    whole = pc.fill_null(pc.match_substring_regex(text, r"^[0-9]{1,12}$"), False)
    if not pc.any(whole).as_py():
        return convert_each(text, convert)
    null = pa.scalar(None, pa.string())
    numbers = whole_numbers(
        pc.cast(pc.if_else(whole, text, null), pa.int64()), UNIT_SECONDS[unit]
    )
    others = convert_each(pc.if_else(whole, null, text), convert)
    return Converted(
        *(pc.if_else(whole, a, b) for a, b in zip(_parts(numbers), _parts(others), strict=True))
    )


def _parts(converted: Converted) -> tuple[pa.Array, pa.Array, pa.Array]:
    """The three arrays of a Converted, in field order."""
    return converted.values, converted.codes, converted.messages


def _spread(distinct: Converted, indices: pa.Array) -> Converted:
    """Rows from the results of their distinct values (null index: null row, no error)."""
    if distinct.codes.null_count == len(distinct.codes):  # no errors: skip two of three takes
        nulls = pa.nulls(len(indices), pa.string())
        return Converted(distinct.values.take(indices), nulls, nulls)
    return Converted(*(part.take(indices) for part in _parts(distinct)))


def _unsupported(values: pa.Array) -> Converted:
    """Every non-null row of a column whose type cannot hold a duration (list, struct, ...)."""
    present = pc.is_valid(values)
    null = pa.scalar(None, pa.string())
    message = f"a {values.type} column cannot hold durations"
    return Converted(
        pa.nulls(len(values), pa.string()),
        pc.if_else(present, CODE, null),
        pc.if_else(present, message, null),
    )
