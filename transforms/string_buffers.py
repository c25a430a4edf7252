"""A string column's offsets and bytes as numpy views (zero-copy), for whole-column byte checks."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa

Offsets = npt.NDArray[np.signedinteger[Any]]


def offsets_and_data(text: pa.Array) -> tuple[Offsets, npt.NDArray[np.uint8]]:
    """``offsets`` (n + 1, into ``data``) and the value bytes of a string/large_string array."""
    buffers = text.buffers()
    wide = pa.types.is_large_string(text.type) or pa.types.is_large_binary(text.type)
    width = 8 if wide else 4
    offsets: Offsets = np.frombuffer(
        buffers[1], np.int64 if wide else np.int32, len(text) + 1, text.offset * width
    )
    data = np.frombuffer(buffers[2], np.uint8) if buffers[2] is not None else np.empty(0, np.uint8)
    return offsets, data


def any_control_or(text: pa.Array, others: bytes) -> bool:
    """Whether any value holds a control character (below 0x20) or one of the ``others`` bytes:
    a few SIMD passes over the data buffer (a table lookup per byte is several times slower)."""
    if len(text) == 0 or text.null_count == len(text):
        return False
    offsets, data = offsets_and_data(text)
    values = data[offsets[0] : offsets[-1]]
    if not len(values):
        return False
    return bool(values.min() < 0x20 or any((values == byte).any() for byte in others))


def edge_byte_in(text: pa.Array, table: npt.NDArray[np.bool_]) -> bool:
    """Whether the first or the last byte of any non-empty value is one ``table`` marks."""
    offsets, data = offsets_and_data(text)
    if not len(data):
        return False
    starts, ends = offsets[:-1], offsets[1:]
    first = data[np.minimum(starts, len(data) - 1)]  # an empty value reads a neighbour's byte:
    last = data[np.maximum(ends - 1, 0)]  # a false alarm at worst, which only costs a pass
    return bool(table[first].any() or table[last].any())


def value_lengths(text: pa.Array) -> Offsets:
    """Byte length of every value (null values: whatever their slot spans, usually 0)."""
    offsets, _ = offsets_and_data(text)
    return np.diff(offsets)
