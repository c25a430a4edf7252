"""Arrow string/binary columns as the hashers take them: whole arrays and their type checks."""

from __future__ import annotations

import pyarrow as pa


def whole(column: pa.Array | pa.ChunkedArray) -> pa.Array:
    """One contiguous array from an array or a chunked array."""
    if isinstance(column, pa.ChunkedArray):
        return column.combine_chunks()
    return column


def is_binary_like(value_type: pa.DataType) -> bool:
    """True for string, large_string, binary and large_binary."""
    return bool(
        pa.types.is_string(value_type)
        or pa.types.is_large_string(value_type)
        or pa.types.is_binary(value_type)
        or pa.types.is_large_binary(value_type)
    )


def is_large(value_type: pa.DataType) -> bool:
    """True for the 64-bit-offset variants."""
    return bool(pa.types.is_large_string(value_type) or pa.types.is_large_binary(value_type))
