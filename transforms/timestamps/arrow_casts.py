"""Arrow column preparation and lenient casts: null where Arrow cannot parse a row, not an error."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc


def plain(values: pa.Array) -> pa.Array:
    """One contiguous array; dictionaries decoded and large strings narrowed to ``string``."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if pa.types.is_dictionary(values.type):
        values = values.dictionary_decode()
    if pa.types.is_large_string(values.type):
        values = values.cast(pa.string())
    return values


class TooManyFailures(Exception):
    """A lenient cast hit more failing chunks than its budget allowed (the column is mixed)."""


def cast_lenient(values: pa.Array, to: pa.DataType, budget: list[int] | None = None) -> pa.Array:
    """Cast, with null where Arrow cannot parse a row; halves on failure so bad rows cost little.

    ``budget`` (one mutable count) caps the failing 8-row chunks; past it, TooManyFailures.
    """
    try:
        return pc.cast(values, to)
    except pa.ArrowException:
        if len(values) <= 8:
            if budget is not None:
                budget[0] -= 1
                if budget[0] < 0:
                    raise TooManyFailures from None
            return pa.array([_cast_one(v, to) for v in values], to)
        half = len(values) // 2
        return pa.concat_arrays(
            [cast_lenient(values[:half], to, budget), cast_lenient(values[half:], to, budget)]
        )


def _cast_one(value: pa.Scalar, to: pa.DataType) -> object:
    """Cast one scalar, None when Arrow refuses it."""
    try:
        return value.cast(to).as_py()
    except pa.ArrowException:
        return None
